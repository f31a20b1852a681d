#!/usr/bin/env bash
# Fjord's whole test suite: the one command CI runs (via .ci/run) and developers run
# (via `make test`). It installs what the suites need (Debian packages, a Python venv,
# Maven artifacts, cargo-fuzz, and the Kubernetes control plane and helm built from
# their Go modules) and caches everything outside the checkout under
# ${FJORD_CACHE:-~/.cache/fjord}, including cargo's target dir, so a fresh clone does
# not rebuild from nothing.
#
# Every step runs even when an earlier one failed; the last line is the summary.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
export FJORD_CACHE="$CACHE"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
mkdir -p "$CACHE"
# shellcheck source=tools/deps.sh
source tools/deps.sh

passed=0
failed=0
failures=()
# record NAME EXIT_CODE SECONDS: counts a step and prints its result line.
record() {
  if [[ $2 -eq 0 ]]; then
    passed=$((passed + 1))
    echo "=== $1: ok ($3s)"
  else
    failed=$((failed + 1))
    failures+=("$1")
    echo "=== $1: FAILED ($3s)"
  fi
}
step() {
  local name="$1"; shift
  local start=$SECONDS rc=0
  echo
  echo "=== $name"
  "$@" || rc=$?
  record "$name" "$rc" $((SECONDS - start))
}

# side_by_side LANE...: each lane (a function that calls `step`) runs at the same time
# as the others, its output held back and printed whole, lane after lane, once all
# have ended; their steps count as if run one after another. For suites that spend
# their time waiting on brokers and timeouts rather than on the CPU.
side_by_side() {
  local dir lane i pids=()
  dir=$(mktemp -d)
  for lane in "$@"; do
    i=${#pids[@]}
    (
      passed=0; failed=0; failures=()
      "$lane"
      echo "$passed $failed" > "$dir/$i.counts"
      if [[ $failed -gt 0 ]]; then printf '%s\n' "${failures[@]}" > "$dir/$i.failures"; fi
    ) > "$dir/$i.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in "${!pids[@]}"; do
    cat "$dir/$i.log"
    local p=0 f=0
    if [[ -s "$dir/$i.counts" ]]; then
      read -r p f < "$dir/$i.counts"
    else
      f=1; failures+=("lane $i ended without its counts")
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [[ -s "$dir/$i.failures" ]]; then mapfile -t -O "${#failures[@]}" failures < "$dir/$i.failures"; fi
  done
  rm -rf "$dir"
}

apt_deps() {
  # kcat for the librdkafka CLI suite; cmake and a C toolchain for rdkafka-sys;
  # curl for readiness probes; python3-venv for the Python suites; faketime (libfaketime)
  # for the wall-clock step suite; libssl-dev and pkg-config for librdkafka's TLS in the
  # e2e crate (the client of the TLS listener tests); openssl for e2e/tls/certs.sh.
  deps_apt kcat cmake curl python3-venv faketime libssl-dev pkg-config openssl
}


# A loopback port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start one broker on loopback with a fresh data dir, run the third-party client
# suites against it, stop it with SIGTERM.
client_compat() {
  local dir port=29092 ssl_port=29093 sasl_port=29094 sasl_ssl_port=29095 nocert_port=29096
  local http=29644 internal pid rc
  dir=$(mktemp -d)
  # Its own internal listener port: the default (9093) may be taken on this machine.
  internal=$(free_port) || return 1
  # One listener per security protocol: PLAINTEXT, SSL requiring client certificates, SSL
  # without them (SSLNOCERT), SASL_PLAINTEXT and SASL_SSL (which asks for no certificate,
  # KIP-684). Two SCRAM users: compat, a super user, and denied, whom the suites' PREFIXED
  # ACLs leave out of their own topics and groups. allow.everyone.if.no.acl.found keeps
  # every resource no ACL names open, so the suites that do not authenticate still pass.
  e2e/tls/certs.sh "$dir/tls" > /dev/null || return 1
  FJORD_SCRAM_BOOTSTRAP='SCRAM-SHA-256=[name=compat,password=compat-secret] SCRAM-SHA-512=[name=compat,password=compat-secret] SCRAM-SHA-256=[name=denied,password=denied-secret] SCRAM-SHA-512=[name=denied,password=denied-secret]' \
  "$CARGO_TARGET_DIR/debug/fjord" --data-dir "$dir/data" \
    --listeners "PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$ssl_port,SASL_PLAINTEXT://127.0.0.1:$sasl_port,SASL_SSL://127.0.0.1:$sasl_ssl_port,SSLNOCERT://127.0.0.1:$nocert_port" \
    --listener-security-protocol-map 'PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSLNOCERT:SSL' \
    --ssl-client-auth required --listener-ssl-client-auth 'SSLNOCERT:none' \
    --sasl-enabled-mechanisms SCRAM-SHA-256,SCRAM-SHA-512,PLAIN \
    --ssl-keystore-location "$dir/tls/broker.pem" --ssl-key-location "$dir/tls/broker.key" \
    --ssl-truststore-location "$dir/tls/ca.pem" \
    --authorizer standard --allow-everyone-if-no-acl-found true --super-users User:compat \
    --http-listen "127.0.0.1:$http" --internal-listen "127.0.0.1:$internal" > "$dir/fjord.log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$http/ready" >/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || (( SECONDS > deadline )); then
      echo "broker did not become ready"; cat "$dir/fjord.log"; kill -9 "$pid" 2>/dev/null; return 1
    fi
    sleep 0.2
  done
  FJORD_SSL_BOOTSTRAP="127.0.0.1:$ssl_port" FJORD_SSL_DIR="$dir/tls" \
    FJORD_SSL_NOCERT_BOOTSTRAP="127.0.0.1:$nocert_port" \
    FJORD_SASL_BOOTSTRAP="127.0.0.1:$sasl_port" FJORD_SASL_SSL_BOOTSTRAP="127.0.0.1:$sasl_ssl_port" \
    FJORD_SASL_USER=compat FJORD_SASL_PASSWORD=compat-secret \
    FJORD_SASL_DENIED_USER=denied FJORD_SASL_DENIED_PASSWORD=denied-secret \
    e2e/compat.sh "127.0.0.1:$port"
  rc=$?
  kill -TERM "$pid"; wait "$pid"
  if [[ $rc -ne 0 ]]; then tail -n 50 "$dir/fjord.log"; fi
  rm -rf "$dir"
  return $rc
}

# Start a 3-broker cluster with `fjord dev` (replication factor 3, min.insync.replicas 2)
# on ports clear of the single-broker step's, run the same suites against it with every
# topic they create replicated three times, stop it with SIGTERM.
cluster_compat() {
  local dir base=29192 pid rc bootstrap=""
  dir=$(mktemp -d)
  "$CARGO_TARGET_DIR/debug/fjord" dev --brokers 3 --base-port "$base" --data-dir "$dir/data" \
    > "$dir/dev.out" 2> "$dir/dev.log" &
  pid=$!
  local deadline=$((SECONDS + 120))
  # `fjord dev` prints "bootstrap: ..." once every broker answers /ready.
  until bootstrap=$(sed -n 's/^bootstrap: //p' "$dir/dev.out" 2>/dev/null) && [[ -n $bootstrap ]]; do
    if ! kill -0 "$pid" 2>/dev/null || (( SECONDS > deadline )); then
      echo "the 3-broker cluster did not become ready"; tail -n 50 "$dir/dev.log"
      kill -TERM "$pid" 2>/dev/null; wait "$pid"; rm -rf "$dir"; return 1
    fi
    sleep 0.2  # poll interval, not a synchronisation
  done
  echo "cluster ready: $bootstrap"
  # The one-broker pass covers what a second cluster pass would only repeat: the
  # README's examples (their own broker) and the older Java client.
  FJORD_REPLICATION_FACTOR=3 LOG_DIR="${LOG_DIR:-$CACHE/compat-logs/cluster-$(date +%Y%m%d-%H%M%S)}" \
    JAVA_CLIENT_VERSIONS=4.4.0 SUITES="kcat kafka-python confluent-kafka java spring kafka-tools librdkafka" \
    e2e/compat.sh "$bootstrap"
  rc=$?
  kill -TERM "$pid"
  if ! wait "$pid"; then
    echo "fjord dev did not stop cleanly"; rc=1
  fi
  if [[ $rc -ne 0 ]]; then tail -n 80 "$dir/dev.log"; fi
  rm -rf "$dir"
  return $rc
}

# confluent-kafka transactions while a broker is killed with SIGKILL and restarted: the
# suite starts and owns its 3-broker cluster (ports 17000-17022), as it kills a broker.
txn_kill_compat() {
  FJORD_BIN="$CARGO_TARGET_DIR/debug/fjord" e2e/python/run.sh - test_txn_confluent_kafka.py
}

iptables_dep() {
  # The cluster fault suite cuts a broker off with iptables rules on loopback.
  command -v iptables >/dev/null && return 0
  echo "installing iptables"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
}

step "system packages" apt_deps
step "cargo cache bounded" tools/prune-target.sh "$CARGO_TARGET_DIR"
step "iptables for the cluster fault suite" iptables_dep
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
schemas_current() {
  # The generator reads Kafka's message schemas from the kafka-clients jar.
  mvn -q -B dependency:get -Dartifact=org.apache.kafka:kafka-clients:4.4.0 -Dtransitive=false &&
    python3 tools/gen_request_schemas.py --check
}

step "generated request schemas are current" schemas_current
step "benchmark harness unit tests" bash -c "cd e2e/bench && python3 -m unittest -q test_bench"
step "rust unit and integration tests" tools/rust-tests.sh
step "request decoder fuzzing (${FUZZ_SECONDS}s)" tools/fuzz.sh "$FUZZ_SECONDS"

# The client suites: the one-broker pass, then the exactly-once kill tests, beside the
# 3-broker pass, then the confluent-kafka kill test (about 11 minutes each here), beside
# the Kubernetes suite (below). Their
# ports do not overlap (29092-29644, 29192-30194, 17000-17022, 17100-17222) and lie below
# the kernel's ephemeral range (32768-60999), so no client connection of a neighbouring
# lane can hold one; each Maven run builds in its own directory.
lane_one_broker() {
  step "third-party client suites" client_compat
  # Spring's KafkaTransactionManager and Kafka Streams exactly_once_v2, each on its own
  # 3-broker cluster with one broker killed mid-run.
  step "exactly-once clients under a broker kill" \
    env FJORD_BIN="$CARGO_TARGET_DIR/debug/fjord" e2e/eos/run.sh
}
lane_cluster() {
  step "client suites against a 3-broker cluster" cluster_compat
  step "confluent-kafka transactions through a broker kill" txn_kill_compat
}
# What both passes install on first use is installed once before them: the Python venv,
# Kafka's tool classpath, and every Maven artifact of the client builds (go-offline, once
# per version of the poms), so that two passes never fill one cache at the same time.
client_deps() {
  local poms=(e2e/java/pom.xml e2e/spring/pom.xml e2e/streams/pom.xml) stamp key v
  e2e/python/venv.sh > /dev/null || return 1
  e2e/apache-kafka.sh tool kafka-topics --version > /dev/null || return 1
  stamp="$CACHE/client-maven-offline"
  key=$(cat "${poms[@]}" | sha256sum | cut -d' ' -f1)
  [[ "$(cat "$stamp" 2>/dev/null)" == "$key" ]] && return 0
  for v in 3.9.2 4.4.0; do
    mvn -q -B -f e2e/java/pom.xml dependency:go-offline -Dkafka.version="$v" || return 1
  done
  mvn -q -B -f e2e/spring/pom.xml -P eos dependency:go-offline &&
    mvn -q -B -f e2e/streams/pom.xml dependency:go-offline &&
    echo "$key" > "$stamp"
}
step "client suite dependencies" client_deps
# The container images before the lanes: their release builds want both cores, and
# they publish fixed ports on 127.0.0.1 in the ephemeral range, which the other suites'
# loopback traffic may hold. The Kubernetes suite, which runs those images on its real
# nodes, is the third lane (its ports: 20000-28999 for the control plane, the nodes'
# on 10.244.0.0/16 and 127.0.0.1:10246-10256).
step "container images" e2e/images.sh
lane_kubernetes() {
  step "Kubernetes suite (operator, chart, real control plane and nodes)" e2e/k8s.sh
}
side_by_side lane_one_broker lane_cluster lane_kubernetes

echo
if [[ $failed -gt 0 ]]; then
  printf 'failed steps:\n'; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
