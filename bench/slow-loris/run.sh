#!/usr/bin/env bash
# Slow-loris: N connections send a request's headers a byte per second (reconnecting when the
# server closes one) while a normal client sends GET /healthz on a fresh connection every
# 100 ms. A release `rubra serve` on the embedded default with its default limits
# (--header-timeout-ms 10000, --max-connections 10000), except --max-connections-per-ip,
# raised above N (every connection comes from 127.0.0.1: the bench measures the header
# timeout, not the per-address cap, default 256). Prints a table: the normal client's
# latency, the flood's connections opened and closed by the server, the server's peak open
# file descriptors and RSS.
#
# usage: bench/slow-loris/run.sh [CONNECTIONS] [SECONDS]   (default 1000 connections, 30 s)
# needs: python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000}"
SECS="${2:-30}"
OUT=$(mktemp -d /tmp/rubra-loris.XXXXXX)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$OUT"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build -q --release -p rubra
TARGET="${CARGO_TARGET_DIR:-target}/release"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TARGET/rubra" serve --listen "127.0.0.1:$PORT" --data-dir "$OUT/data" --log-filter error \
  --max-connections-per-ip "$((N + 100))" >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "| loris connections | seconds | normal requests ok | failed | p50 ms | p99 ms | max ms | loris connections opened | closed by the server | server fds (peak) | server RSS MB (peak) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
python3 bench/slow-loris/loris.py 127.0.0.1 "$PORT" 0 10 "$SERVER"
python3 bench/slow-loris/loris.py 127.0.0.1 "$PORT" "$N" "$SECS" "$SERVER"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
