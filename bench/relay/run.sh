#!/bin/sh
# The message relay: published (RabbitMQ, or POST /messages) → received by a local fake Viber.
# Usage: RUBRA_BENCH_AMQP_URL=amqp://… bench/relay/run.sh [SECS] [PG_URL]
# Runs each source at 100/s and 1 000/s, then the higher rates, then the naive consumer
# (bench/relay/naive_consumer.py, pika → requests → one SQLite commit per message) at the
# same rates. One table row per run (release build; the first run also compiles). A rate is
# sustained when the backlog left when sending stops drains within about a second.
set -eu
cd "$(dirname "$0")/../.."
SECS=${1:-10}; PG=${2:-}
BIN=${CARGO_TARGET_DIR:-target}/release/examples/relay_bench
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p rubra-server --example relay_bench
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
for run in "amqp 100" "amqp 1000" "amqp 2000" "amqp 5000" "http 100" "http 1000" "http 2000" \
           "naive 100" "naive 1000"; do
  set -- $run
  "$BIN" "$1" "$2" "$SECS" | tail -n 1
done
if [ -n "$PG" ]; then
  for rate in 100 1000 2000 5000; do "$BIN" amqp "$rate" "$SECS" "$PG" | tail -n 1; done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
