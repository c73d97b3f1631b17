#!/bin/sh
# Event → webhook received latency on the embedded default (SQLite), local receiver.
# Usage: bench/notify-latency/run.sh [RATE] [SECS] [SUBS] [RUNS] [SOURCE]
# SOURCE: events (one-event POST /events, the default) or red (a small PNG to POST /red).
# Prints one table row per run (release build; the first run also compiles).
set -eu
cd "$(dirname "$0")/../.."
RATE=${1:-1000}; SECS=${2:-10}; SUBS=${3:-100}; RUNS=${4:-3}; SOURCE=${5:-events}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p rubra-server --example notify_latency
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
i=0
while [ "$i" -lt "$RUNS" ]; do
  "${CARGO_TARGET_DIR:-target}/release/examples/notify_latency" "$RATE" "$SECS" "$SUBS" "$SOURCE" | { [ "$i" -eq 0 ] && cat || tail -n 1; }
  i=$((i + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
