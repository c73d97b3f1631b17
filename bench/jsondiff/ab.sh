#!/usr/bin/env bash
# Interleaved A/B of two rubra-jsondiff binaries on the same inputs, so both see
# the same machine load. Prints one line per run: round|mode|binary|wall user sys
# maxrss_kb|load1|whether the two binaries' outputs were identical.
#
# Usage: bench/jsondiff/ab.sh OLD_BIN NEW_BIN DIR [ROUNDS]
#   DIR holds large/{a,b}.json and large-shuffled/{a,b}.json (see run.sh, gen.py).
set -euo pipefail
OLD=$1 NEW=$2 DIR=$3 ROUNDS=${4:-3}
T=$(mktemp -d /tmp/jsondiff-ab.XXXXXX)
for ((k = 1; k <= ROUNDS; k++)); do
    for m in ordered "--key id" --set --multiset; do
        for v in old new; do
            bin=$OLD
            [ "$v" = new ] && bin=$NEW
            if [ "$m" = ordered ]; then d=$DIR/large; args=(); else d=$DIR/large-shuffled; read -ra args <<<"$m"; fi
            /usr/bin/time -o "$T/t" -f "%e %U %S %M" "$bin" "$d/a.json" "$d/b.json" "${args[@]}" >"$T/out_$v" 2>/dev/null || true
            same=-
            [ "$v" = new ] && cmp -s "$T/out_old" "$T/out_new" && same=same
            echo "$k|$m|$v|$(tail -1 "$T/t")|$(cut -d' ' -f1 /proc/loadavg)|$same"
        done
    done
done
rm -rf "$T"
