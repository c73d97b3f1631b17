#!/usr/bin/env bash
# End-to-end watermark benchmark: POST /watermark of the reference 1980×1280 q90 JPEG
# (~900 KB) with a stored 500×100 PNG overlay at the south-east corner (20 px in), against a
# release `rubra serve` on the embedded default, driven by wrk on loopback (3 runs, median).
# libvips (`vips composite2`, one process per image) and Pillow (paste + save q90, in process)
# run in the same script on both cores (two workers each). Prints a table.
#
# usage: bench/watermark-http/run.sh [SECONDS] [CONNECTIONS]   (default 15 s, 8 connections)
# needs: wrk, curl, vips (libvips-tools), python3 with Pillow (PYTHON=… for a venv's).
# SKIP_BUILD=1 uses the built binaries; TARGET=DIR takes `rubra` and `examples/make_reference`
# from DIR instead of the target dir's release folder (an old build kept aside, for A/B runs);
# SERVER_CPUS=0 pins the server to one core.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-15}"
CONNS="${2:-8}"
OUT=$(mktemp -d /tmp/rubra-wm-http.XXXXXX)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build -q --release -p rubra
  cargo build -q --release -p rubra-watermark --example make_reference
fi
TARGET="${TARGET:-${CARGO_TARGET_DIR:-target}/release}"
"$TARGET/examples/make_reference" "$OUT" >&2
IMG="$OUT/reference.jpg"
OV="$OUT/overlay.png"

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
curl -fs -X PUT -H "authorization: Bearer $KEY" -H 'content-type: image/png' \
  --data-binary @"$OV" "127.0.0.1:$PORT/overlays/logo" >/dev/null
URL="http://127.0.0.1:$PORT/watermark?overlay=logo&gravity=southeast&dx=20&dy=20"

# One checked request: a JPEG back, by the DCT fast path.
curl -fs -D "$OUT/headers" -o "$OUT/out.jpg" -H "authorization: Bearer $KEY" \
  -H 'content-type: image/jpeg' --data-binary @"$IMG" "$URL"
grep -qi '^content-type: image/jpeg' "$OUT/headers"
ROUTE=$(grep -i '^x-rubra-watermark-route' "$OUT/headers" | cut -d' ' -f2 | tr -d '\r')
echo "route: $ROUTE; output $(stat -c %s "$OUT/out.jpg") bytes (input $(stat -c %s "$IMG"))" >&2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
RUBRA_IMAGE="$IMG" RUBRA_KEY="$KEY" wrk -t1 -c"$CONNS" -d3s -s bench/watermark-http/post.lua "$URL" >/dev/null
runs=()
for i in 1 2 3; do
  before=$(cpu_ticks "$SERVER")
  /usr/bin/time -f "%U %S" -o "$OUT/wrk.time" env RUBRA_IMAGE="$IMG" RUBRA_KEY="$KEY" \
    wrk -t1 -c"$CONNS" -d"${SECS}s" -s bench/watermark-http/post.lua "$URL" >"$OUT/wrk.out"
  after=$(cpu_ticks "$SERVER")
  runs+=("$(grep '^RESULT' "$OUT/wrk.out") server_ticks=$((after - before)) wrk_time=$(tr ' ' , <"$OUT/wrk.time") load=$(cut -d' ' -f1 /proc/loadavg)")
  echo "run $i: ${runs[-1]}" >&2
done

# libvips: one `vips composite2` process per image, two workers in parallel (both cores).
VN=15
X=$((1980 - 500 - 20)); Y=$((1280 - 100 - 20))
vips_rate=n/a; vips_ver=n/a
if command -v vips >/dev/null; then
  vips_ver=$(vips --version | cut -d- -f2)
  t0=$(date +%s.%N)
  workers=()
  for w in 1 2; do
    ( for _ in $(seq "$VN"); do
        VIPS_CONCURRENCY=1 vips composite2 "$IMG" "$OV" "$OUT/vips$w.jpg[Q=90]" over --x $X --y $Y
      done ) &
    workers+=($!)
  done
  # Only the two workers: a bare `wait` would also wait for the server.
  wait "${workers[@]}"
  t1=$(date +%s.%N)
  vips_rate=$(python3 -c "print(f'{2*$VN/($t1-$t0):.1f}')")
fi

# Pillow: decode, paste, encode q90 in process, two worker processes.
pil_rate=n/a; pil_ver=n/a
PYTHON="${PYTHON:-python3}"
if "$PYTHON" -c 'import PIL' 2>/dev/null; then
  pil_ver=$("$PYTHON" -c 'import PIL; print(PIL.__version__)')
  cat >"$OUT/pil.py" <<'PY'
import io, sys
from PIL import Image
img, ovp, n, x, y = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(img, "rb").read()
ov = Image.open(ovp).convert("RGBA"); ov.load()
for _ in range(n):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im.paste(ov, (x, y), ov)
    buf = io.BytesIO(); im.save(buf, "JPEG", quality=90)
PY
  PN=30
  t0=$(date +%s.%N)
  "$PYTHON" "$OUT/pil.py" "$IMG" "$OV" $PN $X $Y &
  p1=$!
  "$PYTHON" "$OUT/pil.py" "$IMG" "$OV" $PN $X $Y &
  wait "$p1" "$!"
  t1=$(date +%s.%N)
  pil_rate=$(python3 -c "print(f'{2*$PN/($t1-$t0):.1f}')")
fi

python3 - "$HZ" "$CONNS" "$vips_rate" "$vips_ver" "$pil_rate" "$pil_ver" "$ROUTE" "${runs[@]}" <<'PY'
import statistics, sys
hz, conns, vips, vips_ver, pil, pil_ver, route = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
rows = []
for line in sys.argv[8:]:
    kv = dict(x.split("=", 1) for x in line.split()[1:])
    secs = float(kv["seconds"])
    ok = int(kv["requests"]) - int(kv["non2xx"]) - int(kv["errors"])
    u, s = map(float, kv["wrk_time"].split(","))
    rows.append(dict(rate=ok / secs, p50=float(kv["p50_ms"]), p99=float(kv["p99_ms"]),
                     server=int(kv["server_ticks"]) / hz / secs, wrk=(u + s) / secs,
                     bad=int(kv["non2xx"]) + int(kv["errors"]), load=kv["load"]))
med = sorted(rows, key=lambda r: r["rate"])[1]
print(f"| POST /watermark ({route}), {conns} connections | images/s | p50 ms | p99 ms | server CPU (cores) | wrk CPU (cores) | errors | load avg |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for i, r in enumerate(rows, 1):
    print(f"| rubra serve, run {i} | {r['rate']:.1f} | {r['p50']} | {r['p99']} | {r['server']:.2f} | {r['wrk']:.2f} | {r['bad']} | {r['load']} |")
print(f"| **rubra serve, median of 3** | **{med['rate']:.1f}** | {med['p50']} | {med['p99']} | {med['server']:.2f} | {med['wrk']:.2f} | {med['bad']} | {med['load']} |")
print(f"| libvips {vips_ver} `vips composite2`, 2 processes (same run) | {vips} | | | | | | |")
print(f"| Pillow {pil_ver} paste + save q90, 2 processes (same run) | {pil} | | | | | | |")
if vips != "n/a":
    print(f"\nrubra / libvips: {med['rate'] / float(vips):.1f}x; rubra / Pillow: {med['rate'] / float(pil):.1f}x; "
          f"target 1000/s: {med['rate'] / 10:.0f}% of it")
PY
