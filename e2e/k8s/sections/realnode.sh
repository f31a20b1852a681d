# The real node's own checks (K8S_NODE=real); sourced by e2e/k8s.sh once node.sh's node
# is Ready, which then calls realnode_section.
#
# 1. A plain pod of the broker image (imported into containerd, never pulled) as the
#    image's non-root user, its data on an emptyDir owned through fsGroup: Running and
#    Ready from its readiness probe (kubelet's httpGet on the pod IP), the process's uid
#    on the host, /ready answering the host on the pod IP, a restart of the container
#    after its process is killed (restartCount 1).
# 2. Cluster DNS from a pod: kubelet writes the node's IP (CoreDNS) and the cluster's
#    search path into a busybox pod's resolv.conf, and the pod resolves the `kubernetes`
#    Service. (busybox's nslookup does not walk the search path: the broker pods' names
#    below are resolved through it, by glibc.)
# 3. The chart installed as users install it: the operator runs as the chart's
#    Deployment, in a pod from the imported image, and reaches the API server through
#    the `kubernetes` Service; it holds its Lease.
# 4. The example FjordCluster (3 brokers): each broker pod Running and Ready as uid
#    10001, each claim Bound to a volume local-path-provisioner made, the broker's data
#    on it; the cluster Ready (the operator in its pod reaches the brokers by their DNS
#    names).
#
# Uses k8s.sh's helpers: log, fail, wait_for, kubectl, $WORK, $BIN; node.sh's NODE_*,
# node_ctr.

RN_NS=realnode

rn_jp() { kubectl get "$1" -n "$RN_NS" -o jsonpath="$2"; }
helm() { "$BIN/helm" "$@"; }
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

# rn_pod_succeeded POD: the pod ran to completion with exit 0.
rn_pod_succeeded() { [[ "$(rn_jp "pod/$1" '{.status.phase}')" == Succeeded ]]; }

rn_dns() {
  kubectl apply -n "$RN_NS" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: dns}
spec:
  restartPolicy: Never
  containers:
  - {name: nslookup, image: $NODE_BUSYBOX_IMAGE, imagePullPolicy: IfNotPresent,
     command: [sh, -c, "cat /etc/resolv.conf && nslookup kubernetes.default.svc.cluster.local"]}
EOF
  local deadline=$(( $(date +%s) + 60 ))
  until rn_pod_succeeded dns; do
    if [[ "$(rn_jp pod/dns '{.status.phase}')" == Failed ]] || (( $(date +%s) >= deadline )); then
      rn_describe dns; fail "nslookup kubernetes.default in a pod"
    fi
    sleep 0.5
  done
  local out; out=$(kubectl logs dns -n "$RN_NS")
  grep -qx "nameserver $NODE_IP" <<<"$out" && grep -qx "search $RN_NS.svc.cluster.local svc.cluster.local cluster.local" <<<"$out" \
    && grep -q "Address: 10.0.0.1" <<<"$out" \
    || { echo "$out" >&2; fail "cluster DNS in a pod: resolv.conf or the kubernetes Service's name"; }
  log "cluster DNS: a pod's resolv.conf names $NODE_IP and the cluster's search path; kubernetes.default.svc.cluster.local is 10.0.0.1"
}

rn_operator() {
  local chart="$ROOT/charts/fjord-operator" t0
  kubectl create namespace fjord-system >/dev/null
  t0=$(now)
  helm install fjord "$chart" --namespace fjord-system --set logFormat=text --wait --timeout 3m >/dev/null \
    || { kubectl get pods -n fjord-system -o wide >&2; fail "helm install with the operator's Deployment"; }
  log "helm install, operator Deployment available, after $(since "$t0")s"
  operator_leads() {
    kubectl get lease fjord-operator -n fjord-system -o jsonpath='{.spec.holderIdentity}' | grep -q fjord-fjord-operator
  }
  wait_for "operator pod holds the Lease" 90 operator_leads
}

rn_cluster_ready() {
  [[ "$(kubectl get fjordcluster demo -n demo -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

rn_fjordcluster() {
  kubectl create namespace demo >/dev/null
  local t0 i; t0=$(now)
  kubectl apply -n demo -f "$HERE/k8s/examples/cluster.yaml" >/dev/null
  for i in 0 1 2; do
    RN_NS=demo rn_wait_ready "demo-$i" 300
  done
  wait_for "FjordCluster demo Ready on the real node" 300 rn_cluster_ready
  log "FjordCluster demo Ready $(since "$t0")s after apply"
  local claim pv path pid cid
  for i in 0 1 2; do
    claim=$(kubectl get pod "demo-$i" -n demo -o jsonpath='{.spec.volumes[?(@.persistentVolumeClaim)].persistentVolumeClaim.claimName}')
    rn_expect "claim $claim" "$(kubectl get pvc "$claim" -n demo -o jsonpath='{.status.phase}')" Bound
    pv=$(kubectl get pvc "$claim" -n demo -o jsonpath='{.spec.volumeName}')
    path=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}{.spec.local.path}')
    [[ $path == "$WORK/node/local-path/"* ]] || fail "PV $pv of $claim is not local-path-provisioner's: '$path'"
    [[ -n "$(find "$path" -type f -user 10001 | head -1)" ]] \
      || fail "no file of the broker (uid 10001) on $pv ($path): $(ls -laR "$path" | head)"
    cid=$(kubectl get pod "demo-$i" -n demo -o jsonpath='{.status.containerStatuses[0].containerID}'); cid=${cid#containerd://}
    pid=$(node_ctr tasks ls | awk -v c="$cid" '$1 == c {print $2}')
    rn_expect "demo-$i process uid" "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" 10001
    log "demo-$i: claim $claim Bound to $pv, broker data on it ($path), process $pid as uid 10001"
  done
}

realnode_section() {
  kubectl create namespace "$RN_NS" >/dev/null
  wait_for "ServiceAccount default in $RN_NS" 60 kubectl get serviceaccount default -n "$RN_NS"
  rn_plain_pod
  rn_dns
  rn_operator
  rn_fjordcluster
}
