#!/usr/bin/env bash
# Benchmark: rubra-csvsum against polars and DuckDB on the reference CSV
# (3e6 rows x 40 columns, ~830 MB), warm page cache. Prints a markdown table.
#
#   bench/csvsum/run.sh            # RUNS=5 CSV=/tmp/csvsum-ref.csv by default
#
# Needs: cargo; python3 with `pip install polars duckdb` (skipped if missing);
# /usr/bin/time for the memory check (apt-get install time).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# WORKSPACE: the cargo workspace to build in (default: this repository).
cd "${WORKSPACE:-$HERE/../..}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-csvsum}"
CSV="${CSV:-/tmp/csvsum-ref.csv}"
RUNS="${RUNS:-5}"

cargo build --quiet --release -p rubra-csvsum --examples
BIN="$CARGO_TARGET_DIR/release/examples"
if [ ! -s "$CSV" ]; then
  "$BIN/gen_csv" "$CSV" 3000000 40
fi
cat "$CSV" > /dev/null # warm the page cache

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $CSV, $(stat -c %s "$CSV") bytes"
if [ -x /usr/bin/time ]; then
  rss=$(/usr/bin/time -v "$BIN/sum_file" "$CSV" 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p')
  echo "rubra-csvsum sum_file max RSS: $((rss / 1024)) MiB"
  rss=$(/usr/bin/time -v "$BIN/sum_file" "$CSV" --stream 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p')
  echo "rubra-csvsum --stream (sum_reader) max RSS: $((rss / 1024)) MiB"
fi
python3 "$HERE/bench.py" "$BIN/sum_file" "$CSV" "$RUNS"
