#!/usr/bin/env bash
# Ingest benchmark: wrk posting batches of BATCH events (no ts: stamped now, random red) to
# `POST /events` on a release `rubra serve`, on the embedded SQLite default and, when
# RUBRA_TEST_DATABASE_URL is set, on PostgreSQL; next to the raw ceiling of Python's sqlite3
# inserting the same rows with the same indexes (baseline.py) in the same run. Prints a table.
#
# usage: bench/events-ingest/run.sh [SECONDS] [CONNECTIONS] [BATCH]   (default 20 s, 8, 5000)
# SKIP_BUILD=1 runs the binaries already built in ${CARGO_TARGET_DIR:-target} (A/B runs of two builds).
# needs: wrk, python3; PostgreSQL optional (source /tmp/rubra-session-env or scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-20}"
CONNS="${2:-8}"
BATCH="${3:-5000}"
OUT=$(mktemp -d /tmp/rubra-events-ingest.XXXXXX)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p rubra
TARGET="${CARGO_TARGET_DIR:-target}/release"
python3 -c "
import json, random, sys
random.seed(7)
json.dump([{'red': round(random.random(), 6)} for _ in range($BATCH)], sys.stdout)
" >"$OUT/body.json"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run_one NAME [serve args…]: starts a server, warms up, measures, prints one table row.
run_one() {
  local name=$1; shift
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$OUT/data"
  # The load comes from one key: its rate limit (issue #18) is lifted so the server is measured.
  "$TARGET/rubra" serve --listen "127.0.0.1:$port" --data-dir "$OUT/data" --log-filter warn \
    --rate-limit-rps 1000000 --rate-limit-burst 1000000 \
    --rate-limit-upload-bytes-per-sec 4000000000 --rate-limit-upload-burst-bytes 4000000000 \
    --rate-limit-events-per-sec 100000000 --rate-limit-events-burst 100000000 "$@" \
    >"$OUT/serve.out" 2>"$OUT/serve.err" &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fs "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local admin key name_c
  admin=$(cat "$OUT/data/admin.key" 2>/dev/null || grep -m1 '^rbk_' "$OUT/serve.out")
  name_c="bench$RANDOM$RANDOM"
  key=$(curl -fs -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"name\":\"$name_c\"}" "127.0.0.1:$port/clients" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  RUBRA_BODY="$OUT/body.json" RUBRA_KEY="$key" wrk -t2 -c"$CONNS" -d3s -s bench/events-ingest/post.lua \
    "http://127.0.0.1:$port/events" >/dev/null
  local before after
  before=$(cpu_ticks "$SERVER")
  RUBRA_BODY="$OUT/body.json" RUBRA_KEY="$key" wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 30s \
    -s bench/events-ingest/post.lua "http://127.0.0.1:$port/events" >"$OUT/wrk.out"
  after=$(cpu_ticks "$SERVER")
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  python3 - "$name" "$(grep '^RESULT' "$OUT/wrk.out")" "$before" "$after" "$HZ" "$BATCH" <<'PY'
import sys
name = sys.argv[1]
res = dict(kv.split("=") for kv in sys.argv[2].split()[1:])
before, after, hz, batch = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
secs = float(res["seconds"])
ok = int(res["requests"]) - int(res["non2xx"]) - int(res["errors"])
print(f"| {name} | {ok * batch / secs:,.0f} | {ok / secs:.1f} | {res['p50_ms']} | {res['p99_ms']} | {(after - before) / hz / secs:.2f} | {int(res['non2xx']) + int(res['errors'])} |")
PY
}

echo "| POST /events, batches of $BATCH, $CONNS connections, $SECS s | events/s | requests/s | p50 ms | p99 ms | server CPU (cores) | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
run_one "rubra serve (release, SQLite)"
if [ -n "${RUBRA_TEST_DATABASE_URL:-}" ]; then
  db="rubra_bench_ingest_$RANDOM"
  psql -q "$RUBRA_TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
  run_one "rubra serve (release, PostgreSQL 15)" --database-url "${RUBRA_TEST_DATABASE_URL%/*}/$db"
  psql -q "$RUBRA_TEST_DATABASE_URL" -c "DROP DATABASE $db" >/dev/null || true
fi
echo "| Python sqlite3, same rows and indexes, $BATCH per transaction (no HTTP, no rollups; same run) | $(python3 bench/events-ingest/baseline.py "$BATCH" 10) | | | | | |"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
