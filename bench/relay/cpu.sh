#!/bin/sh
# CPU per message of one relay_bench run: the process's user + sys (/usr/bin/time) and
# RabbitMQ's (utime + stime of its beam.smp from /proc, before and after).
# Usage: bench/relay/cpu.sh SOURCE RATE SECS [DB]   (after run.sh has built relay_bench)
set -eu
BIN=${RELAY_BENCH:-${CARGO_TARGET_DIR:-target}/release/examples/relay_bench}
BEAM=$(pgrep -u rabbitmq beam.smp | head -n 1)
cpu() { awk '{print $14 + $15}' "/proc/$BEAM/stat"; }
b0=$(cpu); t0=$(date +%s.%N)
/usr/bin/time -f "relay_bench: %U user %S sys %e wall" "$BIN" "$@" 2>/tmp/relay-cpu.$$ | tail -n 1
tail -n 1 /tmp/relay-cpu.$$; rm -f /tmp/relay-cpu.$$
b1=$(cpu); t1=$(date +%s.%N)
echo "rabbitmq: $(echo "($b1 - $b0) / $(getconf CLK_TCK)" | bc -l | cut -c1-6) cpu-s over $(echo "$t1 - $t0" | bc | cut -c1-6) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
