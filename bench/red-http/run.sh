#!/usr/bin/env bash
# End-to-end RED benchmark: `POST /red` of the reference 1980×1280 q90 JPEG (~900 KB) against a
# release `rubra serve` on the embedded default, driven by wrk on loopback, next to Pillow
# (decode + HSV red count) measured in the same run. Prints a table.
#
# usage: bench/red-http/run.sh [SECONDS] [CONNECTIONS]     (default 20 s, 4 connections)
# needs: wrk (apt-get install wrk); python3 with pillow and numpy for the comparison
#        (PYTHON=/path/to/venv/bin/python to use a venv's). SKIP_BUILD=1 uses the built binaries.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-20}"
CONNS="${2:-4}"
OUT=$(mktemp -d /tmp/rubra-red-http.XXXXXX)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build -q --release -p rubra
  cargo build -q --release -p rubra-image --example reference_image
fi
PYTHON="${PYTHON:-python3}"
TARGET="${CARGO_TARGET_DIR:-target}/release"
"$TARGET/examples/reference_image" "$OUT/ref.jpg" >/dev/null 2>&1
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The load comes from one key: its rate limit (issue #18) is lifted so the server is measured.
# SERVER_CPUS=0 pins the server to one core (the scaling rows); SERVE_ARGS adds flags.
PIN_SERVER=()
[ -n "${SERVER_CPUS:-}" ] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
# shellcheck disable=SC2086
"${PIN_SERVER[@]}" "$TARGET/rubra" serve --listen "127.0.0.1:$PORT" --data-dir "$OUT/data" --log-filter warn ${SERVE_ARGS:-} \
  --rate-limit-rps 1000000 --rate-limit-burst 1000000 \
    --rate-limit-upload-bytes-per-sec 4000000000 --rate-limit-upload-burst-bytes 4000000000 \
  >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
ADMIN=$(cat "$OUT/data/admin.key")
KEY=$(curl -fs -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
  -d '{"name":"bench"}' "127.0.0.1:$PORT/clients" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# Warm-up, then the measured run.
RUBRA_IMAGE="$OUT/ref.jpg" RUBRA_KEY="$KEY" wrk -t1 -c"$CONNS" -d3s -s bench/red-http/post.lua \
  "http://127.0.0.1:$PORT/red" >/dev/null
before=$(cpu_ticks "$SERVER")
/usr/bin/time -f "%U %S" -o "$OUT/wrk.time" env RUBRA_IMAGE="$OUT/ref.jpg" RUBRA_KEY="$KEY" \
  wrk -t1 -c"$CONNS" -d"${SECS}s" -s bench/red-http/post.lua "http://127.0.0.1:$PORT/red" >"$OUT/wrk.out"
after=$(cpu_ticks "$SERVER")
result=$(grep '^RESULT' "$OUT/wrk.out")
load=$(cut -d' ' -f1 /proc/loadavg)

pillow="n/a n/a"
if "$PYTHON" -c 'import PIL, numpy' 2>/dev/null; then
  # From Pillow's CPU time per image, one core: its plain decode (images/s on one core,
  # the issue's yardstick) and decode + HSV count scaled to the 2 cores.
  pillow=$(taskset -c 0 "$PYTHON" bench/red/pillow.py "$OUT/ref.jpg" 10 | "$PYTHON" -c '
import sys
ms = {}
for line in sys.stdin:
    name, wall_ms, cpu_ms, *_ = line.rstrip("\n").split("\t")
    ms[name] = float(cpu_ms)
print("%.1f %.1f" % (1000 / ms["pillow_decode"], 2000 / ms["pillow_decode_hsv_red"]))')
fi

python3 - "$result" "$before" "$after" "$HZ" "$(cat "$OUT/wrk.time")" "$pillow" "$load" "$CONNS" <<'PY'
import sys
res = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
before, after, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
wrk_user, wrk_sys = map(float, sys.argv[5].split())
(pillow_decode, pillow_hsv), load, conns = sys.argv[6].split(), sys.argv[7], sys.argv[8]
secs = float(res["seconds"])
ok = int(res["requests"]) - int(res["non2xx"]) - int(res["errors"])
rate = ok / secs
server_cpu = (after - before) / hz / secs
wrk_cpu = (wrk_user + wrk_sys) / secs
print(f"| POST /red, {conns} connections, {secs:.0f} s | images/s | p50 ms | p99 ms | server CPU (cores) | wrk CPU (cores) | errors | load avg |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
print(f"| rubra serve (release, SQLite) | {rate:.1f} | {res['p50_ms']} | {res['p99_ms']} | {server_cpu:.2f} | {wrk_cpu:.2f} | {int(res['non2xx']) + int(res['errors'])} | {load} |")
print(f"| Pillow decode alone, 1 core (same run, in process, no HTTP) | {pillow_decode} | | | | | | |")
print(f"| Pillow decode + HSV count, 2 cores (same run, in process, no HTTP) | {pillow_hsv} | | | | | | |")
if pillow_decode != "n/a":
    print(f"\nrubra /red on 2 cores ÷ Pillow's decode on 1 core: {rate / float(pillow_decode):.2f}x")
PY
