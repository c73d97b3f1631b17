#!/usr/bin/env bash
# Noisy neighbour (issue #18): one client floods `POST /red` and `POST /events` from many
# connections while a second, polite client sends a steady 20 requests/s of each. A release
# `rubra serve` on the embedded default with its DEFAULT limits (nothing lifted: the point is
# that the defaults protect the polite client). Each run starts a fresh server and measures
# two phases of SECONDS each: "idle" (the polite client alone) and "flood" (the polite client
# while the flood runs). Prints one table per run, then the medians and the verdict.
#
# The polite client: the reference 1980×1280 q90 JPEG (~900 KB, the RED benchmark's) to
# /red, and a batch of 10 events to /events, each 20/s, open loop (driver.py).
# The flood: wrk, CONNECTIONS/2 connections posting the same JPEG to /red and CONNECTIONS/2
# posting batches of BATCH events to /events, with a client timeout of FLOOD_TIMEOUT_S s.
#
# usage: bench/noisy-neighbour/run.sh [SECONDS] [CONNECTIONS] [BATCH] [RUNS]
#        (default 20 s, 64 connections, 5000 events, 3 runs)
#        RSS_BOUND_MB (default 512): the bound the server's peak RSS is judged against.
#        FLOOD_TIMEOUT_S (default 10). SKIP_BUILD=1 uses the binaries already built.
#        FLOOD=red or FLOOD=events floods that endpoint alone (CONNECTIONS/2 connections), to
#        see which one hurts the polite client [default: red,events].
#        PG_URL=postgres://…/db (e.g. $RUBRA_TEST_DATABASE_URL): each run creates its own
#        database on that PostgreSQL server, runs on it instead of the embedded default, and
#        drops it (needs psql). KEEP_RESULTS=FILE keeps the runs' raw figures (JSON lines).
#        FLOOD_NICE=19 runs the flood's wrk processes at that niceness, so that on a box
#        with few cores the load generator takes only the CPU the server leaves (a remote
#        flood costs the server its network and parsing work, not the generator's) [unset].
#        SERVE_ARGS="--flag value …": extra `rubra serve` flags, to try a limit other than the
#        default (the figures of record use none) [unset].
# The server starts in an empty directory with every RUBRA_* variable unset, so no
# rubra.toml or environment can change the limits under test.
# needs: wrk, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-20}"
CONNS="${2:-64}"
BATCH="${3:-5000}"
RUNS="${4:-3}"
RSS_BOUND_MB="${RSS_BOUND_MB:-512}"
FLOOD_TIMEOUT_S="${FLOOD_TIMEOUT_S:-10}"
FLOOD="${FLOOD:-red,events}"
OUT=$(mktemp -d /tmp/rubra-noisy.XXXXXX)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build -q --release -p rubra
  cargo build -q --release -p rubra-image --example reference_image
fi
TARGET="${CARGO_TARGET_DIR:-target}/release"
BIN=$(realpath "$TARGET/rubra")
"$TARGET/examples/reference_image" "$OUT/ref.jpg" >/dev/null
python3 -c "
import json, random
random.seed(7)
for name, n in (('small', 10), ('big', $BATCH)):
    with open('$OUT/' + name + '.json', 'w') as f:
        json.dump([{'red': round(random.random(), 6)} for _ in range(n)], f)
"

new_client() { # new_client PORT ADMIN NAME -> api key
  curl -fs -H "authorization: Bearer $2" -H 'content-type: application/json' \
    -d "{\"name\":\"$3\"}" "127.0.0.1:$1/clients" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])'
}

echo "noisy neighbour: $RUNS runs × (idle $SECS s, flood $SECS s); flood of $FLOOD," \
  "$((CONNS / 2)) connections each (/red: the reference JPEG; /events: $BATCH-event batches)," \
  "polite 20/s of each; default limits; ${PG_URL:+PostgreSQL, }${FLOOD_NICE:+flood at nice $FLOOD_NICE, }$(nproc) cores"
echo
for run in $(seq 1 "$RUNS"); do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$OUT/data" "$OUT/cwd" && mkdir "$OUT/cwd"
  DB_ARGS=()
  if [ -n "${PG_URL:-}" ]; then
    DB="rubra_bench_noisy_$RANDOM$RANDOM"
    psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
    DB_ARGS=(--database-url "${PG_URL%/*}/$DB")
  fi
  (cd "$OUT/cwd" && exec env $(compgen -e | grep '^RUBRA_' | sed 's/^/-u /') "$BIN" serve \
    --listen "127.0.0.1:$PORT" --data-dir "$OUT/data" --log-filter error "${DB_ARGS[@]}" ${SERVE_ARGS:-} \
    >"$OUT/serve.out" 2>"$OUT/serve.err") &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fs "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  ADMIN=$(cat "$OUT/data/admin.key")
  POLITE_KEY=$(new_client "$PORT" "$ADMIN" polite)
  FLOOD_KEY=$(new_client "$PORT" "$ADMIN" flood)
  echo "### run $run of $RUNS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  python3 bench/noisy-neighbour/driver.py run 127.0.0.1 "$PORT" "$SERVER" "$POLITE_KEY" "$FLOOD_KEY" \
    "$OUT/ref.jpg" "$OUT/small.json" "$OUT/big.json" "$SECS" "$CONNS" "$FLOOD_TIMEOUT_S" \
    "$OUT/results.jsonl" "$FLOOD"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  if [ -n "${PG_URL:-}" ]; then psql -q "$PG_URL" -c "DROP DATABASE $DB" >/dev/null || true; fi
  if [ -s "$OUT/serve.err" ]; then echo "server stderr (last 5 lines):"; tail -5 "$OUT/serve.err"; echo; fi
done
python3 bench/noisy-neighbour/driver.py summary "$OUT/results.jsonl" "$RSS_BOUND_MB"
if [ -n "${KEEP_RESULTS:-}" ]; then cp "$OUT/results.jsonl" "$KEEP_RESULTS"; fi
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
