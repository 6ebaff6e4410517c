#!/usr/bin/env bash
# gen_data_cli.sh - quantgate gen-data end to end.
# usage: gen_data_cli.sh QUANTGATE_BINARY TESTS_DATA_DIR
set -u
qg=$1
data=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# A CSV file: header, row count, first timestamp, the summary line on stderr.
"$qg" gen-data --bars 1000 --timeframe 5m --seed 3 --start 2024-03-01 --out "$tmp/a.csv" \
    2>"$tmp/err" || fail "gen-data csv exited $?"
[ "$(head -1 "$tmp/a.csv")" = "timestamp,open,high,low,close,volume" ] || fail "csv header"
[ "$(wc -l <"$tmp/a.csv")" -eq 1001 ] || fail "csv row count $(wc -l <"$tmp/a.csv")"
case "$(sed -n 2p "$tmp/a.csv")" in
2024-03-01T00:00:00Z,100.00,*) ;;
*) fail "first row: $(sed -n 2p "$tmp/a.csv")" ;;
esac
[ "$(sed -n 3p "$tmp/a.csv" | cut -d, -f1)" = "2024-03-01T00:05:00Z" ] || fail "5m spacing"
grep -qx "wrote 1000 bars to $tmp/a.csv" "$tmp/err" || fail "summary: $(cat "$tmp/err")"

# Same seed, same bytes; another seed, other bytes.
"$qg" gen-data --bars 1000 --timeframe 5m --seed 3 --start 2024-03-01 --quiet >"$tmp/b.csv" \
    2>"$tmp/err2" || fail "gen-data to stdout exited $?"
cmp -s "$tmp/a.csv" "$tmp/b.csv" || fail "same seed gave different output"
[ ! -s "$tmp/err2" ] || fail "--quiet still printed: $(cat "$tmp/err2")"
"$qg" gen-data --bars 1000 --timeframe 5m --seed 4 --start 2024-03-01 --quiet --out - \
    >"$tmp/c.csv" || fail "gen-data --out - exited $?"
cmp -s "$tmp/a.csv" "$tmp/c.csv" && fail "different seeds gave the same output"

# JSON with epoch milliseconds.
"$qg" gen-data --bars 3 --timeframe 1d --format json --ts ms --quiet --out "$tmp/d.json" ||
    fail "gen-data json exited $?"
[ "$(head -c 16 "$tmp/d.json")" = "[
[1704067200000" ] || fail "json start: $(head -c 40 "$tmp/d.json")"
[ "$(grep -c '^\[17' "$tmp/d.json")" -eq 3 ] || fail "json rows"

# Bad options: exit 2 and a message naming the option.
expect_usage_error() {
    local what=$1
    shift
    "$qg" gen-data "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq 2 ] || fail "$* exited $rc, not 2"
    grep -q -- "$what" "$tmp/err" || fail "$* message does not name $what: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "$* wrote to stdout"
}
expect_usage_error --timeframe --bars 10 --timeframe 7x
expect_usage_error --bars --bars -5
expect_usage_error --bars --timeframe 1m
expect_usage_error --format --bars 10 --format xml
expect_usage_error --ts --bars 10 --ts days
expect_usage_error --start --bars 10 --start 2024-13-45
expect_usage_error --bogus --bars 10 --bogus
expect_usage_error --price --bars 10 --price cheap

# An unwritable output is a failure (1) naming the file.
"$qg" gen-data --bars 10 --out "$tmp/no/such/dir.csv" 2>"$tmp/err" >/dev/null
rc=$?
[ $rc -eq 1 ] || fail "unwritable --out exited $rc"
grep -q "no/such/dir.csv" "$tmp/err" || fail "unwritable --out message: $(cat "$tmp/err")"

[ -z "$data" ] || [ -d "$data" ] || fail "tests/data dir '$data' missing"

if [ $fails -ne 0 ]; then
    echo "gen_data_cli: $fails failure(s)" >&2
    exit 1
fi
echo "gen_data_cli: ok"
