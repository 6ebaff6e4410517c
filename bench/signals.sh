#!/usr/bin/env bash
# bench/signals.sh BUILD_DIR - signal alerts: durable webhook accepts and
# end-to-end processing, measured with wrk over loopback.
#
# 1. Accepts: POST /api/webhook/receive with a valid TradingView alert
#    (each request its own client id, so none is a duplicate) at the
#    connection counts in QG_BENCH_SIG_CONNS (default "1 16 64"), each for
#    QG_BENCH_SIG_SECONDS (default 10), the pipeline paused so the door is
#    measured alone. A 202 means the signal is in the SQLite file (group
#    commit; the WAL is fdatasynced before the 202). Prints accepts/s, wrk's p50/p99 and the
#    server's own p50/p99 of the route (its /metrics histogram, scraped
#    around the cell).
# 2. Paced: the same at a fixed QG_BENCH_SIG_RATE (default 10000) requests/s
#    over 64 connections with bench_rate (bench/bench_rate.c, open loop:
#    latency runs from when each request was due, so a stall shows in the
#    percentiles instead of slowing the sender down as it does in wrk).
# 3. End to end: the signals accepted above (all pass every filter: London
#    killzone, 3 confluences, score 100) are processed once the pipeline is
#    resumed (for QG_BENCH_SIG_E2E_SECONDS, default 20, or until all are
#    done): builtin reasoner, similar setups from memory, the analysis
#    remembered, a Telegram sendMessage to a local receiver (nginx answering
#    the Bot API's {"ok":true,...}), every state change recorded. Prints
#    signals processed per second from resume to the last one done: a signal
#    counts once it is done and its analysis is in memory (the rememberer
#    works off the workers' path, up to 10,000 behind them), and quantgate's
#    CPU and bytes written per processed signal (/proc/PID/stat and io, all
#    threads): steadier than the rate on a VM whose speed drifts.
#
# wrk, nginx and quantgate share the machine's cores: the figures compare
# runs on one machine; they are not the capacity of a dedicated server.
# "steal %" is the share of CPU time the hypervisor gave to other guests
# during the cell (/proc/stat): on a shared VM it swings from 0 to 40% and
# moves every figure with it, so compare runs with low steal only.
set -euo pipefail
build=${1:-build-bench}
secs=${QG_BENCH_SIG_SECONDS:-10}
conns_list=${QG_BENCH_SIG_CONNS:-1 16 64}
rate=${QG_BENCH_SIG_RATE:-10000}
qg="$build/quantgate"
. "$(dirname "$0")/lib.sh"
for tool in wrk nginx python3 curl openssl; do
    command -v "$tool" >/dev/null || { echo "$bench_name: $tool not found" >&2; exit 1; }
done
[ -x "$qg" ] || { echo "$bench_name: $qg not built" >&2; exit 1; }
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "$0")/.." && pwd)/tests/lsan.supp:print_suppressions=0}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qg-sig-bench.XXXXXX")
nginx_pid=""
qg_pid=""
cleanup() {
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    if [ -n "$qg_pid" ] && kill -0 "$qg_pid" 2>/dev/null; then
        kill -TERM "$qg_pid" 2>/dev/null || true
        wait "$qg_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the notification receiver: nginx answering Telegram's sendMessage
ng="$tmp/nginx"
mkdir -p "$ng"
nginx_port=$(free_port)
cat >"$ng/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log $ng/error.log warn;
pid $ng/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            default_type application/json;
            return 200 '{"ok":true,"result":{"message_id":1,"date":1700000000,"chat":{"id":1,"type":"private"},"text":"alert"}}';
        }
    }
}
EOF
nginx -p "$ng" -c "$ng/nginx.conf" 2>"$ng/stderr.log" &
nginx_pid=$!
wait_http "http://127.0.0.1:$nginx_port/" "$nginx_pid" nginx "$ng/stderr.log"

# ---- quantgate: embedded default, webhook secret, Telegram at nginx
qd="$tmp/qg"
mkdir -p "$qd"
qg_port=$(free_port)
secret="bench-$(openssl rand -hex 16)"
QG_DATA_DIR="$qd" QG_MASTER_KEY=$(openssl rand -hex 32) QG_RATE_LIMITS=off QG_LOG_LEVEL=warn \
    QG_ACCESS_LOG=off QG_ARGON2_FAST=1 QG_ENV_FILE=/dev/null WEBHOOK_SECRET="$secret" \
    TELEGRAM_BOT_TOKEN="123456:bench-$(openssl rand -hex 8)" TELEGRAM_CHAT_ID=1001 \
    QG_TELEGRAM_API_URL="http://127.0.0.1:$nginx_port" QG_SIGNAL_QUEUE_MAX=10000000 \
    "$qg" serve --host 127.0.0.1 --port "$qg_port" >"$qd/stdout.log" 2>"$qd/stderr.log" &
qg_pid=$!
wait_http "http://127.0.0.1:$qg_port/health" "$qg_pid" quantgate "$qd/stderr.log"
token=$(admin_api_token "$qg_port" "$qd/stdout.log" bench-signals)
api() { # METHOD PATH
    curl -fsS -X "$1" "http://127.0.0.1:$qg_port$2" -H "Authorization: Bearer $token"
}
api POST /api/signals/pause >/dev/null

# One alert per request, each with its own client id (thread number and a
# counter), in the London killzone of a winter Tuesday.
cat >"$tmp/alert.lua" <<EOF
local counter = 0
local threads = 0
tid = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    counter = 0
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Webhook-Secret"] = "$secret"
request = function()
    counter = counter + 1
    local body = string.format('{"id":"b-%s-%d-%d","symbol":"EURUSD","timeframe":"15m",' ..
        '"signal_type":"CHoCH","confidence":85,"timestamp":"2026-03-10T08:15:00Z",' ..
        '"price_data":{"open":1.085,"high":1.0875,"low":1.0825,"close":1.0865},' ..
        '"sl":1.08,"tp":1.092,"multi_tf":true,' ..
        '"confluences":["HTF_BIAS_BULL","DAILY_ABOVE_MID","4H_SUPPORT"]}',
        run_id, tid, counter)
    return wrk.format(nil, nil, nil, body)
end
EOF

scrape() {
    curl -fsS "http://127.0.0.1:$qg_port/metrics" |
        grep -E '^quantgate_http_request_duration_seconds_bucket\{route="/api/webhook/receive"' || true
}

results="$tmp/results.tsv"
: >"$results"
run_cell() { # LABEL CONNS [DELAY_MS]
    local label=$1 conns=$2 threads=2
    [ "$conns" -lt 2 ] && threads=1
    local script="$tmp/cell.lua"
    { printf 'run_id = "%s"\n' "$label-$conns"; cat "$tmp/alert.lua"; } >"$script"
    [ $# -ge 3 ] && printf 'function delay() return %s end\n' "$3" >>"$script"
    local before after out cpu0
    before=$(scrape)
    cpu0=$(cpu_snapshot)
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$script" \
        "http://127.0.0.1:$qg_port/api/webhook/receive") || {
        echo "$bench_name: wrk failed: $out" >&2
        tail -20 "$qd/stderr.log" >&2
        exit 1
    }
    after=$(scrape)
    local steal
    steal=$(steal_pct "$cpu0" "$(cpu_snapshot)")
    local rps p50 p99 bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$conns" "$rps" "$(to_ms "$p50")" \
        "$(to_ms "$p99")" "${bad:-0}" \
        "$(hist_quantiles quantgate_http_request_duration_seconds "$before" "$after")" "$steal" >>"$results"
}

run_paced() { # CONNS
    local conns=$1 before after out cpu0
    # The alert of alert.lua, each request its own client id.
    printf '%s' '{"id":"paced-%ID%","symbol":"EURUSD","timeframe":"15m","signal_type":"CHoCH",' \
        '"confidence":85,"timestamp":"2026-03-10T08:15:00Z","price_data":{"open":1.085,' \
        '"high":1.0875,"low":1.0825,"close":1.0865},"sl":1.08,"tp":1.092,"multi_tf":true,' \
        '"confluences":["HTF_BIAS_BULL","DAILY_ABOVE_MID","4H_SUPPORT"]}' >"$tmp/paced.json"
    before=$(scrape)
    cpu0=$(cpu_snapshot)
    out=$("$build/bench_rate" -p "$qg_port" -P /api/webhook/receive -r "$rate" -c "$conns" \
        -d "$secs" -H "Content-Type: application/json" -H "X-Webhook-Secret: $secret" \
        -b "$tmp/paced.json") || {
        echo "$bench_name: bench_rate failed: $out" >&2
        tail -20 "$qd/stderr.log" >&2
        exit 1
    }
    after=$(scrape)
    local steal
    steal=$(steal_pct "$cpu0" "$(cpu_snapshot)")
    field() { tr ' ' '\n' <<<"$out" | awk -F= -v k="$1" '$1 == k {print $2}'; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' paced "$conns" "$(field rate)" "$(field p50)" \
        "$(field p99)" "$(($(field other) + $(field errors)))" \
        "$(hist_quantiles quantgate_http_request_duration_seconds "$before" "$after")" "$steal" >>"$results"
}

for c in $conns_list; do run_cell accept "$c"; done
run_paced 64

status_field() { # FIELD: from GET /api/signals/status
    api GET /api/signals/status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(int(d["counts"][sys.argv[1]]))' "$1"
}
counters() { # "done remembered" from one /metrics scrape (curl and awk: a poll
    # must not take the CPU it measures, as a python per poll would)
    curl -fsS "http://127.0.0.1:$qg_port/metrics" | awk '
        $1 == "quantgate_signals_done_total" { d = $2 }
        $1 == "quantgate_signals_remembered_total" { r = $2 }
        END { print d + 0, r + 0 }'
}
accepted=$(status_field accepted)
e2e_secs=${QG_BENCH_SIG_E2E_SECONDS:-20}
t0=$(date +%s.%N)
e2e_cpu0=$(cpu_snapshot)
proc_use() { # "CPU ticks, bytes written" of quantgate so far (per signal in the table)
    echo "$(awk '{ print $14 + $15 }' "/proc/$qg_pid/stat") $(awk '$1 == "write_bytes:" { print $2 }' "/proc/$qg_pid/io")"
}
thread_ticks() { # "name ticks" per thread of quantgate (names repeat: the pools)
    for t in /proc/"$qg_pid"/task/*; do
        echo "$(cat "$t/comm" 2>/dev/null) $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null)"
    done
}
read -r e2e_ticks0 e2e_wb0 < <(proc_use)
thread_ticks >"$qd/threads0"
api POST /api/signals/resume >/dev/null
# The rate over a backlog: until every accepted signal is done and its
# analysis remembered, or for QG_BENCH_SIG_E2E_SECONDS (default 20) when the
# backlog is longer. A signal counts once both happened: done alone runs
# ahead by the rememberer's queue.
while :; do
    read -r done_n rem_n < <(counters)
    t1=$(date +%s.%N)
    [ "$done_n" -ge "$accepted" ] && [ "$rem_n" -ge "$done_n" ] && break
    awk -v a="$t0" -v b="$t1" -v s="$e2e_secs" 'BEGIN { exit !(b - a >= s) }' && break
    kill -0 "$qg_pid" 2>/dev/null || { echo "$bench_name: quantgate is gone" >&2; tail -20 "$qd/stderr.log" >&2; exit 1; }
    sleep 0.25
done
e2e_steal=$(steal_pct "$e2e_cpu0" "$(cpu_snapshot)")
read -r e2e_ticks1 e2e_wb1 < <(proc_use)
thread_ticks >"$qd/threads1"
failed=$(status_field failed)
filtered=$(status_field filtered)
threads=$(awk '/^Threads/ {print $2}' "/proc/$qg_pid/status")

echo
echo "Signal accepts: wrk ${secs}s per cell, POST /api/webhook/receive (202 after the group commit)," \
    "$(nproc) cores shared by wrk and quantgate ($threads threads); the pipeline paused"
echo
echo "| cell | connections | accepts/s | p50 ms | p99 ms | non-2xx | server p50 ms | server p99 ms | steal % |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '{ printf "| %s | %s | %.0f | %.3f | %.3f | %s | %s | %s | %s |\n", $1 == "paced" ? "paced ('"$rate"'/s, open loop)" : $1, $2, $3, $4, $5, $6, $8, $9, $10 }' "$results"
echo
echo "End to end: $accepted accepted signals queued, the pipeline resumed (builtin reasoner, similar setups from memory,"
echo "the analysis remembered, Telegram to a local receiver); processed/s counts the signals both done and remembered;"
echo "CPU and bytes written are quantgate's (all threads; /proc/PID/stat and io) per processed signal"
awk -v q="$accepted" -v n="$done_n" -v r="$rem_n" -v a="$t0" -v b="$t1" -v f="$failed" -v fl="$filtered" -v st="$e2e_steal" \
    -v tk=$((e2e_ticks1 - e2e_ticks0)) -v hz="$(getconf CLK_TCK)" -v wb=$((e2e_wb1 - e2e_wb0)) \
    'BEGIN { p = r < n ? r : n; d = p > 0 ? p : 1; printf "| backlog | done | remembered | seconds | processed/s | CPU µs/signal | KB written/signal | failed | filtered | steal %% |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| %d | %d | %d | %.2f | %.0f | %.0f | %.1f | %d | %d | %s |\n", q, n, r, b - a, p / (b - a), tk * 1e6 / hz / d, wb / 1024 / d, f, fl, st }'
echo
echo "CPU per processed signal by thread (the same threads' names summed; a thread that started or ended"
echo "during the run counts from 0)"
echo "| thread | threads | CPU µs/signal |"
echo "|---|---:|---:|"
awk -v hz="$(getconf CLK_TCK)" -v n="$(( rem_n < done_n ? rem_n : done_n ))" '
    FNR == NR { before[$1] += $2; next }
    { after[$1] += $2; count[$1]++ }
    END { d = n > 0 ? n : 1
          for (k in after) { us = (after[k] - before[k]) * 1e6 / hz / d
                             if (us >= 0.5) printf "| %s | %d | %.0f |\n", k, count[k], us } }' \
    "$qd/threads0" "$qd/threads1" | sort -t'|' -k4 -rn
curl -fsS "http://127.0.0.1:$qg_port/metrics" | grep -E '^quantgate_(signal|notify)' | grep -v _bucket | sed 's/^/  /' | head -40 || true

kill -TERM "$qg_pid"
rc=0
wait "$qg_pid" || rc=$?
qg_pid=""
[ "$rc" -eq 0 ] || { echo "$bench_name: quantgate exited with $rc on SIGTERM" >&2; tail -20 "$qd/stderr.log" >&2; exit 1; }
