# The real node's own checks (K8S_NODE=real); sourced by e2e/k8s.sh once node.sh's node
# is Ready, which then calls realnode_section.
#
# 1. A plain pod of the broker image (imported into containerd, never pulled) as the
#    image's non-root user, its data on an emptyDir owned through fsGroup: Running and
#    Ready from its readiness probe (kubelet's httpGet on the pod IP), the process's uid
#    on the host, /ready answering the host on the pod IP, a restart of the container
#    after its process is killed (restartCount 1).
#
# Uses k8s.sh's helpers: log, fail, wait_for, kubectl, $WORK, $BIN; node.sh's NODE_*,
# node_ctr.

RN_NS=realnode

rn_jp() { kubectl get "$1" -n "$RN_NS" -o jsonpath="$2"; }
rn_expect() { [[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"; }
rn_pod_ready() {
  [[ "$(rn_jp "pod/$1" '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
# rn_describe POD: what a failed wait needs, on stderr.
rn_describe() {
  kubectl describe pod "$1" -n "$RN_NS" | tail -n 25 >&2
  kubectl logs "$1" -n "$RN_NS" --tail 20 >&2 || true
}

# rn_wait_ready POD SECONDS: waits for the pod's Ready condition; describes it on timeout.
rn_wait_ready() {
  local t0 deadline=$(( $(date +%s) + $2 )); t0=$(now)
  until rn_pod_ready "$1" 2>/dev/null; do
    (( $(date +%s) < deadline )) || { rn_describe "$1"; fail "pod $1 not Ready after $2 s"; }
    sleep 0.5
  done
  log "pod $1 Running and Ready $(since "$t0")s after apply"
}

rn_plain_pod() {
  kubectl apply -n "$RN_NS" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: broker, labels: {app: realnode-broker}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001}
  containers:
  - name: fjord
    image: $NODE_BROKER_IMAGE
    imagePullPolicy: IfNotPresent
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    args: ["--node-id=1", "--data-dir=/data/data", "--kafka-listen=\$(POD_IP):9092",
           "--http-listen=\$(POD_IP):9644", "--internal-listen=\$(POD_IP):9093"]
    ports: [{containerPort: 9092, name: kafka}, {containerPort: 9644, name: http}]
    readinessProbe: {httpGet: {path: /ready, port: 9644}, periodSeconds: 2}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
EOF
  rn_wait_ready broker 120
  local ip; ip=$(rn_jp pod/broker '{.status.podIP}')
  [[ $ip == 10.244.0.* ]] || fail "pod IP '$ip' is not on the node's bridge"
  curl -fsS "http://$ip:9644/ready" >/dev/null || fail "/ready on $ip:9644 from the host"
  local cid pid
  cid=$(rn_jp pod/broker '{.status.containerStatuses[0].containerID}'); cid=${cid#containerd://}
  pid=$(node_ctr tasks ls | awk -v c="$cid" '$1 == c {print $2}')
  [[ -n $pid ]] || fail "no containerd task for container $cid"
  rn_expect "broker process uid on the host" "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" 10001
  log "plain broker pod: IP $ip, /ready answers the host, process $pid runs as uid 10001"
  # The container's process killed: kubelet restarts it in the same pod.
  kill -KILL "$pid"
  restarted() {
    [[ "$(rn_jp pod/broker '{.status.containerStatuses[0].restartCount}')" == 1 ]] && rn_pod_ready broker
  }
  wait_for "broker container restarted by kubelet and Ready again" 120 restarted
}

realnode_section() {
  kubectl create namespace "$RN_NS" >/dev/null
  wait_for "ServiceAccount default in $RN_NS" 60 kubectl get serviceaccount default -n "$RN_NS"
  rn_plain_pod
}
