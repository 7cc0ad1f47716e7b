#!/usr/bin/env bash
# The test command: installs what the tests need (Java and Maven for Apache Kafka, PostgreSQL, Chromium,
# kcat, docker-compose, HAProxy, curl, OpenSSL's headers, confluent-kafka, PyJWT and schemathesis from PyPI,
# @asyncapi/parser from npm),
# fetches Apache Kafka's jars from Maven Central once per machine (scripts/kafka.sh), starts one
# broker and a PostgreSQL cluster (scripts/postgres.sh) on free loopback ports, checks
# docker-compose.yml and its HAProxy configuration, runs the whole suite against them, installs the
# operations binary with `cargo install --path .` as the README says and calls it by name, and
# stops every server it or the tests started. Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- kcat, docker-compose, curl and OpenSSL's headers (librdkafka's TLS) from Debian ----------
need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v kcat >/dev/null || need_apt+=(kcat)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
[ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v npm >/dev/null || need_apt+=(nodejs npm)
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

# --- PyJWT with cryptography: an independent JOSE library verifies signed receipts ----------------
if ! python3 -c "import jwt, cryptography" 2>/dev/null; then
  log "installing PyJWT[crypto] from PyPI"
  python3 -m pip install -q --disable-pip-version-check "PyJWT[crypto]"
fi

# --- @asyncapi/parser, pinned, from the npm registry, for the AsyncAPI test (cached per machine) --
ASYNCAPI_PARSER_VERSION=3.6.6
export VENTANILLA_TEST_ASYNCAPI_PARSER="$HOME/.cache/ventanilla/asyncapi-parser-$ASYNCAPI_PARSER_VERSION"
if [ ! -d "$VENTANILLA_TEST_ASYNCAPI_PARSER/node_modules/@asyncapi/parser" ]; then
  log "installing @asyncapi/parser $ASYNCAPI_PARSER_VERSION from the npm registry"
  mkdir -p "$VENTANILLA_TEST_ASYNCAPI_PARSER"
  (cd "$VENTANILLA_TEST_ASYNCAPI_PARSER" && npm install --silent --no-audit --no-fund "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION")
fi

# --- schemathesis, pinned, for the OpenAPI test (tests/api/openapi.rs) ---------------------------
SCHEMATHESIS_VERSION=4.32.5
SCRIPTS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
if [ "$("$SCRIPTS/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
  python3 -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
export SCHEMATHESIS="$SCRIPTS/schemathesis"

# --- Apache Kafka: the jars once per machine, one broker for the suite ---------------------------
log "Apache Kafka $(scripts/kafka.sh version) (jars cached in ~/.cache/ventanilla)"
scripts/kafka.sh fetch >/dev/null
WORK="$(mktemp -d)"
# PostgreSQL runs as the postgres user: it must reach its cluster inside.
chmod 755 "$WORK"
cleanup() {
  scripts/postgres.sh stop "$WORK/postgres" 2>/dev/null || true
  scripts/kafka.sh stop "$WORK/kafka" 2>/dev/null || true
  # Clusters the tests started (outage, failover, security) live under $WORK/clusters; a test
  # that failed may have left one running.
  for dir in "$WORK"/clusters/*/; do
    [ -d "$dir" ] && scripts/kafka.sh stop "$dir" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
BROKERS="$(scripts/kafka.sh start "$WORK/kafka")"
export VENTANILLA_TEST_BROKERS="$BROKERS"
export VENTANILLA_TEST_KAFKA_DIR="$WORK/clusters"

# --- PostgreSQL: Debian's package (installed when absent), a cluster of the run's own ----------
log "PostgreSQL (Debian's package, a cluster in $WORK/postgres)"
export VENTANILLA_TEST_POSTGRES="$(scripts/postgres.sh start "$WORK/postgres")"

# --- the suite --------------------------------------------------------------------------------
log "docker-compose.yml"
docker-compose -f docker-compose.yml config -q
log "config/haproxy.cfg (the load balancer of docker-compose.yml)"
/usr/sbin/haproxy -c -q -f config/haproxy.cfg
# The gateways inside the tests log warnings and errors only; broker-down noise from the
# outage tests is expected and silenced. Set RUST_LOG to see more.
export RUST_LOG="${RUST_LOG:-warn,rdkafka=off,librdkafka=off}"
log "cargo test against Apache Kafka at $VENTANILLA_TEST_BROKERS"
cargo test --locked "$@"

# --- the README's `cargo install --path .`: the operations commands as `ventanilla` on the PATH ---
# A debug install (about 40 s after the tests on a fresh clone), in a root of the run's own;
# then the binary is called by its name, from the PATH, as the guides write it.
log "cargo install --path . (the operations binary on the PATH, as the README says)"
cargo install --locked --quiet --path . --debug --root "$WORK/install"
PATH="$WORK/install/bin:$PATH" ventanilla validate --as demo-trader examples/customsDeclaration/valid/export-beef-road-AR-BR.json >/dev/null
HELP="$(PATH="$WORK/install/bin:$PATH" ventanilla --help)"
[[ "$HELP" == *"Exit codes"* ]] || { echo "ventanilla --help does not list its exit codes" >&2; exit 1; }
