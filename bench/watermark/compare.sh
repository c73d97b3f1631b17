#!/usr/bin/env bash
# Watermark the reference 1980x1280 q90 JPEG (~900 KB) with a 500x100 RGBA PNG at
# the south-east corner (20 px in), with rubra-watermark, libvips and Pillow, and
# print a table. Wall time and CPU time are both reported: on a shared machine the
# CPU time per image is the figure that compares implementations fairly.
#
# Needs: cargo; `vips` (apt-get install -y libvips-tools); python3 with Pillow
# (pip install pillow). Missing competitors are skipped with a message.
# Usage: bench/watermark/compare.sh [iterations]   (env: TARGET_DIR, WORKDIR, OLD_BIN)
# OLD_BIN: a cpu_time example built from an older commit; its rows are measured in the
# same run, alternating with the current build's, so the two can be compared.
set -euo pipefail
N=${1:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${TARGET_DIR:-/work/target-watermark}
WORK=${WORKDIR:-$(mktemp -d)}
mkdir -p "$WORK"

(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build -q --release -p rubra-watermark \
    --example make_reference --example cpu_time)
"$TARGET_DIR/release/examples/make_reference" "$WORK" >&2
IMG="$WORK/reference.jpg"
OV="$WORK/overlay.png"
X=$((1980 - 500 - 20))
Y=$((1280 - 100 - 20))

rows=()
row() { rows+=("$(printf '| %-44s | %10s | %12s | %14s |' "$1" "$2" "$3" "$4")"); }

# rubra-watermark, in process.
builds=("$TARGET_DIR/release/examples/cpu_time")
[ -n "${OLD_BIN:-}" ] && builds+=("$OLD_BIN")
for spec in "auto 1" "auto 2" "pixels 1"; do
    set -- $spec
    iters=$N
    [ "$1" = pixels ] && iters=$(( N / 10 > 5 ? N / 10 : 5 ))
    for bin in "${builds[@]}"; do
        line=$("$bin" "$IMG" "$OV" southeast "$iters" "$1" "$2")
        echo "$line" >&2
        cpu=$(sed -E 's/.*cpu ([0-9.]+) ms\/image.*/\1/' <<<"$line")
        per_core=$(sed -E 's/.*=> ([0-9]+) images\/s per core.*/\1/' <<<"$line")
        thr=$(sed -E 's/.*throughput ([0-9]+) images\/s.*/\1/' <<<"$line")
        label="rubra-watermark ($1 path, $2 thread(s))"
        [ "$bin" = "${OLD_BIN:-}" ] && label="old build: $label"
        row "$label" "$thr" "$cpu" "$per_core"
    done
done

# libvips CLI, one process per image (as a server shelling out would).
if command -v vips >/dev/null; then
    vn=$(( N / 5 > 10 ? N / 5 : 10 ))
    for conc in 1 2; do
        TIMEFORMAT='%R %U %S'
        t=$( { time (for _ in $(seq "$vn"); do
            VIPS_CONCURRENCY=$conc vips composite2 "$IMG" "$OV" "$WORK/vips.jpg[Q=90]" over --x $X --y $Y
        done) ; } 2>&1 )
        read -r real user sys <<<"$t"
        thr=$(python3 -c "print(round($vn/$real))")
        cpu=$(python3 -c "print(round(($user+$sys)*1000/$vn, 2))")
        pc=$(python3 -c "print(round($vn/($user+$sys)))")
        row "libvips $(vips --version | cut -d- -f2) composite2 (VIPS_CONCURRENCY=$conc)" "$thr" "$cpu" "$pc"
    done
else
    echo "SKIPPED libvips: vips not found (apt-get install -y libvips-tools)" >&2
fi

# Pillow, in process.
if python3 -c 'import PIL' 2>/dev/null; then
    pn=$(( N / 5 > 10 ? N / 5 : 10 ))
    out=$(python3 - "$IMG" "$OV" "$pn" $X $Y <<'PY'
import io, sys, time
from PIL import Image
img, ovp, n, x, y = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(img, "rb").read()
ov = Image.open(ovp).convert("RGBA")
ov.load()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(n):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im.paste(ov, (x, y), ov)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
import PIL
print(PIL.__version__, round(n / wall), round(cpu * 1000 / n, 2), round(n / cpu))
PY
)
    read -r ver thr cpu pc <<<"$out"
    row "Pillow $ver paste+save q90" "$thr" "$cpu" "$pc"
else
    echo "SKIPPED Pillow: python3 -c 'import PIL' failed (pip install pillow)" >&2
fi

echo
echo "Reference: $(stat -c %s "$IMG") bytes, 1980x1280 q90 4:2:0; overlay 500x100 at south-east, 20 px in; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-44s | %10s | %12s | %14s |\n' "implementation" "images/s" "CPU ms/image" "images/s/core"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..16})"
printf '%s\n' "${rows[@]}"
