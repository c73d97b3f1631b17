#!/usr/bin/env bash
# The whole test suite, against the real services: installs and starts PostgreSQL, RabbitMQ and an S3
# server if needed (scripts/test-services.sh), runs every test of the workspace and then Schemathesis
# against a live server (scripts/schemathesis.sh), stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-deps.sh
# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh
trap rubra_test_services_stop EXIT

# Python tools for the API checks (PyPI), in a venv under target/: openapi-spec-validator
# (run by the rubra-server test openapi_document_validates_as_openapi_3_1) and Schemathesis.
PY_VENV=target/py
# scripts/schemathesis.toml pins body fields (`parameters`), which needs Schemathesis 4.32.
if [ ! -x "$PY_VENV/bin/schemathesis" ] || [ ! -x "$PY_VENV/bin/openapi-spec-validator" ] ||
    ! "$PY_VENV/bin/python" -c 'import sys; from importlib.metadata import version as v
sys.exit(tuple(map(int, v("schemathesis").split(".")[:2])) < (4, 32))'; then
    python3 -m venv "$PY_VENV"
    "$PY_VENV/bin/pip" install --quiet --upgrade 'openapi-spec-validator>=0.7,<1' 'schemathesis>=4.32,<5'
fi
export RUBRA_TEST_OPENAPI_VALIDATOR="$PWD/$PY_VENV/bin/openapi-spec-validator"

# These make the PostgreSQL, RabbitMQ and S3 tests mandatory: they fail instead of skipping.
export RUBRA_TEST_REQUIRE_SERVICES=1
cargo test --workspace "$@"

# Schemathesis against a live `rubra serve` on the embedded default: every check, stateful
# links included, 10 examples per operation (about 3 000 requests in two passes, under a
# minute here); any failure fails this script.
cargo build -p rubra
SCHEMATHESIS="$PWD/$PY_VENV/bin/schemathesis" bash scripts/schemathesis.sh 10
