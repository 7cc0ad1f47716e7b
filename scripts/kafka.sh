#!/usr/bin/env bash
# Apache Kafka for the tests and the benchmark: the broker's jars from Maven Central, fetched once
# into a cache and checked before each use, run on the machine's Java (17 or later) in KRaft mode
# (no ZooKeeper), on free loopback ports. Each cluster lives in a directory of its own: its
# nodes' configuration, storage, logs and process ids, and the file `bootstrap` with its address.
#
#   scripts/kafka.sh fetch                         jars into the cache (reused when intact); prints the folder
#   scripts/kafka.sh start DIR [--nodes N] [--sasl] [--user NAME=PASSWORD]...
#                                                  formats and starts N combined broker+controller nodes
#                                                  (1 or 3; 3 gives topics replication 3, min.insync.replicas 2);
#                                                  --sasl: SASL/SCRAM-SHA-256 clients, StandardAuthorizer,
#                                                  no ACL = denied, super user `admin` (DIR/admin.properties);
#                                                  waits until every node serves; prints the bootstrap servers
#   scripts/kafka.sh kill DIR NODE                 SIGKILL one node (an outage, not a shutdown)
#   scripts/kafka.sh resume DIR NODE...            starts nodes again on their storage and ports, and waits for them
#   scripts/kafka.sh stop DIR                      stops every node (SIGTERM, SIGKILL after 15 s)
#   scripts/kafka.sh kafka-acls DIR ARGS...        Apache Kafka's kafka-acls, as `admin`, against DIR's cluster
#   scripts/kafka.sh version                       the Kafka version the tests run against
#
# Environment: KAFKA_CACHE (the jar cache; default ~/.cache/ventanilla/kafka-<version>),
# KAFKA_HEAP_OPTS (default -Xms128m -Xmx768m per node).
set -euo pipefail

KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3
SLF4J_VERSION=2.0.17
CACHE="${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ventanilla/kafka-$KAFKA_VERSION}"
HEAP="${KAFKA_HEAP_OPTS:--Xms128m -Xmx768m}"
ADMIN_PASSWORD="admin-secret"

die() { echo "kafka.sh: $*" >&2; exit 1; }

free_port() {
  # A free port below the kernel's ephemeral range: the many connections the tests open take
  # their local ports from that range, and one of them could take a port chosen here in the
  # seconds before the node binds it ("Address already in use"). Not one handed out before in
  # this run of the script either (PORTS_TAKEN).
  python3 - "${PORTS_TAKEN:-}" <<'PY'
import random, socket, sys
taken = set(int(p) for p in sys.argv[1].split() if p)
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for _ in range(1000):
    port = random.randint(10000, max(10001, low - 1))
    if port in taken:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
PY
}

# --- the jars ---------------------------------------------------------------------------------
cache_intact() {
  [ -s "$CACHE/SHA256SUMS" ] && [ -d "$CACHE/libs" ] && (cd "$CACHE/libs" && sha256sum --quiet -c ../SHA256SUMS >/dev/null 2>&1)
}

fetch() {
  if cache_intact; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Apache Kafka $KAFKA_VERSION from Maven Central"
  command -v java >/dev/null || die "Java 17 or later is needed to run Apache Kafka"
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION's jars from Maven Central into $CACHE" >&2
  mkdir -p "$CACHE"
  local tmp; tmp="$(mktemp -d "$CACHE/fetch.XXXXXX")"
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.ventanilla.test</groupId>
  <artifactId>apache-kafka</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  (cd "$tmp" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2) \
    || { rm -rf "$tmp"; die "Maven could not fetch Apache Kafka $KAFKA_VERSION (see its output above)"; }
  (cd "$tmp/libs" && sha256sum ./*.jar >../SHA256SUMS)
  rm -rf "$CACHE/libs" "$CACHE/SHA256SUMS"
  mv "$tmp/libs" "$CACHE/libs"
  mv "$tmp/SHA256SUMS" "$CACHE/SHA256SUMS"
  rm -rf "$tmp"
  cache_intact || die "the jars in $CACHE/libs do not match their checksums after the fetch"
}

# The java command line, options as Kafka's own kafka-run-class.sh gives them; log4j's
# configuration is DIR's ($LOG4J).
java_args() {
  # shellcheck disable=SC2206
  JAVA=(java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J" -cp "$CACHE/libs/*")
}

java_cmd() {
  java_args
  "${JAVA[@]}" "$@"
}

# --- one cluster --------------------------------------------------------------------------------
write_log4j() {
  cat >"$1" <<'EOF'
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
EOF
}

start_node() { # DIR NODE: starts the node in the background, returns once it serves
  local dir="$1" n="$2" node="$1/node-$2"
  [ -f "$node/server.properties" ] || die "no node $n in $dir"
  if [ -f "$node/pid" ] && kill -0 "$(cat "$node/pid")" 2>/dev/null; then die "node $n of $dir is already running"; fi
  [ -f "$node/log" ] && mv "$node/log" "$node/log.previous"
  LOG4J="$dir/log4j2.properties"
  java_args
  # Started directly (not through a function), so that $! is the broker's own process.
  "${JAVA[@]}" kafka.Kafka "$node/server.properties" >"$node/log" 2>&1 </dev/null &
  echo $! >"$node/pid"
}

await_node() { # DIR NODE
  local node="$1/node-$2" pid
  pid="$(cat "$node/pid")"
  for _ in $(seq 1 600); do
    if grep -q "Kafka Server started" "$node/log" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then tail -n 30 "$node/log" >&2; die "node $2 of $1 stopped while starting (log above)"; fi
    sleep 0.1
  done
  tail -n 30 "$node/log" >&2
  die "node $2 of $1 did not start within 60 s (log above)"
}

start() {
  local dir="" nodes=1 sasl=0 users=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes="$2"; shift 2 ;;
      --sasl) sasl=1; shift ;;
      --user) users+=("$2"); shift 2 ;;
      -*) die "start: unknown option $1" ;;
      *) dir="$1"; shift ;;
    esac
  done
  [ -n "$dir" ] || die "start: which directory?"
  [ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "start: --nodes 1 or 3"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  [ ! -e "$dir/bootstrap" ] || die "$dir already holds a cluster"
  write_log4j "$dir/log4j2.properties"
  LOG4J="$dir/log4j2.properties"

  local client_ports=() controller_ports=() voters="" i
  for i in $(seq 1 "$nodes"); do
    client_ports+=("$(free_port)"); PORTS_TAKEN="${PORTS_TAKEN:-} ${client_ports[-1]}"
    controller_ports+=("$(free_port)"); PORTS_TAKEN="$PORTS_TAKEN ${controller_ports[-1]}"
    voters="${voters:+$voters,}$i@127.0.0.1:${controller_ports[$((i-1))]}"
  done
  local rf=$nodes isr=1
  [ "$nodes" -ge 3 ] && isr=2
  local scram=()
  if [ "$sasl" = 1 ]; then
    scram+=(--add-scram "SCRAM-SHA-256=[name=admin,password=$ADMIN_PASSWORD]")
    for u in "${users[@]}"; do
      scram+=(--add-scram "SCRAM-SHA-256=[name=${u%%=*},password=${u#*=}]")
    done
    cat >"$dir/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
EOF
  fi
  local cluster_id
  cluster_id="$(java_cmd kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  for i in $(seq 1 "$nodes"); do
    local node="$dir/node-$i" cp="${client_ports[$((i-1))]}" kp="${controller_ports[$((i-1))]}"
    mkdir -p "$node"
    {
      echo "process.roles=broker,controller"
      echo "node.id=$i"
      echo "controller.quorum.voters=$voters"
      echo "listeners=CLIENT://127.0.0.1:$cp,CONTROLLER://127.0.0.1:$kp"
      echo "advertised.listeners=CLIENT://127.0.0.1:$cp"
      echo "controller.listener.names=CONTROLLER"
      echo "inter.broker.listener.name=CLIENT"
      echo "log.dirs=$node/data"
      echo "num.partitions=3"
      echo "default.replication.factor=$rf"
      echo "min.insync.replicas=$isr"
      echo "offsets.topic.replication.factor=$rf"
      echo "offsets.topic.num.partitions=5"
      echo "transaction.state.log.replication.factor=$rf"
      echo "transaction.state.log.min.isr=$isr"
      echo "share.coordinator.state.topic.replication.factor=$rf"
      echo "share.coordinator.state.topic.min.isr=$isr"
      echo "group.initial.rebalance.delay.ms=0"
      # A killed node is fenced (and its partitions led elsewhere) after 6 s instead of 9.
      echo "broker.session.timeout.ms=6000"
      echo "broker.heartbeat.interval.ms=1000"
      if [ "$sasl" = 1 ]; then
        echo "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
        echo "sasl.enabled.mechanisms=SCRAM-SHA-256"
        echo "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256"
        echo "sasl.mechanism.controller.protocol=PLAIN"
        echo "listener.name.controller.sasl.enabled.mechanisms=PLAIN"
        echo "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$ADMIN_PASSWORD\" user_admin=\"$ADMIN_PASSWORD\";"
        echo "listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$ADMIN_PASSWORD\";"
        echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        echo "super.users=User:admin"
        echo "allow.everyone.if.no.acl.found=false"
      else
        echo "listener.security.protocol.map=CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT"
      fi
    } >"$node/server.properties"
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$node/server.properties" "${scram[@]}" \
      >"$node/format.log" 2>&1 || { cat "$node/format.log" >&2; die "cannot format node $i's storage"; }
  done
  for i in $(seq 1 "$nodes"); do start_node "$dir" "$i"; done
  for i in $(seq 1 "$nodes"); do await_node "$dir" "$i"; done
  local bootstrap=""
  for p in "${client_ports[@]}"; do bootstrap="${bootstrap:+$bootstrap,}127.0.0.1:$p"; done
  echo "$bootstrap" >"$dir/bootstrap"
  echo "$bootstrap"
}

kill_node() {
  local pidfile="$1/node-$2/pid"
  [ -f "$pidfile" ] || die "no node $2 in $1"
  local pid; pid="$(cat "$pidfile")"
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$pidfile"
}

stop() {
  local dir="$1" pid pids=()
  for pidfile in "$dir"/node-*/pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$pidfile"
  done
  for _ in $(seq 1 150); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

acls() {
  local dir="$1"; shift
  [ -f "$dir/admin.properties" ] || die "$dir is not a --sasl cluster"
  fetch
  LOG4J="$dir/log4j2.properties"
  java_cmd org.apache.kafka.tools.AclCommand --bootstrap-server "$(cut -d, -f1 "$dir/bootstrap")" \
    --command-config "$dir/admin.properties" "$@"
}

case "${1:-}" in
  fetch) fetch; echo "$CACHE/libs" ;;
  start) shift; start "$@" ;;
  kill) kill_node "$2" "$3" ;;
  resume)
    dir="$2"; shift 2
    # All first, then the wait: a node of three serves only once a quorum of controllers runs.
    for n in "$@"; do start_node "$dir" "$n"; done
    for n in "$@"; do await_node "$dir" "$n"; done ;;
  stop) stop "$2" ;;
  kafka-acls) shift; acls "$@" ;;
  version) echo "$KAFKA_VERSION" ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
