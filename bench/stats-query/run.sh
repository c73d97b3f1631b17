#!/usr/bin/env bash
# Query benchmark: fills a database with EVENTS synthetic events over DAYS days through the
# store's write path (examples/stats_fill.rs), serves it with a release `rubra serve`, and
# times GET /stats for random ranges and thresholds and for 1h buckets (query.py). Prints a
# table. SQLite by default; with DATABASE=pg, a fresh PostgreSQL database from
# RUBRA_TEST_DATABASE_URL.
#
# usage: bench/stats-query/run.sh [EVENTS] [DAYS] [REQUESTS]   (default 10000000 30 200)
# KEEP=DIR keeps (or reuses, if filled) the data folder in DIR.
# SKIP_BUILD=1 runs the binaries already built in ${CARGO_TARGET_DIR:-target} (A/B runs of two builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS="${1:-10000000}"
DAYS="${2:-30}"
N="${3:-200}"
DATABASE="${DATABASE:-sqlite}"
OUT="${KEEP:-$(mktemp -d /tmp/rubra-stats-query.XXXXXX)}"
mkdir -p "$OUT/data"
trap 'kill "${SERVER:-0}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$OUT"' EXIT

[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p rubra
[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p rubra-store --example stats_fill
TARGET="${CARGO_TARGET_DIR:-target}/release"
ARGS=()
if [ "$DATABASE" = pg ]; then
  if [ ! -f "$OUT/db_url" ]; then
    db="rubra_bench_stats_$RANDOM"
    psql -q "$RUBRA_TEST_DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
    echo "${RUBRA_TEST_DATABASE_URL%/*}/$db" >"$OUT/db_url"
  fi
  URL=$(cat "$OUT/db_url")
  ARGS=(--database-url "$URL")
else
  URL="sqlite://$OUT/data/rubra.db"
fi
if [ ! -f "$OUT/client" ]; then
  /usr/bin/time -f "fill: %e s wall, %M KB max RSS" "$TARGET/examples/stats_fill" "$URL" "$EVENTS" "$DAYS" >"$OUT/client"
  [ "$DATABASE" = pg ] && psql -q "$URL" -c "VACUUM ANALYZE" >/dev/null
fi
read -r CLIENT KEY <"$OUT/client"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TARGET/rubra" serve --listen "127.0.0.1:$PORT" --data-dir "$OUT/data" --log-filter warn "${ARGS[@]}" \
  >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVER=$!
for _ in $(seq 1 200); do curl -fs "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
echo "$EVENTS events over $DAYS days on $DATABASE; database size: $(du -sh "$OUT/data" | cut -f1)"
if [ "$DATABASE" = pg ]; then
  python3 bench/stats-query/query.py "http://127.0.0.1:$PORT" "$KEY" "$DAYS" "$N"
else
  python3 bench/stats-query/query.py "http://127.0.0.1:$PORT" "$KEY" "$DAYS" "$N" "$OUT/data/rubra.db" "$CLIENT"
fi
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
