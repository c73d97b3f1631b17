#!/usr/bin/env bash
# The whole test suite, against the real services: installs and starts PostgreSQL, RabbitMQ and an S3
# server if needed (scripts/test-services.sh), runs every test of the workspace, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
trap rubra_test_services_stop EXIT

# These make the PostgreSQL, RabbitMQ and S3 tests mandatory: they fail instead of skipping.
export RUBRA_TEST_REQUIRE_SERVICES=1
cargo test --workspace "$@"
