#!/usr/bin/env bash
# bench/run.sh BUILD_DIR - every benchmark, each printing its own table.
# Figures are measured, never asserted; compare them with the goals in the
# README. Uses $TMPDIR (default /tmp) for the generated data files.
set -euo pipefail
build=${1:-build-bench}
bars=${QG_BENCH_BARS:-10000000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qg-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "quantgate benchmarks: $bars bars, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

"$build/bench_load" "$bars"
"$build/bench_indicators" "$bars"
"$build/bench_ict" "${QG_BENCH_ICT_BARS:-2000000}"

# The backtester on the same CSV a user would load: load time, backtest
# speed (load excluded) and peak memory of load + backtest together.
"$build/quantgate" gen-data --bars "$bars" --timeframe 1m --seed 42 --start 2024-01-01 --quiet \
    --out "$tmp/bars.csv"
"$build/bench_backtest" "$tmp/bars.csv"

# Vector index: HNSW build, memory, q/s and recall@10 by ef_search; exact search at 1M
# (sizes from QG_BENCH_VEC_N, QG_BENCH_VEC_Q, QG_BENCH_VEC_FLAT_N for a quick run).
"$build/bench_vindex"

# HTTP: quantgate serve next to nginx under wrk (bench/http.sh).
"$(dirname "$0")/http.sh" "$build"

# AI: what quantgate adds to an LLM call, against a canned provider (bench/ai.sh).
"$(dirname "$0")/ai.sh" "$build"

# Signal alerts: durable webhook accepts and end-to-end processing (bench/signals.sh).
"$(dirname "$0")/signals.sh" "$build"
