#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1,
# from Maven Central jars only. It is the reference the compatibility suites are first
# proven against, and the baseline the benchmarks compare with.
#
#   e2e/apache-kafka.sh start  DIR [PORT]   # PORT defaults to 19092; controller on PORT+1
#   e2e/apache-kafka.sh stop   DIR
#   e2e/apache-kafka.sh status DIR
#
# DIR holds server.properties, the data (formatted on first start, kept across restarts),
# server.log and kafka.pid. Environment: KAFKA_VERSION (default 4.4.0), KAFKA_HEAP
# (default -Xmx1g -Xms256m), START_TIMEOUT_S (default 120), FJORD_CACHE (classpath cache,
# default ~/.cache/fjord), JAVA (default: $JAVA_HOME/bin/java, else java on PATH).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_HEAP="${KAFKA_HEAP:--Xmx1g -Xms256m}"
START_TIMEOUT_S="${START_TIMEOUT_S:-120}"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
if [[ -n "${JAVA:-}" ]]; then :; elif [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

die() { echo "apache-kafka.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 start|stop|status DIR [PORT]"; }

[[ $# -ge 2 ]] || usage
cmd="$1"
dir="$2"
port="${3:-19092}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pidfile="$dir/kafka.pid"

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

# Our process, and not a stale pid reused by something else: its command line must name
# kafka.Kafka and this DIR's server.properties.
running_pid() {
  [[ -s "$pidfile" ]] || return 1
  local pid; pid="$(cat "$pidfile")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "kafka.Kafka $dir/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  if pid="$(running_pid)"; then die "already running in $dir (pid $pid)"; fi
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  local cport=$((port + 1))
  for p in "$port" "$cport"; do
    ! port_open "$p" || die "127.0.0.1:$p is already in use"
  done
  local cp; cp="$(classpath)"

  # Settings a single node needs (replication factor 1 for the internal topics), and a
  # few that make the suites explicit: no auto topic creation, so a suite that forgets
  # to create its topic fails here as it would on a broker that does not auto-create.
  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

  local jvm=($KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$HERE/apache-kafka/log4j2.xml"
    -Dkafka.log.file="$dir/server.log")

  if [[ ! -s "$dir/data/meta.properties" ]]; then
    # Base64url of 16 random bytes, the form of a Kafka cluster id.
    local cluster_id
    cluster_id="$(python3 -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))')"
    "$JAVA" "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format \
      --config "$dir/server.properties" --cluster-id "$cluster_id" --standalone \
      > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "storage format failed"; }
  fi

  : > "$dir/server.log"
  setsid nohup "$JAVA" "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" \
    > "$dir/stdout.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$pidfile"

  # Ready when the client port accepts connections and the server says it has started.
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until port_open "$port" && grep -q "Kafka Server started" "$dir/server.log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -40 "$dir/stdout.log" "$dir/server.log" >&2
      die "Kafka exited during start-up (logs in $dir)"
    fi
    if ((SECONDS >= deadline)); then
      tail -40 "$dir/server.log" >&2
      die "Kafka did not start within ${START_TIMEOUT_S}s (logs in $dir)"
    fi
    sleep 0.2  # poll interval of the readiness check above, not a synchronisation
  done
  echo "Apache Kafka $KAFKA_VERSION listening on 127.0.0.1:$port (pid $pid, dir $dir)"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then echo "not running in $dir"; rm -f "$pidfile"; return 0; fi
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
  rm -f "$pidfile"
  echo "stopped Apache Kafka (pid $pid)"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) if pid="$(running_pid)"; then echo "running (pid $pid)"; else echo "not running"; exit 1; fi ;;
  *) usage ;;
esac
