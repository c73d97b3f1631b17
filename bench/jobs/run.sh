#!/usr/bin/env bash
# Benchmark: one rubra-jobs job on the reference CSV (3e6 rows x 40 columns,
# ~830 MB), from a local moto S3 server and from local disk; a plain curl of
# the same object for reference. Prints a markdown table of medians.
#
#   bench/jobs/run.sh        # RUNS=5 CSV=/tmp/csvsum-ref.csv MOTO_PORT=5077
#
# Needs: cargo, python3 with moto[server], curl. Starts moto itself unless
# RUBRA_TEST_S3_ENDPOINT is already set.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "${WORKSPACE:-$HERE/../..}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-jobs}"
CSV="${CSV:-/tmp/csvsum-ref.csv}"
RUNS="${RUNS:-5}"
PORT="${MOTO_PORT:-5077}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"

cargo build --quiet --release -p rubra-csvsum --example gen_csv
cargo build --quiet --release -p rubra-jobs --example run_job
BIN="$CARGO_TARGET_DIR/release/examples"
[ -s "$CSV" ] || "$BIN/gen_csv" "$CSV" 3000000 40

if [ -z "${RUBRA_TEST_S3_ENDPOINT:-}" ]; then
  python3 -m moto.server -H 127.0.0.1 -p "$PORT" >/tmp/bench-jobs-moto.log 2>&1 &
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
  export RUBRA_TEST_S3_ENDPOINT="http://127.0.0.1:$PORT"
  for _ in $(seq 50); do curl -sf -o /dev/null "$RUBRA_TEST_S3_ENDPOINT/" && break; sleep 0.2; done
fi
EP="$RUBRA_TEST_S3_ENDPOINT"
curl -sf -X PUT -o /dev/null "$EP/bench" || true
SIGN=(--aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
if ! curl -sfI "${SIGN[@]}" -o /dev/null "$EP/bench/ref.csv"; then
  curl -sf -o /dev/null -T "$CSV" "$EP/bench/ref.csv"
fi
cat "$CSV" >/dev/null # warm the page cache

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $CSV, $(stat -c %s "$CSV") bytes; S3: moto at $EP"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# time_cmd NAME CMD...: runs CMD RUNS times, prints the median wall time.
time_cmd() {
  local name="$1"; shift
  local times=() out
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    out=$("$@")
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | median)
  echo "| $name | $med | ${times[*]} | ${out:0:90} |"
}

echo
echo "| what | median wall s | all runs | output |"
echo "|---|---|---|---|"
time_cmd "curl -o /dev/null (moto GET only)" curl -sf "${SIGN[@]}" -o /dev/null -w '%{size_download} bytes' "$EP/bench/ref.csv"
time_cmd "run_job s3:// (moto, stream + 2 parser threads)" "$BIN/run_job" s3://bench/ref.csv
time_cmd "run_job local (mmap)" "$BIN/run_job" "$(basename "$CSV")" --root "$(dirname "$CSV")"
time_cmd "run_job local (pread)" "$BIN/run_job" "$(basename "$CSV")" --root "$(dirname "$CSV")" --pread
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
