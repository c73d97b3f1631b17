#!/usr/bin/env bash
# The chaos soak (issue #26): 3 `rubra serve` + 2 `rubra worker` processes, each in its own
# network namespace, on one PostgreSQL + S3 bucket + RabbitMQ queue, under a mixed load
# (uploads, /red, event batches, messages through RabbitMQ, CSV jobs from S3 and disk, watches
# on the odds simulator, webhooks to a local receiver), while a driver kills, pauses, cuts off
# and restores a random process every few seconds, restarts PostgreSQL once, takes S3 away for
# 30 s and the broker for 10 s. At the end it prints the faults and checks every invariant.
#
# Usage (as root: namespaces): bench/chaos/run.sh [MINUTES]   (default 30)
# The driver is the ignored test `cluster::chaos::chaos_soak` of crates/rubra/tests/it; the
# harness is rubra_testkit::cluster. Services come from scripts/test-services.sh (started here
# and stopped at the end) unless RUBRA_TEST_DATABASE_URL etc. are already set.
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${1:-30}
if [ -z "${RUBRA_TEST_S3_ENDPOINT:-}" ] || [ -z "${RUBRA_TEST_AMQP_URL:-}" ]; then
  # shellcheck source=scripts/test-services.sh
  source scripts/test-services.sh
  trap rubra_test_services_stop EXIT
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc), started $(date -u +%FT%TZ)"
RUBRA_CHAOS_MINUTES=$MINUTES RUBRA_TEST_REQUIRE_SERVICES=1 \
  cargo test -q -p rubra --test it cluster::chaos::chaos_soak -- --ignored --nocapture --test-threads 1
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg), ended $(date -u +%FT%TZ)"
