#!/usr/bin/env bash
# The test command: installs what the tests need (Java and Maven for Apache Kafka, PostgreSQL, Chromium,
# kcat, HAProxy, curl, Node.js, OpenSSL's headers from Debian; confluent-kafka, PyJWT, schemathesis,
# PyYAML, jsonschema and openapi-python-client from PyPI; @asyncapi/parser, openapi-typescript,
# TypeScript and @hey-api/openapi-ts from npm),
# fetches Apache Kafka's jars from Maven Central once per machine (scripts/kafka.sh), starts one
# broker and a PostgreSQL cluster (scripts/postgres.sh) on free loopback ports, checks
# docker-compose.yml against the Compose Specification's JSON Schema (scripts/check-compose.py; no
# Docker needed) and its HAProxy configuration with HAProxy, runs the whole suite against them
# (every test binary, even after one fails), installs the operations binary with
# `cargo install --path .` as the README says and calls it by name, and stops every server it or
# the tests started. Its last line sums up the `test result:` lines of every test binary (lib
# tests, the API tests, doc tests), failed or not, and the time the whole run took:
#   == 340 passed, 0 failed, 2 ignored in 11 min 32 s
# preceded, when something failed, by a line per failing test and the step the run stopped at.
# The exit status is non-zero when anything failed. Usage: scripts/test.sh [cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# The step under way (log sets it): the summary names it if the run stops there.
STEP="installing what is missing"
log() { STEP="$*"; printf '\n== %s\n' "$*"; }

# cargo test's output, kept for the summary (set once cargo test runs; in $WORK).
TEST_LOG=""
WORK=""

# The sums of every `test result:` line of a cargo test output, then a line per failing test
# (the last `failures:` list before each failed result): "passed failed ignored", then the names.
test_results() {
  awk '
    { gsub(/\033\[[0-9;]*m/, "") }
    /^failures:$/ { n = 0; listing = 1; next }
    listing && /^    [^ ]/ { names[++n] = substr($0, 5); next }
    listing && /^$/ { listing = 0; next }
    /^test result: / {
      listing = 0
      for (i = 1; i < NF; i++) {
        if ($(i + 1) == "passed;") passed += $i
        if ($(i + 1) == "failed;") failed += $i
        if ($(i + 1) == "ignored;") ignored += $i
      }
      if ($3 == "FAILED.") for (j = 1; j <= n; j++) failing[++m] = names[j]
      n = 0
      results++
    }
    # A test binary that died (a signal, an abort) prints no result: it counts as a failure.
    /process didn.t exit successfully/ && /signal/ { failed++; failing[++m] = "a test binary died: " $0 }
    END {
      print passed + 0, failed + 0, ignored + 0, results + 0
      for (j = 1; j <= m; j++) print failing[j]
    }' "$@"
}

# The last line of the run, whatever ended it: cleanup first (it may print), then the sums.
finish() {
  local status=$? passed=0 failed=0 ignored=0 results=0 failing=() elapsed
  if [ -n "$TEST_LOG" ] && [ -f "$TEST_LOG" ]; then
    { read -r passed failed ignored results; mapfile -t failing; } < <(test_results "$TEST_LOG")
  fi
  if [ -n "$WORK" ]; then cleanup || true; fi
  elapsed="$((SECONDS % 60)) s"
  [ "$SECONDS" -ge 60 ] && elapsed="$((SECONDS / 60)) min $elapsed"
  echo
  for name in "${failing[@]}"; do echo "== failed: $name"; done
  if [ "$status" -ne 0 ]; then
    if [ -z "$TEST_LOG" ]; then
      echo "== stopped at: $STEP (exit $status), before cargo test ran"
    elif [ "$results" -eq 0 ]; then
      echo "== stopped at: $STEP (exit $status), no test ran (did it compile? see above)"
    else
      echo "== stopped at: $STEP (exit $status)"
    fi
  fi
  echo "== $passed passed, $failed failed, $ignored ignored in $elapsed"
  exit "$status"
}
trap finish EXIT

# --- kcat, curl and OpenSSL's headers (librdkafka's TLS) from Debian ------------------------
need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v kcat >/dev/null || need_apt+=(kcat)
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

# --- API client generators, pinned, for the generated-clients test (tests/api/clients.rs) -------
# openapi-python-client from PyPI; openapi-typescript, TypeScript and @hey-api/openapi-ts from npm
# (cached per machine in ~/.cache/ventanilla).
log "API client generators (openapi-python-client, openapi-typescript, @hey-api/openapi-ts)"
CLIENT_TOOLS_ENV="$(scripts/clients.sh install)"
eval "$CLIENT_TOOLS_ENV"

# --- PyYAML and jsonschema (draft 2020-12: 4.0 or later) for scripts/check-compose.py -----------
if ! python3 -c "import yaml, jsonschema.validators; jsonschema.validators.Draft202012Validator" 2>/dev/null; then
  log "installing PyYAML and jsonschema from PyPI"
  python3 -m pip install -q --disable-pip-version-check PyYAML "jsonschema>=4"
fi

# --- Apache Kafka: the jars once per machine, one broker for the suite ---------------------------
log "Apache Kafka $(scripts/kafka.sh version) (jars cached in ~/.cache/ventanilla)"
scripts/kafka.sh fetch >/dev/null
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
WORK="$(mktemp -d)"
# PostgreSQL runs as the postgres user: it must reach its cluster inside.
chmod 755 "$WORK"
BROKERS="$(scripts/kafka.sh start "$WORK/kafka")"
export VENTANILLA_TEST_BROKERS="$BROKERS"
export VENTANILLA_TEST_KAFKA_DIR="$WORK/clusters"

# --- PostgreSQL: Debian's package (installed when absent), a cluster of the run's own ----------
log "PostgreSQL (Debian's package, a cluster in $WORK/postgres)"
export VENTANILLA_TEST_POSTGRES="$(scripts/postgres.sh start "$WORK/postgres")"

# --- the suite --------------------------------------------------------------------------------
log "docker-compose.yml (against the Compose Specification's schema, tests/fixtures/compose-spec.json)"
python3 scripts/check-compose.py docker-compose.yml
log "config/haproxy.cfg (the load balancer of docker-compose.yml)"
/usr/sbin/haproxy -c -q -f config/haproxy.cfg
# The gateways inside the tests log warnings and errors only; broker-down noise from the
# outage tests is expected and silenced. Set RUST_LOG to see more.
export RUST_LOG="${RUST_LOG:-warn,rdkafka=off,librdkafka=off}"
log "cargo test against Apache Kafka at $VENTANILLA_TEST_BROKERS"
# Every test binary runs even after one fails (--no-fail-fast), so the summary counts them all.
# Its output is kept for the summary; the exit status is cargo's (pipefail: tee's only if
# cargo's is 0).
TEST_LOG="$WORK/cargo-test.log"
tests_status=0
cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$TEST_LOG" || tests_status=$?
if [ "$tests_status" -ne 0 ]; then
  exit "$tests_status"
fi

# --- the README's `cargo install --path .`: the operations commands as `ventanilla` on the PATH ---
# A debug install (about 40 s after the tests on a fresh clone), in a root of the run's own;
# then the binary is called by its name, from the PATH, as the guides write it.
log "cargo install --path . (the operations binary on the PATH, as the README says)"
cargo install --locked --quiet --path . --debug --root "$WORK/install"
PATH="$WORK/install/bin:$PATH" ventanilla validate --as demo-trader examples/customsDeclaration/valid/export-beef-road-AR-BR.json >/dev/null
HELP="$(PATH="$WORK/install/bin:$PATH" ventanilla --help)"
[[ "$HELP" == *"Exit codes"* ]] || { echo "ventanilla --help does not list its exit codes" >&2; exit 1; }
