#!/bin/bash
# A/B of two release builds on the RED_STATS and CSV job benchmarks, run alternately (old→new
# in odd rounds, new→old in even ones) so drift in the machine's load falls on both alike.
# Each benchmark holds /tmp/bench.lock, so other timed runs that take it never overlap.
#
# usage: OLD=<target dir> NEW=<target dir> bench/ab/run.sh [ROUNDS] [BENCHES]
#        (default 3 rounds of "ingest stats latency jobs"); START=K resumes at round K.
#        Each target dir needs release builds of: -p rubra; --example stats_fill (rubra-store),
#        notify_latency (rubra-server), s3_dir_server (rubra-jobs), gen_csv (rubra-csvsum).
#        OUT (default /tmp/ab) gets one log per benchmark, build and round, and `progress`;
#        STATS_DIR (default /tmp/ab-stats) the 10⁷-event folder, filled once and shared.
#        Then: python3 bench/ab/summary.py $OUT
set -u
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
BENCHES=${2:-"ingest stats latency jobs"}
OUT=${OUT:-/tmp/ab}
STATS_DIR=${STATS_DIR:-/tmp/ab-stats}
declare -A TGT=([old]=${OLD:?OLD=<target dir>} [new]=${NEW:?NEW=<target dir>})
mkdir -p "$OUT"
run() { # run ROUND BUILD BENCH
  local r=$1 b=$2 k=$3 log=$OUT/$3-$2-$1.log
  export CARGO_TARGET_DIR=${TGT[$b]} SKIP_BUILD=1
  echo "== $(date +%T) round $r $b $k (load $(cut -d' ' -f1-3 /proc/loadavg))" >>"$OUT/progress"
  case $k in
    ingest) flock /tmp/bench.lock env -u RUBRA_TEST_DATABASE_URL bench/events-ingest/run.sh 15 8 5000 >"$log" 2>&1 ;;
    stats) flock /tmp/bench.lock env KEEP="$STATS_DIR" bench/stats-query/run.sh 10000000 30 100 >"$log" 2>&1 ;;
    latency) flock /tmp/bench.lock bench/notify-latency/run.sh 1000 10 100 3 >"$log" 2>&1 ;;
    jobs) flock /tmp/bench.lock env RUNS=3 bench/jobs-api/run.sh >"$log" 2>&1 ;;
  esac
  echo "   rc=$? $(date +%T)" >>"$OUT/progress"
}
for r in $(seq "${START:-1}" "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for k in $BENCHES; do for b in $order; do run "$r" "$b" "$k"; done; done
done
echo DONE >>"$OUT/progress"
