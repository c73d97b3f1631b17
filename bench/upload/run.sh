#!/usr/bin/env bash
# Upload benchmark: the server alone (plain load generator) vs `rubra upload`,
# then a re-run. Usage: bench/upload/run.sh [N_IMAGES] [CONCURRENCY]
# Needs only this repository; everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000}
C=${2:-8}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-upload}
cargo build --release -q -p rubra -p rubra-upload --examples
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN/examples/gen_images" "$WORK/images" "$N"
du -sh "$WORK/images"

start_server() { # $1: data dir, $2: port; sets SERVER_PID and KEY
  # One key drives the load (the re-run sends ~3 000 HEADs/s): its rate limit is lifted.
  "$BIN/rubra" serve --listen "127.0.0.1:$2" --data-dir "$1" --log-format json \
    --rate-limit-rps 1000000 --rate-limit-burst 1000000 \
    --rate-limit-upload-bytes-per-sec 4000000000 --rate-limit-upload-burst-bytes 4000000000 >"$1.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/healthz" >/dev/null && break; sleep 0.1; done
  KEY=$(curl -sf -X POST "http://127.0.0.1:$2/clients" -H "authorization: Bearer $(cat "$1/admin.key")" \
    -H 'content-type: application/json' -d '{"name":"bench"}' | sed 's/.*"api_key":"\([^"]*\)".*/\1/')
}

# 1. The server alone: every image posted once, raw, C connections.
start_server "$WORK/a" 18471
LOADGEN=$("$BIN/examples/loadgen" http://127.0.0.1:18471 "$KEY" "$WORK/images" "$C")
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# 2. The uploader on a fresh server, then 3. a re-run.
start_server "$WORK/b" 18472
t0=$(date +%s.%N)
"$BIN/examples/upload" "$WORK/images" --server http://127.0.0.1:18472 --key "$KEY" -j "$C" -q >"$WORK/up1.txt"
t1=$(date +%s.%N)
"$BIN/examples/upload" "$WORK/images" --server http://127.0.0.1:18472 --key "$KEY" -j "$C" -q >"$WORK/up2.txt"
t2=$(date +%s.%N)

up=$(echo "$t1 - $t0" | bc); re=$(echo "$t2 - $t1" | bc)
echo
echo "| run | result |"
echo "|---|---|"
echo "| server alone (loadgen, $C conns) | $LOADGEN |"
echo "| rubra upload, $N images, -j $C | ${up} s, $(echo "scale=0; $N / $up" | bc) files/s |"
echo "| re-run (all already there) | ${re} s |"
echo
cat "$WORK/up1.txt" "$WORK/up2.txt"
