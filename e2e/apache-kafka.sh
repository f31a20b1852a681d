#!/usr/bin/env bash
# Runs Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1, from Maven Central
# jars only: one node, or a cluster of N nodes. It is the reference the compatibility
# suites are first proven against, and the baseline the benchmarks compare with.
#
#   e2e/apache-kafka.sh start  DIR [PORT]   # PORT defaults to 19092; controller on PORT+1
#   e2e/apache-kafka.sh stop   DIR
#   e2e/apache-kafka.sh status DIR
#   e2e/apache-kafka.sh start-cluster DIR [PORT [N]]
#   e2e/apache-kafka.sh stop-cluster  DIR
#   e2e/apache-kafka.sh start-node    DIR I   # node I of that cluster again, on its data
#   e2e/apache-kafka.sh classpath           # the jars of Kafka's broker and tools
#   e2e/apache-kafka.sh tool NAME ARGS...   # Kafka's own command-line tools, e.g.
#       tool kafka-configs --bootstrap-server HOST:PORT --alter --entity-type topics ...
#       (the names e2e/apache-kafka/tools.tsv lists)
#
# DIR holds server.properties, the data (formatted on first start, kept across restarts),
# server.log and kafka.pid. A cluster (N nodes, default 3, every one a voter of a static
# controller quorum) keeps node i in DIR/node-i, with its client listener on PORT+i-1 and
# its controller listener on PORT+N+i-1; its topics default to replication factor
# min(N, 3) and min.insync.replicas 2 from three nodes up. Environment: KAFKA_VERSION
# (default 4.4.0), KAFKA_HEAP (default -Xmx1g -Xms256m, per node), START_TIMEOUT_S
# (default 120), FJORD_CACHE (classpath cache, default ~/.cache/fjord), JAVA (default:
# $JAVA_HOME/bin/java, else java on PATH), KAFKA_EXTRA_PROPERTIES (a file appended to each
# node's server.properties: its keys override the ones above, e.g. more listeners),
# KAFKA_ADD_SCRAM (a SCRAM credential created when a single node's storage is formatted,
# as `kafka-storage format --add-scram 'SCRAM-SHA-512=[name=...,password=...]'`).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx1g -Xms256m}"
START_TIMEOUT_S="${START_TIMEOUT_S:-120}"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
if [[ -n "${JAVA:-}" ]]; then :; elif [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

die() { echo "apache-kafka.sh: $*" >&2; exit 1; }
usage() {
  die "usage: $0 start|stop|status DIR [PORT] | start-cluster DIR [PORT [N]] | stop-cluster DIR | start-node DIR I | tool NAME ARGS..."
}

# The classpath is resolved once per Kafka version and pom, then cached.
classpath() {
  local cpfile="$CACHE/apache-kafka-$KAFKA_VERSION.classpath"
  if [[ ! -s "$cpfile" || "$HERE/apache-kafka/pom.xml" -nt "$cpfile" ]]; then
    mkdir -p "$CACHE"
    echo "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven..." >&2
    mvn -q -B -Dstyle.color=never -f "$HERE/apache-kafka/pom.xml" dependency:build-classpath \
      -Dkafka.version="$KAFKA_VERSION" -Dmdep.outputFile="$cpfile.tmp" >&2 \
      || die "Maven could not resolve Kafka $KAFKA_VERSION"
    mv "$cpfile.tmp" "$cpfile"
  fi
  cat "$cpfile"
}

if [[ "${1:-}" == classpath ]]; then classpath; exit; fi
# Kafka's command-line tools, as the kafka-*.sh scripts of a Kafka release run them.
if [[ "${1:-}" == tool ]]; then
  [[ $# -ge 2 ]] || usage
  class=$(awk -F'\t' -v n="$2" '$1 == n {print $2}' "$HERE/apache-kafka/tools.tsv")
  [[ -n $class ]] || die "unknown tool $2 (e2e/apache-kafka/tools.tsv lists them)"
  shift 2
  exec "$JAVA" -Xmx256m -Dlog4j2.level=warn -cp "$(classpath)" "$class" "$@"
fi

[[ $# -ge 2 ]] || usage
cmd="$1"
dir="$2"
port="${3:-19092}"
nodes="${4:-3}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# Our process in node directory $1, and not a stale pid reused by something else: its
# command line must name kafka.Kafka and that directory's server.properties.
running_pid() {
  local d="$1" pid
  [[ -s "$d/kafka.pid" ]] || return 1
  pid="$(cat "$d/kafka.pid")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "kafka.Kafka $d/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Base64url of 16 random bytes, the form of a Kafka cluster id, without "-": one that starts
# with it is taken for an option by kafka-storage's argument parser, which refuses the
# format (one id in 64). Kafka's own Uuid.randomUuid draws again on any "-" too.
new_cluster_id() {
  python3 -c 'import base64,os
while True:
    i = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if "-" not in i:
        print(i)
        break'
}

# write_properties NODE_DIR NODE_ID PORT CPORT QUORUM RF MIN_ISR
# QUORUM is the controller.quorum.* line; RF and MIN_ISR apply to the internal topics
# too. No auto topic creation, so a suite that forgets to create its topic fails here as
# it would on a broker that does not auto-create.
write_properties() {
  local d="$1" id="$2" p="$3" cport="$4" quorum="$5" rf="$6" min_isr="$7"
  cat > "$d/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
$quorum
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
EOF
  # java.util.Properties keeps the last value of a key, so these override the above.
  [[ -z "${KAFKA_EXTRA_PROPERTIES:-}" ]] || cat "$KAFKA_EXTRA_PROPERTIES" >> "$d/server.properties"
}

# Sets the array `jvm` to the JVM flags of the node in directory $1.
jvm_opts() {
  # shellcheck disable=SC2206 # KAFKA_HEAP is a list of JVM flags
  jvm=($KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$HERE/apache-kafka/log4j2.xml"
    -Dkafka.log.file="$1/server.log")
}

# format NODE_DIR CLUSTER_ID [FLAGS...]: formats the node's log dir unless it holds data.
format() {
  local d="$1" id="$2" jvm
  shift 2
  [[ ! -s "$d/data/meta.properties" ]] || return 0
  jvm_opts "$d"
  "$JAVA" "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format \
    --config "$d/server.properties" --cluster-id "$id" "$@" > "$d/format.log" 2>&1 \
    || { cat "$d/format.log" >&2; return 1; }
}

# launch NODE_DIR: starts the node in the background and records its pid.
launch() {
  local d="$1" jvm
  jvm_opts "$d"
  : > "$d/server.log"
  setsid nohup "$JAVA" "${jvm[@]}" -cp "$cp" kafka.Kafka "$d/server.properties" \
    > "$d/stdout.log" 2>&1 < /dev/null &
  echo "$!" > "$d/kafka.pid"
}

# wait_started NODE_DIR PORT DEADLINE: ready when the client port accepts connections and
# the server says it has started.
wait_started() {
  local d="$1" p="$2" deadline="$3" pid
  pid="$(cat "$d/kafka.pid")"
  until port_open "$p" && grep -q "Kafka Server started" "$d/server.log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -40 "$d/stdout.log" "$d/server.log" >&2
      die "Kafka exited during start-up (logs in $d)"
    fi
    if ((SECONDS >= deadline)); then
      tail -40 "$d/server.log" >&2
      die "Kafka did not start within ${START_TIMEOUT_S}s (logs in $d)"
    fi
    sleep 0.2  # poll interval of the readiness check above, not a synchronisation
  done
}

start() {
  if pid="$(running_pid "$dir")"; then die "already running in $dir (pid $pid)"; fi
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  local cport=$((port + 1))
  for p in "$port" "$cport"; do
    ! port_open "$p" || die "127.0.0.1:$p is already in use"
  done
  cp="$(classpath)"
  write_properties "$dir" 1 "$port" "$cport" \
    "controller.quorum.bootstrap.servers=127.0.0.1:$cport" 1 1
  format "$dir" "$(new_cluster_id)" --standalone \
    ${KAFKA_ADD_SCRAM:+--add-scram "$KAFKA_ADD_SCRAM"} || die "storage format failed"
  launch "$dir"
  wait_started "$dir" "$port" $((SECONDS + START_TIMEOUT_S))
  echo "Apache Kafka $KAFKA_VERSION listening on 127.0.0.1:$port" \
    "(pid $(cat "$dir/kafka.pid"), dir $dir)"
}

# Every node is a voter of a static quorum (controller.quorum.voters), so each node is
# formatted alone with the cluster's one id, and no node finishes starting before a
# majority runs: all are launched, then waited for.
start_cluster() {
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  [[ "$nodes" =~ ^[0-9]+$ ]] && ((nodes >= 1)) || die "N must be a positive number, got '$nodes'"
  local i d pid voters="" ports=()
  for ((i = 1; i <= nodes; i++)); do
    if pid="$(running_pid "$dir/node-$i")"; then
      die "already running in $dir/node-$i (pid $pid)"
    fi
    ports+=($((port + i - 1)) $((port + nodes + i - 1)))
    voters+="${voters:+,}$i@127.0.0.1:$((port + nodes + i - 1))"
  done
  for p in "${ports[@]}"; do
    ! port_open "$p" || die "127.0.0.1:$p is already in use"
  done
  cp="$(classpath)"
  local rf=$((nodes < 3 ? nodes : 3)) min_isr=$((nodes >= 3 ? 2 : 1))
  [[ -s "$dir/cluster.id" ]] || new_cluster_id > "$dir/cluster.id"
  local cluster_id formats=()
  cluster_id="$(cat "$dir/cluster.id")"
  for ((i = 1; i <= nodes; i++)); do
    d="$dir/node-$i"
    mkdir -p "$d"
    write_properties "$d" "$i" $((port + i - 1)) $((port + nodes + i - 1)) \
      "controller.quorum.voters=$voters" "$rf" "$min_isr"
    format "$d" "$cluster_id" &
    formats+=($!)
  done
  for f in "${formats[@]}"; do wait "$f" || die "storage format failed"; done
  for ((i = 1; i <= nodes; i++)); do launch "$dir/node-$i"; done
  local deadline=$((SECONDS + START_TIMEOUT_S))
  for ((i = 1; i <= nodes; i++)); do
    wait_started "$dir/node-$i" $((port + i - 1)) "$deadline"
  done
  echo "Apache Kafka $KAFKA_VERSION cluster of $nodes listening on" \
    "127.0.0.1:$port-$((port + nodes - 1)) (dir $dir)"
}

# start_node I: node I of the cluster in $dir again (after it was killed), with the
# configuration and data start-cluster left; the others must be running for it to start.
start_node() {
  local i="$1" d p pid
  [[ "$i" =~ ^[0-9]+$ ]] || die "I must be a node number, got '$i'"
  d="$dir/node-$i"
  [[ -s "$d/server.properties" ]] || die "no cluster node in $d (start-cluster first)"
  if pid="$(running_pid "$d")"; then die "already running in $d (pid $pid)"; fi
  p="$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$d/server.properties")"
  cp="$(classpath)"
  launch "$d"
  wait_started "$d" "$p" $((SECONDS + START_TIMEOUT_S))
  echo "Apache Kafka node $i listening on 127.0.0.1:$p (pid $(cat "$d/kafka.pid"))"
}

# stop NODE_DIR
stop() {
  local d="$1" pid
  if ! pid="$(running_pid "$d")"; then echo "not running in $d"; rm -f "$d/kafka.pid"; return 0; fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "Kafka pid $pid ignored SIGTERM for 60s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2  # poll interval while waiting for the process to exit
  done
  rm -f "$d/kafka.pid"
  echo "stopped Apache Kafka (pid $pid)"
}

# All nodes at once: stopped one by one, the last nodes would wait out their controlled
# shutdown against a controller quorum that has lost its majority.
stop_cluster() {
  local d stops=()
  for d in "$dir"/node-*; do
    [[ -d "$d" ]] || continue
    stop "$d" &
    stops+=($!)
  done
  for s in "${stops[@]}"; do wait "$s" || true; done
}

case "$cmd" in
  start) start ;;
  stop) stop "$dir" ;;
  status) if pid="$(running_pid "$dir")"; then echo "running (pid $pid)"; else echo "not running"; exit 1; fi ;;
  start-cluster) start_cluster ;;
  stop-cluster) stop_cluster ;;
  start-node) start_node "$port" ;;
  *) usage ;;
esac
