#!/usr/bin/env bash
# Throughput and peak memory of `rubra slowlog` on a synthetic log.
#
#   bench/slowlog/run.sh [BYTES]        # default 1 GiB; writes the log under $OUT
#
# Builds the release `slowlog` and `gen_log` examples of rubra-slowlog, generates a log of
# BYTES (request trees of span closes across 40 functions, events, ~55 malformed lines per
# GiB), gzips it, and prints wall time, CPU time, MB/s and max RSS for plain and gzip input.
set -euo pipefail
BYTES=${1:-1073741824}
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${OUT:-${TMPDIR:-/tmp}/rubra-slowlog-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$OUT"
(cd "$ROOT" && cargo build --release -q -p rubra-slowlog --example slowlog --example gen_log)
BIN=$TARGET/release/examples
LOG=$OUT/log-$BYTES.json
if [ ! -s "$LOG" ]; then "$BIN/gen_log" "$BYTES" 42 >"$LOG"; fi
if [ ! -s "$LOG.gz" ]; then gzip -1 -c "$LOG" >"$LOG.gz"; fi
SIZE=$(stat -c %s "$LOG")
cat "$LOG" >/dev/null # warm the page cache
printf '%-10s %10s %8s %8s %10s %10s %10s\n' input bytes wall_s cpu_s MB/s_wall MB/s_cpu maxrss_KB
for input in "$LOG" "$LOG.gz"; do
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time.txt" "$BIN/slowlog" --json "$input" >"$OUT/report.json" 2>/dev/null
  read -r wall user sys rss <"$OUT/time.txt"
  awk -v n="$(basename "$input" | sed 's/.*\.//')" -v b="$SIZE" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" \
    'BEGIN { c = u + s; printf "%-10s %10d %8.2f %8.2f %10.0f %10.0f %10d\n", n, b, w, c, b / w / 1e6, b / c / 1e6, r }'
done
echo "lines: $(wc -l <"$LOG"), spans: $(grep -o '"spans": [0-9]*' "$OUT/report.json" | head -1)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
