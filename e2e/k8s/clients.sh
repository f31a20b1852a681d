# The Kubernetes suite's client functions, sourced by e2e/k8s.sh (uses its $HERE,
# $TARGET, $NS, PIDS).
# The suite's clients: Kafka's own command-line tools (`kafka-tool NAME`: kafka-configs,
# kafka-topics, the console clients, ...), fjord-check, scaling-workload and openssl.
# Beside fake-kubelet they run on the host, which /etc/hosts lets resolve the brokers'
# names; on the real node they run in a pod (realnode.sh's client_* functions).
# client CMD ARGS...: runs one, stdin and stdout passed through.
# client_start NAME OUT ERR CMD ARGS...: starts one in the background, stdout to OUT,
#   stderr to ERR; CLIENT_PID[NAME] is a local process that ends when the client does,
#   with its status.
# client_term NAME: SIGTERM to the client itself, then waits for it.
declare -A CLIENT_PID
client_argv() {
  case "$1" in
    kafka-tool) CLIENT_ARGV=("$HERE/apache-kafka.sh" tool "${@:2}") ;;
    fjord-check|scaling-workload) CLIENT_ARGV=("$TARGET/debug/$1" "${@:2}") ;;
    *) CLIENT_ARGV=("$@") ;;
  esac
}
client() { client_argv "$@"; "${CLIENT_ARGV[@]}"; }
client_start() {
  local name=$1 out=$2 err=$3; shift 3
  client_argv "$@"
  "${CLIENT_ARGV[@]}" > "$out" 2> "$err" &
  CLIENT_PID[$name]=$!
  PIDS+=($!)
}
client_term() { kill -TERM "${CLIENT_PID[$1]}" 2>/dev/null; wait "${CLIENT_PID[$1]}"; }
# pod_address POD: where the host reaches a broker pod of $NS; pod_log NS POD: its log.
pod_address() { echo "$1.demo-brokers.$NS.svc"; }
pod_log() { cat "$WORK/pods/${1}_$2.log"; }
