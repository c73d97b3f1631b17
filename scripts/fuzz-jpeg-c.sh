#!/usr/bin/env bash
# The C side of JPEG decoding under AddressSanitizer and UBSan: the fast Huffman decoder
# (crates/rubra-image/csrc/jpeg_huffman.c) against libjpeg-turbo's own on damaged copies of
# several kinds of baseline JPEG (crates/rubra-image/csrc/fuzz/huffman_diff.c), and on
# generated baseline files of every shape, clean and damaged, compared down to the
# coefficients (crates/rubra-image/csrc/fuzz/huffman_gen.c). cargo-fuzz instruments only Rust
# code, so this is where the C gets its memory checks.
#
# usage: scripts/fuzz-jpeg-c.sh [ITERATIONS [SEED]]
#        (default 2000 damaged copies per file, 10 times as many generated files, seed 1)
# needs: gcc, libjpeg62-turbo-dev (scripts/build-deps.sh), cjpeg/djpeg/jpegtran
#        (libjpeg-turbo-progs), cargo (to make the reference picture).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS="${1:-2000}"
SEED="${2:-1}"
OUT=$(mktemp -d /tmp/rubra-fuzz-jpeg-c.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
C=crates/rubra-image/csrc
gcc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -I"$C" \
  "$C/fuzz/huffman_diff.c" "$C/jpeg_rows.c" "$C/jpeg_huffman.c" -ljpeg -o "$OUT/huffman_diff"
gcc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -I"$C" \
  "$C/fuzz/huffman_gen.c" "$C/jpeg_rows.c" "$C/jpeg_huffman.c" -ljpeg -o "$OUT/huffman_gen"
ASAN_OPTIONS=detect_leaks=1 "$OUT/huffman_gen" "$((ITERATIONS * 10))" "$SEED"
cargo run -q -p rubra-image --example reference_image -- "$OUT/ref.jpg" >/dev/null
# Small crops keep an iteration cheap; each file is another kind of baseline JPEG.
jpegtran -crop 160x96+304+304 "$OUT/ref.jpg" >"$OUT/a-420.jpg"
jpegtran -restart 3B "$OUT/a-420.jpg" >"$OUT/b-restart3.jpg"
jpegtran -optimize "$OUT/a-420.jpg" >"$OUT/c-optimized.jpg"
jpegtran -grayscale -restart 1 "$OUT/a-420.jpg" >"$OUT/d-grey-restart1.jpg"
djpeg -ppm "$OUT/a-420.jpg" >"$OUT/a.ppm"
cjpeg -quality 100 -sample 1x1 "$OUT/a.ppm" >"$OUT/e-444-q100.jpg"
cjpeg -quality 40 -sample 2x1 -restart 2 "$OUT/a.ppm" >"$OUT/f-422-restart2.jpg"
ASAN_OPTIONS=detect_leaks=1 "$OUT/huffman_diff" "$ITERATIONS" "$OUT"/[a-f]-*.jpg
