#!/usr/bin/env bash
# Throughput against the number of `rubra worker` processes (1, 2, 4) for CSV jobs and webhook
# deliveries, 1 `serve` in front (running no job), each process in its own namespace on one
# PostgreSQL; with the CPU seconds of each process and of PostgreSQL. One table row per run.
# Usage (as root): bench/chaos/scale.sh   (services as in run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${RUBRA_TEST_S3_ENDPOINT:-}" ]; then
  # shellcheck source=scripts/test-services.sh
  source scripts/test-services.sh
  trap rubra_test_services_stop EXIT
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
RUBRA_TEST_REQUIRE_SERVICES=1 cargo test -q -p rubra --test it cluster::scale -- --ignored --nocapture
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
