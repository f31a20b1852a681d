#!/usr/bin/env bash
# A 3-broker cluster on 127.0.0.1 whose brokers a test can kill with SIGKILL and start
# again on their data: Fjord (FJORD_BIN) by default, Apache Kafka with EOS_BROKER=kafka.
#
#   e2e/eos/cluster.sh start   DIR PORT   # prints "bootstrap: HOST:PORT,..." when ready
#   e2e/eos/cluster.sh kill    DIR NODE   # SIGKILL, and waits until the process is gone
#   e2e/eos/cluster.sh restart DIR NODE   # on its data; waits until it is ready again
#   e2e/eos/cluster.sh stop    DIR        # SIGTERM to every broker (SIGKILL after 30s)
#
# Fjord: broker i (node id i) takes the Kafka port PORT+i-1, its internal listener
# PORT+10+i-1 and HTTP PORT+20+i-1, with the flags `fjord dev` plans (all three are
# voters, replication factor 3, min.insync.replicas 2) and the short broker session of
# e2e/tests/cluster_faults.rs, so a killed broker is fenced in about two seconds. Each
# is its own process (not a `fjord dev` child), so it can be killed and started again
# alone. Kafka: e2e/apache-kafka.sh start-cluster DIR PORT 3 (controllers on PORT+3..5).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EOS_BROKER="${EOS_BROKER:-fjord}"
NODES=3
READY_TIMEOUT_S="${READY_TIMEOUT_S:-120}"
STOP_TIMEOUT_S=30

die() { echo "eos/cluster.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 start DIR PORT | kill DIR NODE | restart DIR NODE | stop DIR"; }

[[ $# -ge 2 ]] || usage
cmd="$1"
dir="$2"
arg="${3:-}"
case "$EOS_BROKER" in fjord | kafka) ;; *) die "EOS_BROKER must be fjord or kafka, not '$EOS_BROKER'" ;; esac
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

node_dir() { echo "$dir/node-$1"; }

valid_node() {
  [[ "$1" =~ ^[1-9][0-9]*$ ]] && (($1 <= NODES)) || die "NODE must be 1..$NODES, got '$1'"
}

# The pid of node $1 if it runs: the pid file's process, and its command line must name
# the node's directory (a stale pid may have been reused by something else).
running_pid() {
  local d pidfile pid
  d="$(node_dir "$1")"
  if [[ $EOS_BROKER == kafka ]]; then pidfile="$d/kafka.pid"; else pidfile="$d/fjord.pid"; fi
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$d/" || return 1
  echo "$pid"
}

# --- Fjord -----------------------------------------------------------------------------

fjord_bin() {
  [[ -n "${FJORD_BIN:-}" && -x "${FJORD_BIN:-}" ]] || die "FJORD_BIN must name the fjord binary"
  echo "$FJORD_BIN"
}

fjord_launch() {
  local i="$1" d
  d="$(node_dir "$i")"
  local -a argv
  mapfile -t argv < "$d/argv"
  # Appended, not truncated: the lines before a kill stay for the post-mortem.
  echo "=== started $(date -u +%FT%TZ)" >> "$d/broker.log"
  # FJORD_BIN is this script's, not a broker setting (the broker warns of unknown FJORD_*).
  env -u FJORD_BIN setsid "$(fjord_bin)" "${argv[@]}" >> "$d/broker.log" 2>&1 < /dev/null &
  echo "$!" > "$d/fjord.pid"
}

fjord_wait_ready() {
  local i="$1" deadline="$2" port="$3" pid
  pid="$(cat "$(node_dir "$i")/fjord.pid")"
  until curl -sf "http://127.0.0.1:$((port + 20 + i - 1))/ready" > /dev/null; do
    kill -0 "$pid" 2> /dev/null || { tail -40 "$(node_dir "$i")/broker.log" >&2; die "broker $i exited during start-up"; }
    ((SECONDS < deadline)) || { tail -40 "$(node_dir "$i")/broker.log" >&2; die "broker $i not ready within ${READY_TIMEOUT_S}s"; }
    sleep 0.2 # poll interval of the readiness check, not a synchronisation
  done
}

fjord_start() {
  local port="$1" i d voters=""
  for ((i = 1; i <= NODES; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$((port + 10 + i - 1))"
  done
  for ((i = 1; i <= NODES; i++)); do
    d="$(node_dir "$i")"
    mkdir -p "$d"
    ! running_pid "$i" > /dev/null || die "broker $i already runs in $d"
    printf '%s\n' "--node-id=$i" "--data-dir=$d/data" \
      "--kafka-listen=127.0.0.1:$((port + i - 1))" \
      "--internal-listen=127.0.0.1:$((port + 10 + i - 1))" \
      "--http-listen=127.0.0.1:$((port + 20 + i - 1))" \
      "--voters=$voters" --default-replication-factor=3 --min-insync-replicas=2 \
      --broker-heartbeat-interval-ms=200 --broker-session-timeout-ms=2000 \
      --replica-lag-time-max-ms=2000 > "$d/argv"
  done
  echo "$port" > "$dir/port"
  # All are launched before any is waited for: no voter is ready before a majority runs.
  for ((i = 1; i <= NODES; i++)); do fjord_launch "$i"; done
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  for ((i = 1; i <= NODES; i++)); do fjord_wait_ready "$i" "$deadline" "$port"; done
}

# --- both ------------------------------------------------------------------------------

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

start() {
  [[ "$arg" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$arg'"
  local p
  for ((p = arg; p < arg + 26; p++)); do
    ! port_open "$p" || die "127.0.0.1:$p is already in use"
  done
  # A start that fails half way stops what it started: nothing outlives a failed test.
  trap 'stop >&2' EXIT
  if [[ $EOS_BROKER == kafka ]]; then
    "$HERE/../apache-kafka.sh" start-cluster "$dir" "$arg" "$NODES" >&2
  else
    fjord_start "$arg"
  fi
  local i bootstrap=""
  for ((i = 1; i <= NODES; i++)); do bootstrap+="${bootstrap:+,}127.0.0.1:$((arg + i - 1))"; done
  trap - EXIT
  echo "bootstrap: $bootstrap"
}

kill_node() {
  valid_node "$arg"
  local pid deadline=$((SECONDS + STOP_TIMEOUT_S))
  pid="$(running_pid "$arg")" || die "broker $arg is not running"
  kill -KILL "$pid"
  while kill -0 "$pid" 2> /dev/null; do
    ((SECONDS < deadline)) || die "broker $arg (pid $pid) still there ${STOP_TIMEOUT_S}s after SIGKILL"
    sleep 0.1 # poll interval while the kernel reaps the process
  done
  echo "killed broker $arg (pid $pid)"
}

restart_node() {
  valid_node "$arg"
  ! running_pid "$arg" > /dev/null || die "broker $arg is already running"
  if [[ $EOS_BROKER == kafka ]]; then
    "$HERE/../apache-kafka.sh" start-node "$dir" "$arg" >&2
  else
    fjord_launch "$arg"
    fjord_wait_ready "$arg" $((SECONDS + READY_TIMEOUT_S)) "$(cat "$dir/port")"
  fi
  echo "restarted broker $arg"
}

stop() {
  if [[ $EOS_BROKER == kafka ]]; then
    "$HERE/../apache-kafka.sh" stop-cluster "$dir"
    return
  fi
  local i pid pids=()
  for ((i = 1; i <= NODES; i++)); do
    if pid="$(running_pid "$i")"; then kill -TERM "$pid"; pids+=("$pid"); fi
  done
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2> /dev/null; do
      if ((SECONDS >= deadline)); then
        echo "broker pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; SIGKILL" >&2
        kill -KILL "$pid" 2> /dev/null || true
        break
      fi
      sleep 0.2 # poll interval while the broker shuts down
    done
  done
  echo "stopped ${#pids[@]} brokers"
}

case "$cmd" in
  start) start ;;
  kill) kill_node ;;
  restart) restart_node ;;
  stop) stop ;;
  *) usage ;;
esac
