#!/usr/bin/env bash
# Starts the real services the full test suite needs — a throwaway PostgreSQL cluster and an
# S3 protocol server (moto) — on free loopback ports, installing them first if missing.
# Source it: it exports RUBRA_TEST_DATABASE_URL and RUBRA_TEST_S3_ENDPOINT and registers
# `rubra_test_services_stop` to shut both down.
set -euo pipefail

RUBRA_SERVICES_DIR=$(mktemp -d /tmp/rubra-test-services.XXXXXX)
chmod 755 "$RUBRA_SERVICES_DIR"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

as_postgres() {
  # initdb and postgres refuse to run as root; use the postgres system user then.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

ensure_postgres() {
  if ! pg_bindir >/dev/null; then
    echo "== installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
}

ensure_djpeg() {
  # libjpeg-turbo's djpeg is the reference decoder the image and watermark tests compare with.
  if ! command -v djpeg >/dev/null; then
    echo "== installing libjpeg-turbo-progs from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libjpeg-turbo-progs >/dev/null
  fi
}

ensure_moto() {
  if ! python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
    echo "== installing moto[server] from PyPI"
    python3 -m pip install -q 'moto[server]>=5,<6'
  fi
}

start_postgres() {
  local bin port data
  bin=$(pg_bindir)
  port=$(free_port)
  data="$RUBRA_SERVICES_DIR/pg"
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres: "$data" "$RUBRA_SERVICES_DIR"
  as_postgres "$bin/initdb" -D "$data" -U rubra -A trust --no-sync >"$RUBRA_SERVICES_DIR/initdb.log" 2>&1
  as_postgres "$bin/pg_ctl" -D "$data" -l "$RUBRA_SERVICES_DIR/pg.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  RUBRA_PG_BIN=$bin
  RUBRA_PG_DATA=$data
  export RUBRA_TEST_DATABASE_URL="postgres://rubra@127.0.0.1:$port/postgres"
  echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

start_moto() {
  local port i
  port=$(free_port)
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$RUBRA_SERVICES_DIR/moto.log" 2>&1 &
  RUBRA_MOTO_PID=$!
  for i in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  export RUBRA_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  echo "== moto S3 server on 127.0.0.1:$port"
}

rubra_test_services_stop() {
  [ -n "${RUBRA_MOTO_PID:-}" ] && kill "$RUBRA_MOTO_PID" 2>/dev/null || true
  [ -n "${RUBRA_PG_DATA:-}" ] && as_postgres "$RUBRA_PG_BIN/pg_ctl" -D "$RUBRA_PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$RUBRA_SERVICES_DIR"
}

ensure_postgres
ensure_djpeg
ensure_moto
start_postgres
start_moto
