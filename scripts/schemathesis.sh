#!/usr/bin/env bash
# Schemathesis (PyPI, 4.x) against a live `rubra serve` on the embedded default (SQLite and a
# local folder in a throwaway data folder): every check, stateful links included, with at most
# MAX_EXAMPLES examples per operation (default 10); scripts/schemathesis.toml names the one check
# left out for a few operations (README says why). Usage: scripts/schemathesis.sh [MAX_EXAMPLES]
# Needs a built `rubra` (cargo build -p rubra) and a venv under target/py (scripts/test.sh
# makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES="${1:-10}"
TARGET="${CARGO_TARGET_DIR:-target}"
RUBRA="$TARGET/debug/rubra"
ST="${SCHEMATHESIS:-target/py/bin/schemathesis}"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$RUBRA" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/data" >"$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    [ -s "$DATA/data/admin.key" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
ADMIN_KEY="$(cat "$DATA/data/admin.key")"
# A client's key: an admin key must name the client of most writes (422 client_required),
# which the document cannot say of one parameter.
KEY="$(curl -fsS -X POST "http://127.0.0.1:$PORT/clients" -H "Authorization: Bearer $ADMIN_KEY" \
    -H 'Content-Type: application/json' -d '{"name":"schemathesis"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"
# /debug/profile samples the CPU for up to a minute per call: left out (tests/it/debug.rs).
"$ST" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    -H "Authorization: Bearer $KEY" \
    --max-examples "$MAX_EXAMPLES" \
    --seed 1 \
    --exclude-operation-id get_debug_profile
