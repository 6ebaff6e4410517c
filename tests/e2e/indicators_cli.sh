#!/usr/bin/env bash
# indicators_cli.sh - end-to-end test of `quantgate indicators`.
# usage: indicators_cli.sh QUANTGATE_BINARY TESTS_DATA_DIR
# Writes small CSV files in a temporary directory, runs the binary and
# compares its output with values worked out by hand; exits non-zero on the
# first failure.
set -u
QG=${1:?usage: indicators_cli.sh QUANTGATE_BINARY TESTS_DATA_DIR}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_output NAME EXPECTED_FILE ARGS... : stdout must equal the file, exit 0
expect_output() {
    local name=$1 want=$2
    shift 2
    if ! "$QG" indicators "$@" >"$TMP/out" 2>"$TMP/err"; then
        fail "$name: exit status $? ($(cat "$TMP/err"))"
        return
    fi
    if ! diff -u "$want" "$TMP/out" >"$TMP/diff"; then
        fail "$name: output differs:"
        cat "$TMP/diff" >&2
    fi
}

# expect_error NAME STATUS MESSAGE ARGS... : exit STATUS, stderr contains MESSAGE
expect_error() {
    local name=$1 status=$2 msg=$3
    shift 3
    "$QG" indicators "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ "$rc" -eq "$status" ] || fail "$name: exit status $rc, expected $status"
    grep -qF -- "$msg" "$TMP/err" || fail "$name: stderr lacks '$msg': $(cat "$TMP/err")"
}

# Six hourly bars across midnight; closes 2 4 6 8 10 9, high/low = close +- 1,
# so the typical price is the close.
cat >"$TMP/bars.csv" <<'EOF'
timestamp,open,high,low,close,volume
2024-01-01T22:00:00Z,2,3,1,2,100
2024-01-01T23:00:00Z,4,5,3,4,200
2024-01-02T00:00:00Z,6,7,5,6,0
2024-01-02T01:00:00Z,8,9,7,8,50
2024-01-02T02:00:00Z,10,11,9,10,150
2024-01-02T03:00:00Z,9,10,8,9,150
EOF

# sma:3 = 4 6 8 9; ema:3 (k=1/2, seed 4) = 4 6 8 8.5
# vwap: 2; (200+800)/300; new day, volume 0 -> 6; 8; (400+1500)/200 = 9.5;
#       (1900+1350)/350 = 9.285714286
# obv: 100, +200 = 300, +0, +50 = 350, +150 = 500, -150 = 350
cat >"$TMP/want.csv" <<'EOF'
timestamp,sma_3,ema_3,vwap,obv
2024-01-01T22:00:00Z,,,2,100
2024-01-01T23:00:00Z,,,3.333333333,300
2024-01-02T00:00:00Z,4,4,6,300
2024-01-02T01:00:00Z,6,6,8,350
2024-01-02T02:00:00Z,8,8,9.5,500
2024-01-02T03:00:00Z,9,8.5,9.285714286,350
EOF
expect_output "csv" "$TMP/want.csv" --data "$TMP/bars.csv" --ind sma:3 --ind ema:3 \
    --ind vwap --ind obv --quiet

# JSON, and --from: values are warmed up on the bars before it.
# bbands:3,2 population sd of 2,4,6 = sqrt(8/3): 4 +- 3.265986324
cat >"$TMP/want.json" <<'EOF'
{"columns":["timestamp","sma_3","bbands_upper_3_2","bbands_middle_3_2","bbands_lower_3_2"],"rows":[
["2024-01-02T00:00:00Z",4,7.265986324,4,0.7340136763],
["2024-01-02T01:00:00Z",6,9.265986324,6,2.734013676]
]}
EOF
expect_output "json from/to" "$TMP/want.json" --data "$TMP/bars.csv" --ind sma:3 \
    --ind bbands:3,2 --format json --from 2024-01-02 --to 2024-01-02T02:00Z

# nulls in JSON and a derived source: sma:2@hl2 of hl2 = close
cat >"$TMP/want2.json" <<'EOF'
{"columns":["timestamp","sma_2_hl2"],"rows":[
["2024-01-01T22:00:00Z",null],
["2024-01-01T23:00:00Z",3],
["2024-01-02T00:00:00Z",5],
["2024-01-02T01:00:00Z",7],
["2024-01-02T02:00:00Z",9],
["2024-01-02T03:00:00Z",9.5]
]}
EOF
expect_output "json null" "$TMP/want2.json" --data "$TMP/bars.csv" --ind sma:2@hl2 --format=json

# errors: usage errors exit 2, data errors exit 1
expect_error "bad period" 2 "indicator 'sma:0': period must be a whole number >= 1" \
    --data "$TMP/bars.csv" --ind sma:0
expect_error "unknown name" 2 "indicator 'foo:3': unknown name (known: sma, ema" \
    --data "$TMP/bars.csv" --ind foo:3
expect_error "macd count" 2 "expects 3 parameters (fast, slow, signal)" \
    --data "$TMP/bars.csv" --ind macd:12,26
expect_error "no --ind" 2 "at least one --ind" --data "$TMP/bars.csv"
expect_error "bad format" 2 "'xml' is not csv or json" --data "$TMP/bars.csv" --ind rsi \
    --format xml
expect_error "unknown option" 2 "unknown option '--bogus'" --ind rsi --bogus
expect_error "missing data" 2 "--data FILE is required" --ind rsi
expect_error "no such file" 1 "nope.csv" --data "$TMP/nope.csv" --ind rsi
"$QG" indicators --help | grep -q "usage: quantgate indicators" || fail "--help"

# A longer series: every kind, CSV and JSON agree on the row count, and the
# value at a bar does not depend on --from.
awk 'BEGIN {
    print "timestamp,open,high,low,close,volume"
    p = 100; srand(7)
    for (i = 0; i < 5000; i++) {
        o = p; p = p * (1 + (rand() - 0.5) / 50)
        h = (o > p ? o : p) * (1 + rand() / 200); l = (o < p ? o : p) * (1 - rand() / 200)
        d = int(i / 96); m = i % 96   # 15-minute bars from 2024-01-01, 52 days
        date = d < 31 ? sprintf("2024-01-%02d", d + 1) : sprintf("2024-02-%02d", d - 30)
        printf "%sT%02d:%02d:00Z,%.4f,%.4f,%.4f,%.4f,%.1f\n", date, int(m / 4), (m % 4) * 15,
            o, h, l, p, rand() * 1000
    }
}' >"$TMP/long.csv"
ALL=(--ind sma --ind ema --ind wma --ind rsi --ind atr --ind macd --ind bbands --ind stoch
    --ind adx --ind cci --ind roc --ind willr --ind donchian --ind obv --ind vwap)
if "$QG" indicators --data "$TMP/long.csv" "${ALL[@]}" --quiet >"$TMP/long.out"; then
    rows=$(wc -l <"$TMP/long.out")
    [ "$rows" -eq 5001 ] || fail "long csv: $rows lines, expected 5001"
    cols=$(head -1 "$TMP/long.out" | tr ',' '\n' | wc -l)
    [ "$cols" -eq 25 ] || fail "long csv: $cols columns, expected 25"
    "$QG" indicators --data "$TMP/long.csv" "${ALL[@]}" --format json --quiet >"$TMP/long.json"
    jrows=$(grep -c '^\["' "$TMP/long.json")
    [ "$jrows" -eq 5000 ] || fail "long json: $jrows rows, expected 5000"
    "$QG" indicators --data "$TMP/long.csv" "${ALL[@]}" --from 2024-01-20 --quiet >"$TMP/cut.out"
    line=$(sed -n 2p "$TMP/cut.out")
    grep -qxF -- "$line" "$TMP/long.out" || fail "--from changed the values: $line"
else
    fail "long csv: exit status $?"
fi

if [ "$fails" -ne 0 ]; then
    echo "indicators_cli: $fails failure(s)" >&2
    exit 1
fi
echo "indicators_cli: ok"
