#!/usr/bin/env bash
# Benchmark: whole CSV jobs through the API on a release `rubra serve` (embedded default:
# SQLite, in-process workers): POST /jobs, then GET /jobs/{id} every 5 ms until done, on the
# reference file (3e6 rows x 40 columns, ~830 MB) from local disk, from a moto S3 server and
# from `s3_dir_server` (a read-only S3 server in Rust, rubra-jobs example: moto alone needs
# 2-3 s to serve the object); polars on the same file and object in the same run. Prints a
# markdown table.
#
#   bench/jobs-api/run.sh   # RUNS=5 CSV=/tmp/csvsum-ref.csv MOTO_PORT=5078 RS3_PORT=5079 PORT=18480
#
# With MEM=1 it then measures the peak memory of each rubra server during one job (mem.py)
# on the reference file and on CSV2 (default /tmp/csvsum-ref2x.csv, 6e6 rows: twice the
# size), from local disk and from both S3 servers.
#
# Needs: cargo, python3 with moto[server] (and polars, optional), curl. Starts its own moto
# (the 830 MB object would weigh on a shared one), its own S3 server in Rust and two rubra
# servers (PORT against moto, PORT+1 against the Rust one); stops them all at the end.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "${WORKSPACE:-$HERE/../..}"
TARGET="${CARGO_TARGET_DIR:-target}"
CSV="${CSV:-/tmp/csvsum-ref.csv}"
RUNS="${RUNS:-5}"
MEM="${MEM:-0}"
CSV2="${CSV2:-/tmp/csvsum-ref2x.csv}"
MOTO_PORT="${MOTO_PORT:-5078}"
RS3_PORT="${RS3_PORT:-5079}"
PORT="${PORT:-18480}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then # SKIP_BUILD=1: use the binaries already in $TARGET
  cargo build --quiet --release -p rubra
  cargo build --quiet --release -p rubra-jobs --example s3_dir_server
fi
if [ ! -s "$CSV" ] || { [ "$MEM" = 1 ] && [ ! -s "$CSV2" ]; }; then
  [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --quiet --release -p rubra-csvsum --example gen_csv
  [ -s "$CSV" ] || "$TARGET/release/examples/gen_csv" "$CSV" 3000000 40
  [ "$MEM" = 1 ] && { [ -s "$CSV2" ] || "$TARGET/release/examples/gen_csv" "$CSV2" 6000000 40; }
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

# The Rust S3 server serves $WORK/rs3/<bucket>/<key>: link the file in.
mkdir -p "$WORK/rs3/jobsbench"
ln -s "$CSV" "$WORK/rs3/jobsbench/ref.csv"
[ "$MEM" = 1 ] && ln -s "$CSV2" "$WORK/rs3/jobsbench/ref2x.csv"
"$TARGET/release/examples/s3_dir_server" "$WORK/rs3" "127.0.0.1:$RS3_PORT" 2>"$WORK/rs3.log" &
PIDS+=($!)
RS3="http://127.0.0.1:$RS3_PORT"

# The servers' jobs root holds only the CSV files (a root may not hold a data folder): hard
# links to them, or copies when $WORK is on another file system.
mkdir -p "$WORK/jobs"
link_in() { ln "$1" "$WORK/jobs/" 2>/dev/null || cp "$1" "$WORK/jobs/"; }
link_in "$CSV"
if [ "$MEM" = 1 ]; then link_in "$CSV2"; fi

# serve NAME PORT S3_ENDPOINT: starts a rubra server; sets KEY_<NAME> to a client's API key.
serve() {
  "$TARGET/release/rubra" serve --listen "127.0.0.1:$2" --data-dir "$WORK/data-$1" \
    --jobs-local-root "$WORK/jobs" --jobs-s3-allow jobsbench --s3-endpoint "$3" \
    --log-filter warn --log-format json >"$WORK/serve-$1.out" 2>"$WORK/serve-$1.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$2/healthz" && break; sleep 0.1; done
  local admin
  admin="$(head -1 "$WORK/data-$1/admin.key")"
  printf -v "KEY_$1" '%s' "$(curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "http://127.0.0.1:$2/clients" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
}
serve moto "$PORT" "$EP"
serve rs3 "$((PORT + 1))" "$RS3"

cat "$CSV" >/dev/null # warm the page cache
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $CSV, $(stat -c %s "$CSV") bytes; S3: moto at $EP, s3_dir_server at $RS3; $RUNS runs after one warm-up"
python3 "$HERE/bench.py" "http://127.0.0.1:$PORT" "$KEY_moto" "$(basename "$CSV")" "$CSV" \
  "s3://jobsbench/ref.csv" "$EP" "$RUNS" "http://127.0.0.1:$((PORT + 1))" "$KEY_rs3" "$RS3"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$MEM" = 1 ]; then
  curl -sf -o /dev/null -T "$CSV2" "$EP/jobsbench/ref2x.csv"
  cat "$CSV" "$CSV2" >/dev/null
  echo
  echo "memory of the rubra server against moto (pid ${PIDS[2]}):"
  python3 "$HERE/mem.py" "http://127.0.0.1:$PORT" "$KEY_moto" "${PIDS[2]}" \
    "local ref=$(basename "$CSV")" "local 2x=$(basename "$CSV2")" \
    "S3 moto ref=s3://jobsbench/ref.csv" "S3 moto 2x=s3://jobsbench/ref2x.csv"
  echo
  echo "memory of the rubra server against s3_dir_server (pid ${PIDS[3]}):"
  python3 "$HERE/mem.py" "http://127.0.0.1:$((PORT + 1))" "$KEY_rs3" "${PIDS[3]}" \
    "S3 Rust ref=s3://jobsbench/ref.csv" "S3 Rust 2x=s3://jobsbench/ref2x.csv" \
    "local ref=$(basename "$CSV")" "local 2x=$(basename "$CSV2")"
fi
