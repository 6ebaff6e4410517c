# bench/lib.sh - helpers the HTTP benchmark scripts share (sourced, not run).

bench_name=${bench_name:-bench/$(basename "$0")}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL PID NAME LOG
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { echo "$bench_name: $3 exited; log:" >&2; cat "$4" >&2; exit 1; }
        sleep 0.1
    done
    echo "$bench_name: $3 did not answer $1; log:" >&2
    cat "$4" >&2
    exit 1
}

to_ms() { # wrk latency ("812.00us", "1.23ms", "1.02s") to milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0;
        else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# The first admin of a fresh server (its one-time password read from the
# server's stdout log and replaced), then a machine API token with write
# scope named NAME, printed.
admin_api_token() { # PORT STDOUT_LOG NAME
    python3 - "$1" "$2" "$3" <<'PY'
import http.client, json, re, secrets, sys, time
port, out, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def req(method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Content-Type": "application/json"}
    if token: h["Authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
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
print(req("POST", "/api/tokens", {"name": name, "scope": "write"}, tok)["token"])
PY
}

# "count p50 p99" (ms) of the histogram NAME's observations between two
# /metrics scrapes BEFORE and AFTER (bucket interpolation; labels other
# than le must match exactly between the two).
hist_quantiles() { # NAME BEFORE AFTER
    awk -v name="$1" '
        FNR == NR { if (index($0, name "_bucket{") == 1) before[$1] = $NF; next }
        index($0, name "_bucket{") == 1 { match($0, /le="[^"]*"/); n++; les[n] = substr($0, RSTART + 4, RLENGTH - 5);
            cum[n] = $NF - before[$1] }
        function q(p,   i, t, lo, prev) { t = p * cum[n]; prev = 0; lo = 0;
            for (i = 1; i <= n; i++) { if (cum[i] >= t) { if (les[i] == "+Inf") return "> " lo * 1000;
                return sprintf("%.3f", (lo + (les[i] - lo) * (cum[i] > prev ? (t - prev) / (cum[i] - prev) : 1)) * 1000) }
                prev = cum[i]; lo = les[i] } return "?" }
        END { if (n && cum[n] > 0) printf "%d\t%s\t%s", cum[n], q(0.5), q(0.99); else printf "0\t-\t-" }' \
        <(printf '%s\n' "$2") <(printf '%s\n' "$3")
}

# The machine's aggregate CPU counters (the "cpu" line of /proc/stat).
cpu_snapshot() {
    head -1 /proc/stat
}

steal_pct() { # BEFORE AFTER: the share of CPU time the hypervisor took between them
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 2; i <= 9 && i <= n; i++) t += y[i] - x[i] # guest time is inside user
        printf "%.1f", (t > 0 ? 100 * (y[9] - x[9]) / t : 0) }'
}
