#!/usr/bin/env bash
# Two builds of `rubra serve` compared on POST /watermark over HTTP, on a noisy machine: both
# servers run at once (each on its own embedded default), and wrk loads them one at a time in
# short bursts, A then B, round after round, so that both meet the same minutes of the box's
# noise. Per burst: images/s and the server's CPU per request (utime + stime of its process);
# then medians, and the median of the per-round ratios B/A (paired, which is what the noise
# cannot move much). The same request as run.sh: the reference 1980×1280 q90 JPEG, a 500×100
# overlay at the south-east corner, 8 connections.
#
# usage: bench/watermark-http/ab.sh DIR_A DIR_B [ROUNDS] [SECONDS]   (default 16 rounds of 5 s)
# DIR_A, DIR_B: folders holding a `rubra` binary each (e.g. copies of target/release/rubra
# of two commits). `make_reference` comes from MAKE_REFERENCE (default the target dir's
# release examples; `cargo build --release -p rubra-watermark --example make_reference`).
# needs: wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
A="$1"
B="$2"
ROUNDS="${3:-16}"
SECS="${4:-5}"
OUT=$(mktemp -d /tmp/rubra-wm-ab.XXXXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

MAKE_REFERENCE="${MAKE_REFERENCE:-${CARGO_TARGET_DIR:-target}/release/examples/make_reference}"
"$MAKE_REFERENCE" "$OUT" >&2
IMG="$OUT/reference.jpg"

# Starts the build in $2 as server $1: its port, key and pid in $OUT/$1.env.
start() {
  local name=$1 dir=$2 port admin key
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$dir/rubra" serve --listen "127.0.0.1:$port" --data-dir "$OUT/data-$name" --log-filter warn \
    --rate-limit-rps 1000000 --rate-limit-burst 1000000 \
    --rate-limit-upload-bytes-per-sec 4000000000 --rate-limit-upload-burst-bytes 4000000000 \
    >"$OUT/$name.out" 2>"$OUT/$name.err" &
  PIDS+=($!)
  echo "PID=$!" >"$OUT/$name.env"
  for _ in $(seq 1 100); do curl -fs "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  admin=$(cat "$OUT/data-$name/admin.key")
  key=$(curl -fs -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"name":"bench"}' "127.0.0.1:$port/clients" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  curl -fs -X PUT -H "authorization: Bearer $key" -H 'content-type: image/png' \
    --data-binary @"$OUT/overlay.png" "127.0.0.1:$port/overlays/logo" >/dev/null
  echo "KEY=$key" >>"$OUT/$name.env"
  echo "URL='http://127.0.0.1:$port/watermark?overlay=logo&gravity=southeast&dx=20&dy=20'" >>"$OUT/$name.env"
}

# One burst of $2 seconds against server $1: "images/s ms-of-CPU-a-request".
burst() {
  local name=$1 secs=$2 before after res
  # shellcheck disable=SC1090
  . "$OUT/$name.env"
  before=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  res=$(RUBRA_IMAGE="$IMG" RUBRA_KEY="$KEY" wrk -t1 -c8 -d"${secs}s" \
    -s bench/watermark-http/post.lua "$URL" | grep '^RESULT')
  after=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  python3 - "$res" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import sys
kv = dict(x.split("=", 1) for x in sys.argv[1].split()[1:])
ok = int(kv["requests"]) - int(kv["non2xx"]) - int(kv["errors"])
if ok <= 0 or int(kv["non2xx"]) or int(kv["errors"]):
    sys.exit(f"failed requests in a burst: {sys.argv[1]}")
cpu_ms = (float(sys.argv[3]) - float(sys.argv[2])) * 1000 / int(sys.argv[4])
print(f"{ok / float(kv['seconds']):.1f} {cpu_ms / ok:.3f}")
PY
}

start a "$A"
start b "$B"
burst a 2 >/dev/null
burst b 2 >/dev/null
rows=()
for r in $(seq "$ROUNDS"); do
  ra=$(burst a "$SECS")
  rb=$(burst b "$SECS")
  rows+=("$ra $rb")
  echo "round $r: A $ra  B $rb" >&2
done

python3 - "$A" "$B" "$SECS" "${rows[@]}" <<'PY'
import statistics, sys
a_dir, b_dir, secs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [list(map(float, r.split())) for r in sys.argv[4:]]
print(f"| POST /watermark, {len(rows)} alternating bursts of {secs} s | A: {a_dir} | B: {b_dir} | B / A |")
print("|---|---:|---:|---:|")
for i, (ra, ca, rb, cb) in enumerate(rows, 1):
    print(f"| round {i}: images/s, server CPU ms a request | {ra:.1f}, {ca:.3f} | {rb:.1f}, {cb:.3f} | {rb / ra:.3f}, {cb / ca:.3f} |")
med = lambda xs: statistics.median(xs)
print(f"| **median** | **{med([r[0] for r in rows]):.1f}, {med([r[1] for r in rows]):.3f}** "
      f"| **{med([r[2] for r in rows]):.1f}, {med([r[3] for r in rows]):.3f}** "
      f"| **{med([r[2] / r[0] for r in rows]):.3f}, {med([r[3] / r[1] for r in rows]):.3f}** |")
PY
