#!/usr/bin/env bash
# Benchmark: watches (DESIGN §8, issue #10) against the live-odds simulator. A release
# `rubra simulate odds` (started paused) and a release `rubra serve` (embedded default,
# --fetch-allow 127.0.0.1); one watch per game at 1000 ms; once every watch has its
# baseline the games run for DURATION s, then pause; after 2 s more the changes each watch
# recorded are compared with the changes the simulator made (path, op, old, new, in order):
# missing, extra, duplicates; latency = recorded ts - made ts; CPU of the `rubra serve`
# process over the run (utime+stime from /proc) as % of one core. One fresh simulator and
# server per run; then the same with bench/watches/baseline.py (a naive Python poller, one
# thread per watch) in place of `rubra serve`, on a fresh simulator with the same seed, as the
# reference measured in the same run (BASELINE=0 skips it). Prints a markdown table with one
# row per run and the medians.
#
#   bench/watches/run.sh     # RUNS=3 DURATION=60 GAMES=100 INTERVAL_MS=1000 PORT=18490 SIM_PORT=18491
#
# Target: every change recorded, none twice, each within INTERVAL_MS + 200 ms; CPU < 10 %.
# Needs: cargo, python3 (standard library only), curl.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "${WORKSPACE:-$HERE/../..}"
TARGET="${CARGO_TARGET_DIR:-target}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-60}"
GAMES="${GAMES:-100}"
INTERVAL_MS="${INTERVAL_MS:-1000}"
PORT="${PORT:-18490}"
SIM_PORT="${SIM_PORT:-18491}"
SEED="${SEED:-1}"
BASELINE="${BASELINE:-1}"

cargo build --quiet --release -p rubra
RUBRA="$TARGET/release/rubra"

WORK="$(mktemp -d)"
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap 'stop_all; rm -rf "$WORK"' EXIT

wait_http() { for _ in $(seq 150); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$GAMES games, watches every $INTERVAL_MS ms, $DURATION s of changes per run, $RUNS runs"
for run in $(seq "$RUNS"); do
  "$RUBRA" simulate odds --games "$GAMES" --listen "127.0.0.1:$SIM_PORT" \
    --seed "$((SEED + run))" --paused >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  rm -rf "$WORK/data"
  "$RUBRA" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --fetch-allow 127.0.0.1 \
    --log-filter warn --log-format json >"$WORK/serve.out" 2>"$WORK/serve.log" &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  wait_http "http://127.0.0.1:$SIM_PORT/status"
  wait_http "http://127.0.0.1:$PORT/healthz"
  ADMIN="$(head -1 "$WORK/data/admin.key")"
  KEY="$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "http://127.0.0.1:$PORT/clients" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
  python3 "$HERE/bench.py" run --server "http://127.0.0.1:$PORT" --key "$KEY" \
    --sim "http://127.0.0.1:$SIM_PORT" --serve-pid "$SERVE_PID" --sim-pid "$SIM_PID" \
    --duration "$DURATION" --interval-ms "$INTERVAL_MS" --out "$WORK/rubra-$run.json"
  stop_all

  [ "$BASELINE" = 1 ] || continue
  "$RUBRA" simulate odds --games "$GAMES" --listen "127.0.0.1:$SIM_PORT" \
    --seed "$((SEED + run))" --paused >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  python3 "$HERE/baseline.py" "$PORT" >"$WORK/baseline.log" 2>&1 &
  BASE_PID=$!
  PIDS+=("$BASE_PID")
  wait_http "http://127.0.0.1:$SIM_PORT/status"
  wait_http "http://127.0.0.1:$PORT/healthz"
  python3 "$HERE/bench.py" run --server "http://127.0.0.1:$PORT" --key none \
    --sim "http://127.0.0.1:$SIM_PORT" --serve-pid "$BASE_PID" --sim-pid "$SIM_PID" \
    --duration "$DURATION" --interval-ms "$INTERVAL_MS" --out "$WORK/python-$run.json"
  stop_all
done
python3 "$HERE/bench.py" table --interval-ms "$INTERVAL_MS" "$WORK"/rubra-*.json "$WORK"/python-*.json
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
