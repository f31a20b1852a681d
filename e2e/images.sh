#!/usr/bin/env bash
# Fjord's container images, built and run on a machine with no image registry.
#
#   e2e/images.sh
#
# 1. Docker: installs Debian's docker.io if dockerd is missing, starts dockerd in the
#    background if none answers (log: $FJORD_CACHE/docker/dockerd.log).
# 2. Images: assembles the runtime base from Debian .debs (docker/base-image.sh, no pull),
#    builds the broker binary on the host, and builds the image with the Dockerfile's
#    `prebuilt` target on that base: the same runtime layer users get from the default
#    target. Same for the operator when its crate exists. Prints the image sizes.
# 3. Runs the broker image: one container on a private docker network this script creates,
#    a named volume on /data, its Kafka port published on 127.0.0.1 only. kcat on the host
#    produces with acks=all and reads back; SIGKILL and restart on the same volume loses
#    no acknowledged record; `docker stop` (SIGTERM) ends in a clean exit 0 within the stop
#    timeout. Everything it creates is removed at exit.
# 4. Runs a 3-broker cluster of broker containers on that network, each on its own volume,
#    with the arguments the operator's StatefulSet gives its pods (operator/src/desired.rs,
#    broker_args): node ids 0..2, the three as voters by their DNS names, replication
#    factor 3 and min.insync.replicas 2 as environment, as the operator's ConfigMap does.
#    kcat produces with acks=all; the partition leader's container is killed and replaced
#    on its volume while more is produced; every acknowledged record is read back; then
#    `docker stop` stops each broker with exit 0 within the stop timeout.
#
# Environment: FJORD_CACHE (~/.cache/fjord), CARGO_TARGET_DIR ($FJORD_CACHE/target),
# RECORDS (20000), STOP_TIMEOUT (20 s), KAFKA_PORT (39192), HTTP_PORT (39644),
# CLUSTER_KAFKA_PORT (39200: brokers 0..2 on 39200..39202), CLUSTER_HTTP_PORT (39650),
# DOCKERD_ARGS, IMAGES_BUILD_ONLY (1: steps 1 and 2 only, for e2e/k8s.sh's real node).
# A dockerd the script starts keeps running after it (later runs reuse it).
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
export FJORD_CACHE="$CACHE"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
RECORDS="${RECORDS:-20000}"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"
KAFKA_PORT="${KAFKA_PORT:-39192}"
HTTP_PORT="${HTTP_PORT:-39644}"
CLUSTER_KAFKA_PORT="${CLUSTER_KAFKA_PORT:-39200}"
CLUSTER_HTTP_PORT="${CLUSTER_HTTP_PORT:-39650}"
BASE=fjord-base:bookworm
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
BROKER_IMAGE="fjord:$VERSION"
OPERATOR_IMAGE="fjord-operator:$VERSION"
NET=fjord-images-test
VOL=fjord-images-data
CTR=fjord-images-b1
TOPIC=images-e2e
START=$SECONDS
mkdir -p "$CACHE/docker"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
  echo "images: $((SECONDS - START))s"
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit
}
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# ---- 1. docker ---------------------------------------------------------------------------
if ! command -v dockerd >/dev/null; then
  echo "installing docker.io from Debian"
  as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker.io >/dev/null \
    || { fail "apt-get install docker.io"; finish; }
fi
if ! command -v kcat >/dev/null; then
  echo "installing kcat from Debian"
  as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq kcat >/dev/null \
    || { fail "apt-get install kcat"; finish; }
fi

# wait_docker SECONDS [PID]: true once the daemon answers; false at the deadline or as soon
# as PID (the background dockerd) has exited.
wait_docker() {
  local deadline=$((SECONDS + $1))
  until docker info >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    [[ -z "${2:-}" ]] || kill -0 "$2" 2>/dev/null || return 1
    sleep 0.5  # poll interval, not a synchronisation
  done
}
# start_dockerd ARGS...: dockerd in the background, true once it answers. setsid: the
# daemon outlives this script, so later runs reuse it.
start_dockerd() {
  echo "starting dockerd${*:+ $*} (log: $log)"
  if [[ $(id -u) -eq 0 ]]; then
    setsid dockerd "$@" >>"$log" 2>&1 < /dev/null &
  else
    sudo setsid dockerd "$@" >>"$log" 2>&1 < /dev/null &
  fi
  wait_docker 60 $!
}
if ! docker info >/dev/null 2>&1; then
  log="$CACHE/docker/dockerd.log"
  : > "$log"
  # DOCKERD_ARGS: extra flags. If the daemon cannot start (no iptables, no overlayfs in
  # a sandbox), retry once without iptables (published ports then go through docker-proxy)
  # and on the vfs storage driver.
  # shellcheck disable=SC2086
  if ! start_dockerd ${DOCKERD_ARGS:-}; then
    echo "dockerd did not answer; last lines of $log:"; tail -n 5 "$log" | sed 's/^/    /'
    # A daemon that is up but not answering holds the pid file; stop it before the retry.
    if [[ -s /var/run/docker.pid ]]; then
      pid="$(cat /var/run/docker.pid)"
      as_root kill "$pid" 2>/dev/null
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    if ! start_dockerd --iptables=false --storage-driver=vfs; then
      fail "dockerd did not answer within 60 s; last lines of $log:"
      tail -n 20 "$log" | sed 's/^/    /'
      finish
    fi
  fi
fi
echo "docker: server $(docker version -f '{{.Server.Version}}' 2>/dev/null), $(docker info -f '{{.Driver}}' 2>/dev/null) storage"
# The legacy builder needs no plugin; BuildKit through `docker build` needs buildx.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

# ---- 2. images ---------------------------------------------------------------------------
if docker/base-image.sh "$BASE"; then ok "base image $BASE"; else fail "base image $BASE"; finish; fi

# build_image NAME DOCKERFILE PACKAGE BIN [ARG=BIN...]: host binaries, then the image's
# prebuilt target (BIN is PREBUILT; each ARG=BIN another binary the Dockerfile takes).
build_image() {
  local image="$1" dockerfile="$2" package="$3" bin="$4" start=$SECONDS extra b
  shift 4
  local bins=("$bin") args=(--build-arg PREBUILT="target/docker/$bin")
  for extra in "$@"; do
    bins+=("${extra#*=}")
    args+=(--build-arg "${extra%%=*}=target/docker/${extra#*=}")
  done
  if ! cargo build --release --locked -q -p "$package" "${bins[@]/#/--bin=}"; then
    fail "cargo build ${bins[*]}"; return 1
  fi
  # The build context is the checkout; the binaries go where .dockerignore lets them in.
  mkdir -p target/docker
  # Without the release profile's line tables, as the Dockerfile's builder stage does.
  for b in "${bins[@]}"; do
    objcopy --strip-debug "$CARGO_TARGET_DIR/release/$b" "target/docker/$b"
  done
  if docker build -q -f "$dockerfile" --target prebuilt \
      --build-arg RUNTIME_IMAGE="$BASE" "${args[@]}" \
      --build-arg VERSION="$VERSION" -t "$image" . > "$CACHE/docker/build-$bin.log" 2>&1; then
    ok "image $image built ($((SECONDS - start))s)"
  else
    fail "docker build $image:"; tail -n 20 "$CACHE/docker/build-$bin.log" | sed 's/^/    /'; return 1
  fi
}
build_image "$BROKER_IMAGE" Dockerfile fjord-broker fjord || finish

operator=0
if [[ -f operator/Cargo.toml ]]; then
  build_image "$OPERATOR_IMAGE" docker/operator.Dockerfile fjord-operator fjord-operator \
    PREBUILT_CHECK=fjord-check && operator=1
else
  echo "operator image: skipped (operator crate not present: no operator/Cargo.toml)"
fi

# IMAGES_BUILD_ONLY=1: the images are built (or found current), nothing is run.
[[ ${IMAGES_BUILD_ONLY:-0} != 1 ]] || finish

mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1000000 }'; }
echo "image sizes:"
for image in "$BASE" "$BROKER_IMAGE" $( ((operator)) && echo "$OPERATOR_IMAGE"); do
  echo "    $image: $(mb "$image")"
done
size=$(docker image inspect -f '{{.Size}}' "$BROKER_IMAGE")
if ((size < 60000000)); then ok "broker image under 60 MB ($(mb "$BROKER_IMAGE"))"; else fail "broker image is $(mb "$BROKER_IMAGE"), goal under 60 MB"; fi

# What the image promises: labels, non-root user, no shell, the binary runs.
meta="$(docker image inspect -f '{{.Config.User}} {{index .Config.Labels "org.opencontainers.image.licenses"}} {{index .Config.Labels "org.opencontainers.image.version"}} {{json .Config.ExposedPorts}} {{json .Config.Volumes}}' "$BROKER_IMAGE")"
if [[ "$meta" == "10001:10001 Apache-2.0 $VERSION "*9092*9093*9644*'"/data"'* ]]; then
  ok "broker image config: user, labels, ports, volume ($meta)"
else
  fail "broker image config: $meta"
fi
if docker run --rm --entrypoint /bin/sh "$BROKER_IMAGE" -c true >/dev/null 2>&1; then
  fail "broker image has a shell"
else
  ok "broker image has no shell"
fi
if help="$(docker run --rm --network none "$BROKER_IMAGE" --help 2>&1)" && grep -q -- --data-dir <<<"$help"; then
  ok "broker image runs: $(docker run --rm --network none "$BROKER_IMAGE" --version)"
else
  fail "broker image --help: $help"
fi
if ((operator)); then
  if v="$(docker run --rm --network none "$OPERATOR_IMAGE" --version 2>&1)" \
      && docker run --rm --network none "$OPERATOR_IMAGE" --help >/dev/null 2>&1; then
    ok "operator image runs: $v"
  else
    fail "operator image --version/--help: $v"
  fi
  # The chart's `helm test` pod runs fjord-check from the operator image.
  # Without arguments it prints its usage and exits 1.
  usage="$(docker run --rm --network none --entrypoint fjord-check "$OPERATOR_IMAGE" 2>&1)"
  if grep -q "usage: fjord-check" <<<"$usage"; then
    ok "operator image has fjord-check (helm test)"
  else
    fail "operator image: no fjord-check for helm test: $usage"
  fi
fi

# ---- 3. run the broker image -------------------------------------------------------------
# The 3-broker cluster's containers and volumes, by node id.
cctr() { echo "fjord-images-c$1"; }
cvol() { echo "fjord-images-c$1-data"; }
remove_test_objects() {
  docker rm -f "$CTR" "$(cctr 0)" "$(cctr 1)" "$(cctr 2)" >/dev/null 2>&1
  docker volume rm "$VOL" "$(cvol 0)" "$(cvol 1)" "$(cvol 2)" >/dev/null 2>&1
  docker network rm "$NET" >/dev/null 2>&1
}
remove_test_objects  # leftovers of an interrupted run
work="$(mktemp -d)"
trap 'remove_test_objects; rm -rf "$work"' EXIT
docker network create "$NET" >/dev/null && docker volume create "$VOL" >/dev/null \
  || { fail "docker network/volume create"; finish; }

# wait_ready SECONDS: the broker's /ready answers through the published port.
wait_ready() {
  local deadline=$((SECONDS + $1))
  until curl -fsS "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1; do
    ((SECONDS < deadline)) && [[ "$(docker inspect -f '{{.State.Running}}' "$CTR")" == true ]] || return 1
    sleep 0.2  # poll interval, not a synchronisation
  done
}
# consume FILE: every record of the topic, values only, one per line.
consume() {
  timeout 60 kcat -C -b "127.0.0.1:$KAFKA_PORT" -t "$TOPIC" -o beginning -e -q -f '%s\n' > "$1" 2> "$work/consume.err"
}
# produce FROM TO: records FROM..TO with acks=all; kcat exits non-zero unless every one
# was acknowledged.
produce() {
  seq "$1" "$2" | kcat -P -b "127.0.0.1:$KAFKA_PORT" -t "$TOPIC" -X acks=all -X linger.ms=5 2> "$work/produce.err"
}
logs_tail() { docker logs "$CTR" 2>&1 | tail -n 15 | sed 's/^/    /'; }

# run_broker: a new broker container on the volume. Each restart below is a new container,
# so what comes back can only have come from the volume, not the container's own layer.
run_broker() {
  docker rm -f "$CTR" >/dev/null 2>&1
  docker run -d --name "$CTR" --network "$NET" -v "$VOL:/data" \
    -p "127.0.0.1:$KAFKA_PORT:9092" -p "127.0.0.1:$HTTP_PORT:9644" \
    "$BROKER_IMAGE" --node-id 1 --advertised-listener "127.0.0.1:$KAFKA_PORT" \
    --internal-listen 0.0.0.0:9093 >/dev/null
}

if run_broker && wait_ready 60; then
  ok "broker container ready"
else
  fail "broker container did not become ready"; logs_tail; finish
fi
uid="$(docker top "$CTR" -o pid,uid | awk 'NR == 2 { print $2 }')"
if [[ "$uid" == 10001 ]]; then ok "broker runs as uid 10001"; else fail "broker runs as uid $uid"; fi

if produce 1 "$RECORDS"; then
  ok "produced $RECORDS records with acks=all"
else
  fail "produce: $(tail -n 3 "$work/produce.err")"; logs_tail; finish
fi
seq 1 "$RECORDS" > "$work/acked"
if consume "$work/read" && cmp -s "$work/acked" "$work/read"; then
  ok "consumed all $RECORDS records back, in order"
else
  fail "consume: read $(wc -l < "$work/read") of $RECORDS: $(tail -n 3 "$work/consume.err")"
fi

# SIGKILL right after the second batch is acknowledged: no controlled shutdown, so what
# survives is what the broker made durable before acknowledging.
if produce $((RECORDS + 1)) $((2 * RECORDS)); then
  ok "produced $RECORDS more records with acks=all"
else
  fail "second produce: $(tail -n 3 "$work/produce.err")"
fi
seq 1 $((2 * RECORDS)) > "$work/acked"
docker kill "$CTR" >/dev/null
if run_broker && wait_ready 60 && consume "$work/read" && cmp -s "$work/acked" "$work/read"; then
  ok "kill -9 right after acks=all, restart (new container, same volume): all $((2 * RECORDS)) acknowledged records there, in order"
else
  fail "after kill and restart: read $(wc -l < "$work/read") of $((2 * RECORDS)) acknowledged records"
  diff "$work/acked" "$work/read" | head -n 5 | sed 's/^/    /'; logs_tail
fi

# SIGTERM: the broker's controlled shutdown must finish inside the stop timeout, or docker
# would SIGKILL it (exit 137).
stop_start=$SECONDS
docker stop -t "$STOP_TIMEOUT" "$CTR" >/dev/null
stop_s=$((SECONDS - stop_start))
code="$(docker inspect -f '{{.State.ExitCode}}' "$CTR")"
if [[ "$code" == 0 ]] && ((stop_s < STOP_TIMEOUT)) && docker logs "$CTR" 2>&1 | grep -q "fjord broker stopped"; then
  ok "docker stop (SIGTERM): exit 0 in ${stop_s}s (timeout ${STOP_TIMEOUT}s), logged \"fjord broker stopped\""
else
  fail "docker stop: exit code $code after ${stop_s}s (timeout ${STOP_TIMEOUT}s)"; logs_tail
fi
if run_broker && wait_ready 60 && consume "$work/read" && cmp -s "$work/acked" "$work/read"; then
  ok "after clean stop, new container on the volume: all $((2 * RECORDS)) records there"
else
  fail "after clean stop and start: read $(wc -l < "$work/read") of $((2 * RECORDS))"; logs_tail
fi

# ---- 4. a 3-broker cluster ---------------------------------------------------------------
CTOPIC=images-cluster
cbootstrap="127.0.0.1:$CLUSTER_KAFKA_PORT,127.0.0.1:$((CLUSTER_KAFKA_PORT + 1)),127.0.0.1:$((CLUSTER_KAFKA_PORT + 2))"
voters="0@$(cctr 0):9093,1@$(cctr 1):9093,2@$(cctr 2):9093"

# run_cluster_broker N: a new container for broker N on its volume. The arguments are the
# StatefulSet's (operator/src/desired.rs, broker_args) with the kubelet's $(POD_INDEX),
# $(POD_IP) and $(POD_NAME) filled in, except where docker differs from a pod: listeners
# bind 0.0.0.0 (the container's address is only known once it runs), the advertised
# address is the published port (kcat runs on the host, which cannot resolve container
# names), and the data dir is on the image's /data volume, which the broker's user owns.
# The container is as locked down as the operator's broker pods (desired.rs,
# pod_security_context and container_security_context): uid 10001, a read-only root file
# system with a scratch /tmp, no capabilities, no privilege escalation.
run_cluster_broker() {
  local n="$1"
  docker rm -f "$(cctr "$n")" >/dev/null 2>&1
  docker run -d --name "$(cctr "$n")" --hostname "$(cctr "$n")" --network "$NET" \
    --user 10001:10001 --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    -v "$(cvol "$n"):/data" \
    -p "127.0.0.1:$((CLUSTER_KAFKA_PORT + n)):9092" -p "127.0.0.1:$((CLUSTER_HTTP_PORT + n)):9644" \
    -e FJORD_DEFAULT_REPLICATION_FACTOR=3 -e FJORD_MIN_INSYNC_REPLICAS=2 \
    "$BROKER_IMAGE" \
    "--node-id=$n" \
    "--data-dir=/data/data" \
    "--kafka-listen=0.0.0.0:9092" \
    "--advertised-listener=127.0.0.1:$((CLUSTER_KAFKA_PORT + n))" \
    "--http-listen=0.0.0.0:9644" \
    "--internal-listen=0.0.0.0:9093" \
    "--voters=$voters" >/dev/null
}
# wait_cluster_ready SECONDS N...: brokers N... answer /ready.
wait_cluster_ready() {
  local deadline=$((SECONDS + $1)) n; shift
  for n in "$@"; do
    until curl -fsS "http://127.0.0.1:$((CLUSTER_HTTP_PORT + n))/ready" >/dev/null 2>&1; do
      ((SECONDS < deadline)) && [[ "$(docker inspect -f '{{.State.Running}}' "$(cctr "$n")")" == true ]] || return 1
      sleep 0.2  # poll interval, not a synchronisation
    done
  done
}
# partition_state: "LEADER ISR" of partition 0 of the topic, e.g. "1 1,2,0".
partition_state() {
  timeout 20 kcat -L -b "$cbootstrap" -t "$CTOPIC" 2>/dev/null \
    | sed -n 's/.*partition 0, leader \([0-9-]*\), replicas: [0-9,]*, isrs: \([0-9,]*\).*/\1 \2/p' | head -n 1
}
# wait_in_sync SECONDS: partition 0 has a leader and all three replicas in its ISR.
wait_in_sync() {
  local deadline=$((SECONDS + $1)) state
  until state="$(partition_state)" && [[ "$state" =~ ^[0-9]+\ [0-9]+,[0-9]+,[0-9]+$ ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5  # poll interval, not a synchronisation
  done
}
cproduce() {
  seq "$1" "$2" | kcat -P -b "$cbootstrap" -t "$CTOPIC" -X acks=all -X linger.ms=5 \
    -X message.timeout.ms=120000 2> "$work/cproduce.err"
}
cconsume() {
  timeout 120 kcat -C -b "$cbootstrap" -t "$CTOPIC" -o beginning -e -q -f '%s\n' > "$1" 2> "$work/cconsume.err"
}
clogs_tail() {
  local n
  for n in 0 1 2; do
    echo "    --- $(cctr "$n")"; docker logs "$(cctr "$n")" 2>&1 | tail -n 10 | sed 's/^/    /'
  done
}

for n in 0 1 2; do docker volume create "$(cvol "$n")" >/dev/null; done
for n in 0 1 2; do run_cluster_broker "$n"; done
if wait_cluster_ready 120 0 1 2; then
  ok "3 broker containers ready (voters $voters)"
else
  fail "the 3 broker containers did not become ready"; clogs_tail; finish
fi
# The topic is created on first use with the brokers' default replication factor (3).
if cproduce 1 "$RECORDS" && wait_in_sync 60; then
  ok "produced $RECORDS records with acks=all, partition replicated on 3 brokers ($(partition_state))"
else
  fail "cluster produce: $(tail -n 3 "$work/cproduce.err"); partition: $(partition_state)"; clogs_tail; finish
fi
seq 1 "$RECORDS" > "$work/cacked"

# SIGKILL the partition leader's container; the other two elect a new leader and keep
# taking acks=all writes; a new container on the old volume catches up.
leader="$(partition_state | cut -d' ' -f1)"
if [[ "$leader" =~ ^[0-2]$ ]]; then
  docker kill "$(cctr "$leader")" >/dev/null
  if cproduce $((RECORDS + 1)) $((2 * RECORDS)); then
    ok "leader (broker $leader) killed: $RECORDS more records acknowledged by the other two ($(partition_state))"
  else
    fail "produce with broker $leader down: $(tail -n 3 "$work/cproduce.err")"; clogs_tail
  fi
  seq 1 $((2 * RECORDS)) > "$work/cacked"
  if run_cluster_broker "$leader" && wait_cluster_ready 120 "$leader" && wait_in_sync 120; then
    ok "broker $leader back on its volume and in sync ($(partition_state))"
  else
    fail "broker $leader did not come back in sync: $(partition_state)"; clogs_tail
  fi
else
  fail "no leader for partition 0 of $CTOPIC: '$leader'"
fi
if cconsume "$work/cread" && cmp -s "$work/cacked" "$work/cread"; then
  ok "all $(wc -l < "$work/cacked") acknowledged records read back from the cluster, in order"
else
  fail "cluster consume: read $(wc -l < "$work/cread") of $(wc -l < "$work/cacked"): $(tail -n 3 "$work/cconsume.err")"
  diff "$work/cacked" "$work/cread" | head -n 5 | sed 's/^/    /'; clogs_tail
fi

# docker stop (SIGTERM) each broker in turn, as a rolling restart or scale-in would: each
# hands its leaderships away and exits 0 within the stop timeout.
for n in 2 1 0; do
  stop_start=$SECONDS
  docker stop -t "$STOP_TIMEOUT" "$(cctr "$n")" >/dev/null
  stop_s=$((SECONDS - stop_start))
  code="$(docker inspect -f '{{.State.ExitCode}}' "$(cctr "$n")")"
  if [[ "$code" == 0 ]] && ((stop_s < STOP_TIMEOUT)) && docker logs "$(cctr "$n")" 2>&1 | grep -q "fjord broker stopped"; then
    ok "docker stop broker $n: exit 0 in ${stop_s}s (timeout ${STOP_TIMEOUT}s)"
  else
    fail "docker stop broker $n: exit code $code after ${stop_s}s (timeout ${STOP_TIMEOUT}s)"
    docker logs "$(cctr "$n")" 2>&1 | tail -n 10 | sed 's/^/    /'
  fi
done

finish
