#!/usr/bin/env bash
# Benchmark rubra-jsondiff against deepdiff (PyPI) and jsondiffpatch (npm).
#
# Usage (from the repository root): bench/jsondiff/run.sh [N] [SMALL_N] [RUNS] [SIZES]
#   N        elements of the large pairs (default 500000)
#   SMALL_N  elements of the pair also given to the competitors (default 10000)
#   RUNS     runs per rubra-jsondiff case; the median wall time and CPU are reported (default 3)
#   SIZES    object sizes in bytes, space-separated (default "100 185"): the first is
#            issue 7's reference (500 000 objects of ~100 bytes, 2 x ~50 MB) and also
#            sizes the competitors' pair; 185 is the harsher full layout (2 x ~88 MB)
#   (competitors run once per case: they take seconds to minutes each)
# Needs python3, node/npm and /usr/bin/time. Installs deepdiff with pip and
# jsondiffpatch with npm into a temporary directory if they are missing.
set -euo pipefail

N=${1:-500000}
SMALL_N=${2:-10000}
RUNS=${3:-3}
SIZES=${4:-100 185}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${JSONDIFF_BENCH_DIR:-$(mktemp -d /tmp/jsondiff-bench.XXXXXX)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "# building rubra-jsondiff (release)" >&2
(cd "$ROOT" && cargo build --quiet --release -p rubra-jsondiff --example rubra-jsondiff)
RJD="$CARGO_TARGET_DIR/release/examples/rubra-jsondiff"

gen() { # n dir object_bytes [--shuffle]
    mkdir -p "$2"
    [ -s "$2/b.json" ] || python3 "$HERE/gen.py" "$1" "$2" --object-bytes "$3" ${4:-}
}
read -ra SIZE_LIST <<<"$SIZES"
echo "# generating inputs in $WORK" >&2
for z in "${SIZE_LIST[@]}"; do
    gen "$N" "$WORK/b$z/large" "$z"
    gen "$N" "$WORK/b$z/large-shuffled" "$z" --shuffle
done
SMALL_Z=${SIZE_LIST[0]}
gen "$SMALL_N" "$WORK/b$SMALL_Z/small" "$SMALL_Z"
gen "$SMALL_N" "$WORK/b$SMALL_Z/small-shuffled" "$SMALL_Z" --shuffle

HAVE_DEEPDIFF=1
python3 -c "import deepdiff" 2>/dev/null || pip install --quiet deepdiff >&2 || HAVE_DEEPDIFF=0
HAVE_JDP=1
JDP_DIR="$WORK/node"
if [ ! -d "$JDP_DIR/node_modules/jsondiffpatch" ]; then
    mkdir -p "$JDP_DIR"
    (cd "$JDP_DIR" && npm init -y >/dev/null && npm install --silent jsondiffpatch >/dev/null 2>&1) || HAVE_JDP=0
fi
cp "$HERE/jsondiffpatch_run.mjs" "$JDP_DIR/"

# Prints "median_seconds max_rss_mb exit_code" for RUNS runs of a command.
measure() {
    local times=() cpus=() rss=0 code=0 i r u s
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -o "$WORK/time.txt" -f "%e %U %S %M %x" "$@" >/dev/null 2>&1 || true
        read -r t u s r code < <(tail -1 "$WORK/time.txt")
        times+=("$t")
        cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')")
        ((r > rss)) && rss=$r
    done
    local med cpu
    med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$med $cpu $((rss / 1024)) $code"
}

row() { # tool size mode cmd...
    local tool=$1 size=$2 mode=$3 saved=$RUNS
    shift 3
    [ "$tool" = rubra-jsondiff ] || RUNS=1
    read -r t cpu m c < <(measure "$@")
    RUNS=$saved
    printf '| %-14s | %-27s | %-12s | %7s s | %7s s | %6s MB | %d |\n' "$tool" "$size" "$mode" "$t" "$cpu" "$m" "$c"
}

mb() { du -m "$1" | cut -f1; }
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| tool           | input                       | mode         | wall (median) | CPU user+sys | max RSS | exit |"
echo "|----------------|-----------------------------|--------------|---------|---------|---------|------|"
for z in "${SIZE_LIST[@]}"; do
    L="$WORK/b$z/large" LS="$WORK/b$z/large-shuffled"
    LSZ="$N objects, 2×$(mb "$L/a.json") MB"
    row rubra-jsondiff "$LSZ" ordered "$RJD" "$L/a.json" "$L/b.json"
    row rubra-jsondiff "$LSZ" key:id "$RJD" "$LS/a.json" "$LS/b.json" --key id
    row rubra-jsondiff "$LSZ" set "$RJD" "$LS/a.json" "$LS/b.json" --set
    row rubra-jsondiff "$LSZ" multiset "$RJD" "$LS/a.json" "$LS/b.json" --multiset
done
S="$WORK/b$SMALL_Z/small" SS="$WORK/b$SMALL_Z/small-shuffled"
SSZ="$SMALL_N objects, 2×$(mb "$S/a.json") MB"
row rubra-jsondiff "$SSZ" ordered "$RJD" "$S/a.json" "$S/b.json"
row rubra-jsondiff "$SSZ" key:id "$RJD" "$SS/a.json" "$SS/b.json" --key id
row rubra-jsondiff "$SSZ" set "$RJD" "$SS/a.json" "$SS/b.json" --set
if [ "$HAVE_DEEPDIFF" = 1 ]; then
    row deepdiff "$SSZ" ordered python3 "$HERE/deepdiff_run.py" "$S/a.json" "$S/b.json" ordered
    row deepdiff "$SSZ" ignore_order python3 "$HERE/deepdiff_run.py" "$SS/a.json" "$SS/b.json" set
fi
if [ "$HAVE_JDP" = 1 ]; then
    row jsondiffpatch "$SSZ" ordered node "$JDP_DIR/jsondiffpatch_run.mjs" "$S/a.json" "$S/b.json" ordered
    row jsondiffpatch "$SSZ" key:id node "$JDP_DIR/jsondiffpatch_run.mjs" "$SS/a.json" "$SS/b.json" key
fi
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
