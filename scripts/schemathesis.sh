#!/usr/bin/env bash
# Schemathesis (PyPI, 4.x) against a live `rubra serve` on the embedded default (SQLite and a
# local folder in a throwaway data folder): every check, stateful links included, with at most
# MAX_EXAMPLES examples per operation (default 10), first with a client's key over every
# operation, then with the admin key over the admin-only ones. scripts/schemathesis.toml says
# which values are pinned and which checks are left out, and why (so does README).
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]
# Needs a built `rubra` (cargo build -p rubra) and a venv under target/py (scripts/test.sh
# makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES="${1:-10}"
TARGET="${CARGO_TARGET_DIR:-target}"
RUBRA="$TARGET/debug/rubra"
ST="${SCHEMATHESIS:-target/py/bin/schemathesis}"
DATA="$(mktemp -d)"
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"
SOURCE_PORT="$(free_port)"
# What an operator would allow, in throwaway folders: jobs read CSVs beneath a local root
# (the path is the document's example of a job source), watches poll a JSON file served on
# a loopback port listed in --fetch-allow. The server's defaults allow neither.
mkdir -p "$DATA/jobs/sales" "$DATA/www"
printf 'region,amount\nnorth,12.5\nsouth,7\n' >"$DATA/jobs/sales/2026-11.csv"
printf '{"price": 12.5, "items": [{"id": 1}]}\n' >"$DATA/www/source.json"
python3 -m http.server --bind 127.0.0.1 --directory "$DATA/www" "$SOURCE_PORT" \
    >"$DATA/source.log" 2>&1 &
SOURCE=$!
"$RUBRA" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA/data" \
    --jobs-local-root "$DATA/jobs" --fetch-allow "127.0.0.1:$SOURCE_PORT" \
    >"$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" "$SOURCE" 2>/dev/null || true; wait "$SERVER" "$SOURCE" 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    [ -s "$DATA/data/admin.key" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
ADMIN_KEY="$(cat "$DATA/data/admin.key")"
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
# A client's key: an admin key must name the client of most writes (422 client_required),
# which the document cannot say of one parameter.
CLIENT="$(curl -fsS -X POST "http://127.0.0.1:$PORT/clients" -H "Authorization: Bearer $ADMIN_KEY" \
    -H 'Content-Type: application/json' -d '{"name":"schemathesis"}')"
KEY="$(json_field api_key <<<"$CLIENT")"
# The values scripts/schemathesis.toml pins: the client's own id, one of its subscriptions,
# the JSON source and the CSV.
export RUBRA_ST_CLIENT_ID RUBRA_ST_SUBSCRIPTION_ID RUBRA_ST_WATCH_URL RUBRA_ST_JOB_SOURCE
RUBRA_ST_CLIENT_ID="$(json_field id <<<"$CLIENT")"
RUBRA_ST_SUBSCRIPTION_ID="$(curl -fsS -X POST "http://127.0.0.1:$PORT/subscriptions" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"types":["watch.changed"],"channel":{"type":"stream"}}' | json_field id)"
RUBRA_ST_WATCH_URL="http://127.0.0.1:$SOURCE_PORT/source.json"
RUBRA_ST_JOB_SOURCE="sales/2026-11.csv"
# /debug/profile samples the CPU for up to a minute per call: left out (tests/it/debug.rs).
"$ST" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    -H "Authorization: Bearer $KEY" \
    --max-examples "$MAX_EXAMPLES" \
    --seed 1 \
    --exclude-operation-id get_debug_profile
# The admin key over the operations only it may call, which the client's key only sees
# refused (403).
"$ST" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    -H "Authorization: Bearer $ADMIN_KEY" \
    --max-examples "$MAX_EXAMPLES" \
    --seed 1 \
    --include-operation-id post_clients \
    --include-operation-id patch_clients_id \
    --include-operation-id get_admin_keys \
    --include-operation-id post_admin_keys \
    --include-operation-id delete_admin_keys_key_id
