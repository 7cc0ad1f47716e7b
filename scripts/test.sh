#!/usr/bin/env bash
# The test command: installs what the tests need (Tansu, kcat, docker-compose, curl, OpenSSL's
# headers, confluent-kafka and schemathesis from PyPI), starts a real
# Tansu broker on a free loopback port with SQLite storage, runs the whole suite against it,
# checks docker-compose.yml, and stops the broker. Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- Tansu: reuse an installed binary, build it once per machine otherwise -------------------
TANSU="${TANSU:-$(command -v tansu || true)}"
if [ -z "$TANSU" ] && [ -x "$HOME/.cargo/bin/tansu" ]; then TANSU="$HOME/.cargo/bin/tansu"; fi
if [ -z "$TANSU" ]; then
  log "installing Tansu 0.6 (built once per machine, ~25 min on 2 cores)"
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
  TANSU="$HOME/.cargo/bin/tansu"
fi

# --- kcat, docker-compose, curl and OpenSSL's headers (librdkafka's TLS) from Debian ----------
need_apt=()
command -v kcat >/dev/null || need_apt+=(kcat)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v curl >/dev/null || need_apt+=(curl)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# --- Python packages: confluent-kafka for the Python agency example's test ----------------------
if ! python3 -c "import confluent_kafka" 2>/dev/null; then
  log "installing confluent-kafka from PyPI"
  python3 -m pip install -q --disable-pip-version-check confluent-kafka
fi

# --- schemathesis, pinned, for the OpenAPI test (tests/api/openapi.rs) ---------------------------
SCHEMATHESIS_VERSION=4.32.5
SCRIPTS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if [ "$("$SCRIPTS/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
export SCHEMATHESIS="$SCRIPTS/schemathesis"

# --- start Tansu ------------------------------------------------------------------------------
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log "starting Tansu on 127.0.0.1:$PORT (storage $WORK/tansu.db)"
# Tansu reads sqlite://PATH relative to its working directory, hence the cd.
(cd "$WORK" && exec "$TANSU" broker \
  --listener-url "tcp://127.0.0.1:$PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine "sqlite://tansu.db" >"$WORK/tansu.log" 2>&1) &
TANSU_PID=$!
cleanup() {
  kill "$TANSU_PID" 2>/dev/null || true
  wait "$TANSU_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null; then break; fi
  if ! kill -0 "$TANSU_PID" 2>/dev/null; then cat "$WORK/tansu.log"; echo "Tansu did not start"; exit 1; fi
  sleep 0.2
done
export VENTANILLA_TEST_BROKERS="127.0.0.1:$PORT"
# Outage tests start and stop brokers of their own with the same binary.
export VENTANILLA_TEST_TANSU="$TANSU"

# --- the suite --------------------------------------------------------------------------------
log "docker-compose.yml"
docker-compose -f docker-compose.yml config -q
# The gateways inside the tests log warnings and errors only; broker-down noise from the
# outage tests is expected and silenced. Set RUST_LOG to see more.
export RUST_LOG="${RUST_LOG:-warn,rdkafka=off,librdkafka=off}"
log "cargo test against Tansu at $VENTANILLA_TEST_BROKERS"
cargo test --locked "$@"
