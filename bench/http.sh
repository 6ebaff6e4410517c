#!/usr/bin/env bash
# bench/http.sh BUILD_DIR - HTTP throughput and latency of `quantgate serve`
# next to nginx answering the same /health body, measured with wrk.
#
# Cells: nginx /health, quantgate /health (answered on the event loop) and
# quantgate GET /api/datasets with a bearer JWT (auth, role check and a
# SQLite query on the worker pool), each for QG_BENCH_HTTP_SECONDS (default
# 10) at 1, 16 and 64 connections (wrk -t1 for one connection, -t2 otherwise;
# wrk needs connections >= threads). Prints a markdown table with req/s, p50,
# p99 and non-2xx counts, the quantgate/nginx ratio for /health, and the
# server's resident memory idle after start and at its peak (VmHWM).
#
# wrk, nginx and quantgate share the machine's cores, so figures are for
# comparison on one machine, not absolute capacity. nginx runs as the current
# user from a generated config in a temp dir (no root, no daemon).
set -euo pipefail
build=${1:-build-bench}
secs=${QG_BENCH_HTTP_SECONDS:-10}
qg="$build/quantgate"
for tool in wrk nginx python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool not found" >&2; exit 1; }
done
[ -x "$qg" ] || { echo "bench/http.sh: $qg not built" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qg-http-bench.XXXXXX")
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

. "$(dirname "$0")/lib.sh"

# ---- nginx: same body as quantgate's /health, no access log
ng="$tmp/nginx"
mkdir -p "$ng"
nginx_port=$(free_port)
cat >"$ng/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        location = /health {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
}
EOF
nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/error.log" >"$ng/stdout.log" 2>&1 &
nginx_pid=$!
wait_http "http://127.0.0.1:$nginx_port/health" "$nginx_pid" nginx "$ng/error.log"

# ---- quantgate: rate limits and the access log off, warnings only
qd="$tmp/qg"
mkdir -p "$qd"
qg_port=$(free_port)
QG_DATA_DIR="$qd" QG_MASTER_KEY=$(openssl rand -hex 32) QG_RATE_LIMITS=off QG_LOG_LEVEL=warn \
    QG_ACCESS_LOG=off QG_ARGON2_FAST=1 QG_ACCESS_TTL=3600 QG_ENV_FILE=/dev/null \
    "$qg" serve --host 127.0.0.1 --port "$qg_port" >"$qd/stdout.log" 2>"$qd/stderr.log" &
qg_pid=$!
wait_http "http://127.0.0.1:$qg_port/health" "$qg_pid" quantgate "$qd/stderr.log"
sleep 0.5
rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$qg_pid/status")

# A developer with one small dataset, logged in; prints the access token.
"$qg" gen-data --bars 2000 --timeframe 1m --seed 7 --quiet --out "$tmp/bars.csv"
token=$(python3 - "$qg_port" "$qd/stdout.log" "$tmp/bars.csv" <<'EOF'
import http.client, json, re, secrets, sys, time
port, out, csv = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def req(method, path, body=None, token=None, ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Content-Type": ctype}
    if token: h["Authorization"] = "Bearer " + token
    if isinstance(body, dict): body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse(); data = r.read(); c.close()
    if r.status >= 300: sys.exit("setup: %s %s -> %d %s" % (method, path, r.status, data[:300]))
    return json.loads(data) if data else None
m = None
for _ in range(50):
    m = re.search(r"first admin: (\S+) password: (\S+)", open(out).read())
    if m: break
    time.sleep(0.1)
if not m: sys.exit("setup: no first-admin line on stdout")
email, pw = m.group(1), m.group(2)
tok = req("POST", "/api/auth/login", {"email": email, "password": pw})["access_token"]
newpw = "bench-" + secrets.token_urlsafe(12)
req("POST", "/api/me/password", {"current_password": pw, "new_password": newpw}, tok)
tok = req("POST", "/api/auth/login", {"email": email, "password": newpw})["access_token"]
dev_email, dev_pw = "bench-dev@example.com", "bench-" + secrets.token_urlsafe(12)
req("POST", "/api/users", {"email": dev_email, "password": dev_pw, "role": "developer"}, tok)
dev = req("POST", "/api/auth/login", {"email": dev_email, "password": dev_pw})["access_token"]
req("POST", "/api/datasets?name=bench&symbol=BENCH", open(csv, "rb").read(), dev, "text/csv")
print(dev)
EOF
)
rss_setup=$(awk '/^VmRSS/ {print $2}' "/proc/$qg_pid/status")

# ---- wrk cells
results="$tmp/results.tsv"
: >"$results"
run_cell() { # NAME URL CONNS [HEADER]
    local name=$1 url=$2 conns=$3 threads=2
    [ "$conns" -lt 2 ] && threads=1
    local args=(-t"$threads" -c"$conns" -d"${secs}s" --latency)
    [ $# -ge 4 ] && args+=(-H "$4")
    local out
    out=$(wrk "${args[@]}" "$url")
    local rps p50 p99 bad errs
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    errs=$(awk '/Socket errors:/ {sub(/.*Socket errors: /, ""); print}' <<<"$out")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$rps" "$p50" "$p99" "${bad:-0}" "${errs:-none}" >>"$results"
}
for c in 1 16 64; do
    run_cell "nginx /health" "http://127.0.0.1:$nginx_port/health" "$c"
    run_cell "quantgate /health" "http://127.0.0.1:$qg_port/health" "$c"
    run_cell "quantgate GET /api/datasets" "http://127.0.0.1:$qg_port/api/datasets" "$c" \
        "Authorization: Bearer $token"
done
rss_peak=$(awk '/^VmHWM/ {print $2}' "/proc/$qg_pid/status")
rss_after=$(awk '/^VmRSS/ {print $2}' "/proc/$qg_pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$qg_pid/status")

echo
echo "HTTP: wrk ${secs}s per cell, $(nproc) cores shared by wrk, nginx (2 workers) and quantgate ($threads threads)"
echo
echo "| target | connections | req/s | p50 | p99 | non-2xx | socket errors |"
echo "|---|---:|---:|---:|---:|---:|---|"
LC_ALL=C sort -s -t$'\t' -k1,1 "$results" | awk -F'\t' '{printf "| %s | %s | %.0f | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}'
echo
for c in 1 16 64; do
    awk -F'\t' -v c="$c" '$2 == c && $1 == "nginx /health" {n=$3} $2 == c && $1 == "quantgate /health" {q=$3}
        END { if (n > 0) printf "quantgate/nginx /health at %s connections: %.2f\n", c, q / n }' "$results"
done
echo
echo "quantgate memory: RSS idle after start $((rss_idle / 1024)) MiB ($rss_idle kB), after setup $((rss_setup / 1024)) MiB, after load $((rss_after / 1024)) MiB, peak (VmHWM) $((rss_peak / 1024)) MiB ($rss_peak kB)"

# graceful stop: quantgate must exit 0 on SIGTERM
kill -TERM "$qg_pid"
rc=0
wait "$qg_pid" || rc=$?
qg_pid=""
if [ "$rc" -ne 0 ]; then
    echo "bench/http.sh: quantgate exited with $rc after SIGTERM" >&2
    tail -20 "$qd/stderr.log" >&2
    exit 1
fi
