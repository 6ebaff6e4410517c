#!/usr/bin/env bash
# backtest_cli.sh - quantgate backtest, check and optimize end to end:
# outputs agree with each other, files are written, errors name the field.
# usage: backtest_cli.sh QUANTGATE_BINARY TESTS_DATA_DIR
set -u
qg=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

"$qg" gen-data --bars 20000 --timeframe 5m --seed 7 --start 2024-01-01 --quiet --out "$tmp/d.csv" ||
    fail "gen-data exited $?"

# Text summary.
"$qg" backtest --data "$tmp/d.csv" --strategy sma_cross --fee-bps 5 --quiet >"$tmp/out" 2>"$tmp/err" ||
    fail "backtest exited $?: $(cat "$tmp/err")"
for word in "Total return" "Sharpe" "Max drawdown" "Profit factor" "SQN" "sma_cross (fast=10, slow=30)"; do
    grep -q "$word" "$tmp/out" || fail "summary lacks '$word'"
done

# JSON, trades CSV and report from one run agree on the number of trades.
"$qg" backtest --data "$tmp/d.csv" --strategy ema_cross --param fast=8 --direction both \
    --json --trades-csv "$tmp/t.csv" --report "$tmp/r.html" --quiet >"$tmp/j.json" ||
    fail "backtest --json exited $?"
trades=$(grep -m1 '"trades":[[:space:]]*[0-9]' "$tmp/j.json" | grep -o '[0-9]\+')
[ -n "$trades" ] && [ "$trades" -gt 0 ] || fail "no trade count in JSON"
rows=$(($(wc -l <"$tmp/t.csv") - 1))
[ "$rows" = "$trades" ] || fail "trades CSV has $rows rows, JSON says $trades"
head -1 "$tmp/t.csv" | grep -q '^entry_time,exit_time,side,quantity' || fail "trades CSV header"
grep -q '"fast":[[:space:]]*8' "$tmp/j.json" || fail "--param fast=8 not in JSON"
grep -q '"direction":[[:space:]]*"both"' "$tmp/j.json" || fail "direction not in JSON"
grep -q ',short,' "$tmp/t.csv" || fail "--direction both made no short trade"
grep -q '<svg' "$tmp/r.html" || fail "report has no chart"
grep -q 'https\?://' "$tmp/r.html" && fail "report references the network"

# A spec file; resampling through --timeframe.
cat >"$tmp/spec.json" <<'JSON'
{"name": "rsi_dip", "params": {"n": 14},
 "indicators": {"rsi": "rsi:$n", "trend": "ema:50"},
 "entry": {"long": {"and": [{"lt": ["rsi", 35]}, {"gt": ["close", "trend"]}]}},
 "exit": {"long": {"gt": ["rsi", 60]}},
 "stop_loss": {"atr": 2, "period": 14}, "take_profit": {"percent": 3},
 "sizing": {"risk_percent": 1}}
JSON
"$qg" backtest --data "$tmp/d.csv" --strategy "$tmp/spec.json" --timeframe 15m --quiet >"$tmp/out" ||
    fail "spec backtest exited $?"
grep -q "bars of 15m" "$tmp/out" || fail "--timeframe 15m not applied: $(head -2 "$tmp/out")"

# --from/--to: trading starts at --from on indicators warmed up before it.
"$qg" backtest --data "$tmp/d.csv" --strategy sma_cross --from 2024-01-20 --to 2024-02-01 --json \
    --quiet >"$tmp/w.json" || fail "--from backtest exited $?"
grep -q '"start":[[:space:]]*"2024-01-20T00:00:00Z"' "$tmp/w.json" || fail "--from start: $(grep start "$tmp/w.json")"
grep -q '"warmup_bars":[[:space:]]*5472' "$tmp/w.json" || fail "warmup bars: $(grep warmup "$tmp/w.json")"
grep -q '"bars":[[:space:]]*3456' "$tmp/w.json" || fail "bars between --from and --to"

# The look-ahead check passes for every built-in.
for s in sma_cross ema_cross rsi_reversion bollinger_breakout donchian_breakout; do
    "$qg" check --data "$tmp/d.csv" --strategy "$s" --direction both --cuts 12 --quiet >"$tmp/out" ||
        fail "check $s exited $?: $(cat "$tmp/out")"
    grep -q "no look-ahead" "$tmp/out" || fail "check $s: $(cat "$tmp/out")"
done

# Optimize: a table best first, constraint skips counted, JSON rows.
"$qg" optimize --data "$tmp/d.csv" --strategy sma_cross --grid fast=5:25:10 --grid slow=10:30:10 \
    --objective return --threads 2 --quiet >"$tmp/out" || fail "optimize exited $?"
grep -q "9 combinations (3 skipped by constraints)" "$tmp/out" || fail "optimize: $(head -1 "$tmp/out")"
[ "$(grep -c '^ \+[0-9]\+ \+[0-9]' "$tmp/out")" -eq 6 ] || fail "optimize rows: $(cat "$tmp/out")"
"$qg" optimize --data "$tmp/d.csv" --strategy sma_cross --grid fast=5:10:5 --top 1 --json \
    --quiet >"$tmp/o.json" || fail "optimize --json exited $?"
grep -q '"rows"' "$tmp/o.json" || fail "optimize JSON"

# Errors: exit status and a message that names the thing and the reason.
expect_error() {
    local want_rc=$1 what=$2
    shift 2
    "$qg" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    [ $rc -eq "$want_rc" ] || fail "$* exited $rc, not $want_rc"
    grep -q -- "$what" "$tmp/err" || fail "$*: message lacks '$what': $(cat "$tmp/err")"
}
expect_error 1 "unknown strategy 'smacross'" backtest --data "$tmp/d.csv" --strategy smacross
expect_error 2 "--strategy NAME" backtest --data "$tmp/d.csv"
expect_error 2 "--data FILE is required" backtest --strategy sma_cross
expect_error 1 "parameter 'flast' is not declared" backtest --data "$tmp/d.csv" --strategy sma_cross --param flast=3
expect_error 1 "constraint 'fast < slow'" backtest --data "$tmp/d.csv" --strategy sma_cross --param fast=50
expect_error 2 "--fee-bps" backtest --data "$tmp/d.csv" --strategy sma_cross --fee-bps abc
expect_error 2 "--direction" backtest --data "$tmp/d.csv" --strategy sma_cross --direction sideways
expect_error 1 "No such file" backtest --data "$tmp/missing.csv" --strategy sma_cross
expect_error 2 "--grid" optimize --data "$tmp/d.csv" --strategy sma_cross --grid fast=9:1:1
expect_error 1 "no such parameter" optimize --data "$tmp/d.csv" --strategy sma_cross --grid period=1:2:1
expect_error 2 "unknown option '--bogus'" backtest --bogus

cat >"$tmp/bad.json" <<'JSON'
{"entry": {"long": {"cross_above": ["fast", "slwo"]}}, "indicators": {"fast": "sma:5"}}
JSON
expect_error 1 "entry.long.cross_above\[1\]: unknown operand 'slwo'" backtest --data "$tmp/d.csv" --strategy "$tmp/bad.json"

# Bad data: file, line, column and reason; --lenient skips and reports.
{
    echo "timestamp,open,high,low,close,volume"
    echo "2024-01-01T00:00:00Z,100,101,99,100.5,10"
    echo "2024-01-01T00:01:00Z,100.5,99,101,100,10"
    for i in $(seq 2 9); do echo "2024-01-01T00:0$i:00Z,100,101,99,100.5,10"; done
} >"$tmp/bad.csv"
expect_error 1 "bad.csv:3:3" backtest --data "$tmp/bad.csv" --strategy sma_cross
"$qg" backtest --data "$tmp/bad.csv" --strategy sma_cross --param fast=2 --param slow=3 --lenient \
    --quiet >"$tmp/out" 2>"$tmp/err" || fail "--lenient exited $?: $(cat "$tmp/err")"
grep -q "skipped 1 bad row" "$tmp/err" || fail "--lenient report: $(cat "$tmp/err")"

if [ $fails -ne 0 ]; then
    echo "backtest_cli: $fails failure(s)" >&2
    exit 1
fi
echo "backtest_cli: ok"
