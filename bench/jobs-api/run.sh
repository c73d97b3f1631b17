#!/usr/bin/env bash
# Benchmark: whole CSV jobs through the API on a release `rubra serve` (embedded default:
# SQLite, in-process workers): POST /jobs, then GET /jobs/{id} every 5 ms until done, on the
# reference file (3e6 rows x 40 columns, ~830 MB) from local disk and from a moto S3 server;
# polars on the same file and object in the same run. Prints a markdown table.
#
#   bench/jobs-api/run.sh        # RUNS=5 CSV=/tmp/csvsum-ref.csv MOTO_PORT=5078 PORT=18480
#
# Needs: cargo, python3 with moto[server] (and polars, optional), curl. Starts its own moto
# (the 830 MB object would weigh on a shared one) and its own server; stops both at the end.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "${WORKSPACE:-$HERE/../..}"
TARGET="${CARGO_TARGET_DIR:-target}"
CSV="${CSV:-/tmp/csvsum-ref.csv}"
RUNS="${RUNS:-5}"
MOTO_PORT="${MOTO_PORT:-5078}"
PORT="${PORT:-18480}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

cargo build --quiet --release -p rubra
if [ ! -s "$CSV" ]; then
  cargo build --quiet --release -p rubra-csvsum --example gen_csv
  "$TARGET/release/examples/gen_csv" "$CSV" 3000000 40
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
EP="http://127.0.0.1:$MOTO_PORT"
for _ in $(seq 100); do curl -sf -o /dev/null "$EP/" && break; sleep 0.2; done
curl -sf -X PUT -o /dev/null "$EP/jobsbench"
curl -sf -o /dev/null -T "$CSV" "$EP/jobsbench/ref.csv"

"$TARGET/release/rubra" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  --jobs-local-root "$(dirname "$CSV")" --s3-endpoint "$EP" --log-filter warn \
  --log-format json >"$WORK/serve.out" 2>"$WORK/serve.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
ADMIN="$(head -1 "$WORK/data/admin.key")"
KEY="$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"bench"}' "http://127.0.0.1:$PORT/clients" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"

cat "$CSV" >/dev/null # warm the page cache
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $CSV, $(stat -c %s "$CSV") bytes; S3: moto at $EP; $RUNS runs after one warm-up"
python3 "$HERE/bench.py" "http://127.0.0.1:$PORT" "$KEY" "$(basename "$CSV")" "$CSV" \
  "s3://jobsbench/ref.csv" "$EP" "$RUNS"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
