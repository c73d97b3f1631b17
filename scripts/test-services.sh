#!/usr/bin/env bash
# Starts the real services the full test suite needs — a throwaway PostgreSQL cluster, an
# S3 protocol server (moto), a RabbitMQ broker and chromedriver (for the dashboard's browser
# tests, driving Debian's headless Chromium) — on free loopback ports, installing them first
# if missing. Source it: it exports RUBRA_TEST_DATABASE_URL, RUBRA_TEST_S3_ENDPOINT,
# RUBRA_TEST_AMQP_URL (with RUBRA_TEST_AMQP_CTL, the command that stops and starts the broker)
# and RUBRA_TEST_CHROMEDRIVER_URL, and registers `rubra_test_services_stop` to shut them down.
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

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null; then
    echo "== installing rabbitmq-server from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq rabbitmq-server >/dev/null
  fi
}

start_rabbitmq() {
  local port dist dir node i
  port=$(free_port)
  dist=$(free_port)
  dir="$RUBRA_SERVICES_DIR/rabbitmq"
  node="rubra$port@localhost"
  mkdir -p "$dir/mnesia" "$dir/log"
  echo '[].' >"$dir/plugins"
  : >"$dir/rabbitmq.conf"
  # As root the broker switches to the rabbitmq user: its folders must be that user's.
  [ "$(id -u)" = 0 ] && chown -R rabbitmq: "$dir"
  # Everything it needs lives in $dir; the script in $dir/ctl starts ("start") and stops
  # ("stop") this broker, for the tests that restart it mid-stream.
  cat >"$dir/ctl" <<CTL
#!/usr/bin/env bash
export RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist RABBITMQ_NODENAME=$node
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/plugins RABBITMQ_CONFIG_FILE=$dir/rabbitmq
export RABBITMQ_FEATURE_FLAGS_FILE=$dir/feature_flags
case "\$1" in
  start)
    rabbitmq-server >>$dir/server.log 2>&1 &
    for i in \$(seq 1 300); do
      rabbitmqctl -n $node -q await_startup >/dev/null 2>&1 && exit 0
      sleep 0.2
    done
    echo "rabbitmq did not start; see $dir/server.log" >&2; exit 1 ;;
  stop) rabbitmqctl -n $node -q stop >/dev/null 2>&1 || true ;;
  *) rabbitmqctl -n $node "\$@" ;;
esac
CTL
  chmod 755 "$dir/ctl"
  "$dir/ctl" start
  RUBRA_RABBITMQ_CTL="$dir/ctl"
  export RUBRA_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
  export RUBRA_TEST_AMQP_CTL="$dir/ctl"
  echo "== RabbitMQ on 127.0.0.1:$port"
}

ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium and chromium-driver from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
}

start_chromedriver() {
  local port i
  port=$(free_port)
  chromedriver --port="$port" --log-path="$RUBRA_SERVICES_DIR/chromedriver.log" >/dev/null 2>&1 &
  RUBRA_CHROMEDRIVER_PID=$!
  for i in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/status', timeout=1)" 2>/dev/null; then
      export RUBRA_TEST_CHROMEDRIVER_URL="http://127.0.0.1:$port"
      echo "== chromedriver on 127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "chromedriver did not answer on port $port" >&2
  return 1
}

rubra_test_services_stop() {
  # The browsers of sessions a killed test run left open first, then chromedriver itself.
  [ -n "${RUBRA_CHROMEDRIVER_PID:-}" ] && pkill -TERM -P "$RUBRA_CHROMEDRIVER_PID" 2>/dev/null || true
  [ -n "${RUBRA_CHROMEDRIVER_PID:-}" ] && kill "$RUBRA_CHROMEDRIVER_PID" 2>/dev/null || true
  [ -n "${RUBRA_RABBITMQ_CTL:-}" ] && "$RUBRA_RABBITMQ_CTL" stop || true
  [ -n "${RUBRA_MOTO_PID:-}" ] && kill "$RUBRA_MOTO_PID" 2>/dev/null || true
  [ -n "${RUBRA_PG_DATA:-}" ] && as_postgres "$RUBRA_PG_BIN/pg_ctl" -D "$RUBRA_PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$RUBRA_SERVICES_DIR"
}

ensure_postgres
ensure_djpeg
ensure_moto
ensure_rabbitmq
ensure_chromium
start_postgres
start_moto
start_rabbitmq
start_chromedriver
