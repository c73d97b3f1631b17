#!/bin/sh
# The message relay: published (RabbitMQ, or POST /messages) → received by a local fake Viber.
# Usage: RUBRA_BENCH_AMQP_URL=amqp://… bench/relay/run.sh [SECS] [PG_URL]
# One table row per run (release build; the first run also compiles). RUNS overrides the list
# of runs ("SOURCE RATE" pairs separated by commas; SOURCE amqp, naive, http or http:N for
# arrays of N per POST). The default list: each source at 100/s and 1 000/s (latency), then
# the higher rates (throughput), the naive consumer (bench/relay/naive_consumer.py: pika →
# requests → one SQLite commit per message), and with PG_URL the RabbitMQ rows on PostgreSQL.
# A rate is sustained when the backlog (published, not yet received, sampled every second)
# does not grow. RUBRA_BENCH_PER_SUBSCRIPTION sets --notify-max-in-flight-per-subscription,
# RUBRA_BENCH_PER_RELAY_SUBSCRIPTION --notify-max-in-flight-per-relay-subscription; RELAY_BENCH
# names another relay_bench binary (an older build, to alternate old and new).
set -eu
cd "$(dirname "$0")/../.."
SECS=${1:-60}; PG=${2:-}
BIN=${RELAY_BENCH:-${CARGO_TARGET_DIR:-target}/release/examples/relay_bench}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p rubra-server --example relay_bench
RUNS=${RUNS-"amqp 100,amqp 1000,amqp 2000,amqp 5000,http 100,http 1000,http:100 1000,\
http:100 5000,naive 100,naive 1000"}
echo "commit $(git rev-parse --short HEAD), load before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
IFS=,
for run in $RUNS; do
  IFS=' '
  set -- $run
  "$BIN" "$1" "$2" "$SECS" | tail -n 1
  IFS=,
done
IFS=' '
if [ -n "$PG" ]; then
  # Each run gets a fresh database on PG_URL's server, dropped afterwards.
  for rate in ${PG_RATES:-100 1000 2000 5000}; do
    db="relay_bench_$$_$rate"
    psql -q "$PG" -c "CREATE DATABASE $db"
    "$BIN" amqp "$rate" "$SECS" "${PG%/*}/$db" | tail -n 1
    psql -q "$PG" -c "DROP DATABASE $db WITH (FORCE)"
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
