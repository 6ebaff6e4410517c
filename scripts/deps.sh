#!/usr/bin/env bash
# Installs the Debian packages quantgate builds, tests and benchmarks with.
# Idempotent: packages already present are not touched, and apt-get runs only
# when something is missing. Works as root or through sudo.
set -euo pipefail

PACKAGES=(
    build-essential   # gcc, make
    cmake             # the build
    pkg-config        # finds the libraries below
    libcjson-dev      # JSON: strategy specs, --json output
    libcriterion-dev  # unit tests, one process per test
    libh2o-evloop-dev # HTTP/1.1 + HTTP/2 server, event loop per core
    libssl-dev        # TLS for h2o (its pkg-config file requires openssl)
    libsqlite3-dev    # the embedded store
    libsodium-dev     # argon2id, secretbox vault, HMAC, random
    libjwt-dev        # HS256 access tokens
    libcurl4-openssl-dev # LLM providers: HTTP client, multi interface
    libjemalloc-dev   # the programs' allocator (Redis's): glibc's arenas cost a fifth of a signal
    python3           # integration tests talk HTTP to the real server
    curl              # e2e scripts and the HTTP benchmark
    openssl           # TLS test certificates, benchmark keys
    wrk               # make bench: HTTP load generator
    nginx-light       # make bench: the reference server measured beside ours
    tzdata            # /usr/share/zoneinfo: killzone time zones (signals)
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js runs the official `openai` client in the tests (and later the
# dashboard's tooling); a machine that has node from elsewhere keeps it.
command -v npm >/dev/null || missing+=(nodejs npm)

SUDO=""
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        SUDO="sudo"
    fi
    echo "deps.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm pieces, pinned by web/package-lock.json; reinstalled when the lock
# file is newer than what node_modules holds.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/web/package-lock.json" ]; then
    stamp="$root/web/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ "$root/web/package-lock.json" -nt "$stamp" ]; then
        echo "deps.sh: npm ci in web/" >&2
        npm ci --prefix "$root/web" --no-audit --no-fund --loglevel=error >&2
    fi
fi
