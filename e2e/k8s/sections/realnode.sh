# The real node's own checks and client functions (K8S_NODE=real); sourced by
# e2e/k8s.sh once node.sh's node is Ready. k8s.sh calls realnode_basics at once, then
# realnode_clients (its clients then run in the tools pod), installs the chart (the
# operator as its Deployment, in a pod), runs the README path (the example FjordCluster,
# Topic and ConsumerGroup), calls realnode_after_readme, and goes on with the rest of
# the suite on this node.
#
# realnode_basics:
# 1. The tools pod, in which every client of the suite runs (realnode_clients).
# 2. A plain pod of the broker image (imported into containerd, never pulled) as the
#    image's non-root user, its data on an emptyDir owned through fsGroup: Running and
#    Ready from its readiness probe (kubelet's httpGet on the pod IP), the process's uid
#    on the host, /ready answering the host on the pod IP, a restart of the container
#    after its process is killed (restartCount 1).
# 3. Cluster DNS from a pod: kubelet writes the node's IP (CoreDNS) and the cluster's
#    search path into a busybox pod's resolv.conf, and the pod resolves the `kubernetes`
#    Service. (busybox's nslookup does not walk the search path: the brokers' names are
#    resolved through it, by glibc, in the broker, operator and client pods.)
# realnode_after_readme:
# 4. Each broker pod's claim Bound to a volume local-path-provisioner made, the broker's
#    files on it, owned by uid 10001, the broker process running as uid 10001.
# 5. Under an acks=all idempotent producer and a consumer group in a pod
#    (scaling-workload, through the bootstrap Service's DNS name): a broker pod deleted
#    (made again by the StatefulSet, back on its claim), then a broker's process killed
#    inside its container (restarted by kubelet); each time the FjordCluster is Ready
#    and not Degraded again, the claims are the same volumes, and at the end the
#    workload's summary says nothing acknowledged was lost, duplicated or missed by the
#    group. (Its balance figure is printed, not judged: nothing here rebalances.)
#
# Uses k8s.sh's helpers and values: log, fail, wait_for, kubectl, now, since, topic_ready,
# check, broker_balance, CLIENT_PID, PIDS, $WORK, $BIN, $BOOT, $NS; node.sh's NODE_*,
# node_task_pid.

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
  [[ $ip == 10.244.[01].* ]] || fail "pod IP '$ip' is not on a node's bridge"
  curl -fsS "http://$ip:9644/ready" >/dev/null || fail "/ready on $ip:9644 from the host"
  local cid pid
  cid=$(rn_jp pod/broker '{.status.containerStatuses[0].containerID}'); cid=${cid#containerd://}
  pid=$(node_task_pid "$cid") || fail "no containerd task for container $cid"
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

# rn_pod_stdout NS POD: what the pod's first container wrote on stdout, read from the
# node's CRI log (`kubectl logs` mixes in stderr).
rn_pod_stdout() {
  local uid; uid=$(kubectl get pod "$2" -n "$1" -o jsonpath='{.metadata.uid}')
  cat "$WORK"/node/n*/pod-logs/"$1_$2_$uid"/*/*.log 2>/dev/null | awk -v want="${3:-stdout}" '
    { st = $2; tag = $3; sub(/^[^ ]+ [^ ]+ [^ ]+ ?/, "") }
    st == want { buf = buf $0; if (tag == "F") { print buf; buf = "" } }'
}

# rn_network_state: what a failed run needs about the network (k8s.sh keeps it), on
# stderr: pods and their IPs, the Services' endpoints, kube-proxy's NAT rules for them,
# the bridges' ports and the host's neighbour table.
rn_network_state() {
  {
    kubectl get pods -A -o wide
    kubectl get endpointslices -A -o wide
    iptables-save -t nat | grep -E "demo/|KUBE-SERVICES"
    iptables -w -L FORWARD -v -n
    iptables -w -L KUBE-FORWARD -v -n
    bridge link show 2>/dev/null
    ip neigh show
  } >&2
}

# rn_tools_pod: the pod every client of the suite runs in (realnode_clients), of the
# clients image, as root, with the suite's work directory mounted at its own path: the
# clients' files (client properties, CA files, stop files) are where the suite wrote them.
rn_tools_pod() {
  kubectl apply -n "$RN_NS" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: tools}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: tools
    image: $NODE_CLIENTS_IMAGE
    imagePullPolicy: IfNotPresent
    command: [sleep, "2147483647"]
    volumeMounts: [{name: work, mountPath: "$WORK"}]
  volumes: [{name: work, hostPath: {path: "$WORK", type: Directory}}]
EOF
  rn_wait_ready tools 120
}

realnode_basics() {
  kubectl create namespace "$RN_NS" >/dev/null
  wait_for "ServiceAccount default in $RN_NS" 60 kubectl get serviceaccount default -n "$RN_NS"
  rn_tools_pod
  rn_plain_pod
  rn_dns
}

# realnode_clients: k8s.sh's client functions for the real node. Clients run in the
# tools pod through `kubectl exec` (the API server and kubelet's exec stream, stdin
# included) and reach the brokers through cluster DNS and the Services; one started in
# the background writes its pid to a file in the pod, which client_term signals.
realnode_clients() {
  client_argv() { CLIENT_ARGV=("$BIN/kubectl" exec -i -n "$RN_NS" tools -- "$@"); }
  client_start() {
    local name=$1 out=$2 err=$3; shift 3
    "$BIN/kubectl" exec -n "$RN_NS" tools -- sh -c "echo \$\$ > /tmp/client-$name.pid && exec \"\$@\"" sh "$@" \
      > "$out" 2> "$err" &
    CLIENT_PID[$name]=$!
    PIDS+=($!)
  }
  client_term() {
    kubectl exec -n "$RN_NS" tools -- sh -c "kill -TERM \$(cat /tmp/client-$1.pid)"
    wait "${CLIENT_PID[$1]}"
  }
  pod_address() { kubectl get pod "$1" -n "$NS" -o jsonpath='{.status.podIP}'; }
  pod_log() { kubectl logs "$2" -n "$1"; }
}

# The operator, the chart's Deployment (k8s.sh's operator_* functions on the real node).
rn_operator_pod() {
  kubectl get pods -n fjord-system -l app.kubernetes.io/name=fjord-operator,pod-template-hash \
    --field-selector status.phase=Running -o jsonpath='{.items[0].metadata.name}'
}
# operator_crash: the operator's process killed (SIGKILL) inside its container; kubelet
# starts it again in the same pod, which takes its own Lease back at once.
operator_crash() {
  local pod restarts cid pid
  pod=$(rn_operator_pod)
  restarts=$(kubectl get pod "$pod" -n fjord-system -o jsonpath='{.status.containerStatuses[0].restartCount}')
  cid=$(kubectl get pod "$pod" -n fjord-system -o jsonpath='{.status.containerStatuses[0].containerID}')
  pid=$(node_task_pid "$cid") || fail "no process for the operator's container in $pod"
  kill -KILL "$pid"
  operator_back() {
    (( $(kubectl get pod "$pod" -n fjord-system -o jsonpath='{.status.containerStatuses[0].restartCount}') > restarts )) &&
      [[ "$(kubectl get pod "$pod" -n fjord-system -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
  }
  wait_for "operator container restarted by kubelet" 120 operator_back
  log "fjord-operator killed in pod $pod (pid $pid) and restarted by kubelet"
}
# operator_log: what the containers of the operator's pods wrote, oldest first, from the
# node's CRI logs (kubelet keeps the running container's and the one before).
operator_log() {
  local f
  for f in $(ls -tr "$WORK"/node/n*/pod-logs/fjord-system_fjord-fjord-operator-*/operator/*.log 2>/dev/null); do
    sed -E 's/^[^ ]+ [^ ]+ [^ ]+ ?//' "$f"
  done
}
operator_metrics() {
  curl -sf "http://$(kubectl get pod "$(rn_operator_pod)" -n fjord-system -o jsonpath='{.status.podIP}'):8080/metrics"
}

# rn_claims: each broker pod's claim Bound to a volume of local-path-provisioner, the
# broker's files on it, its process as uid 10001. Prints "POD=PV ..." for later checks.
rn_claims() {
  local i claim pv path pid cid seen=""
  for i in 0 1 2; do
    claim=$(kubectl get pod "demo-$i" -n demo -o jsonpath='{.spec.volumes[?(@.persistentVolumeClaim)].persistentVolumeClaim.claimName}')
    rn_expect "claim $claim" "$(kubectl get pvc "$claim" -n demo -o jsonpath='{.status.phase}')" Bound
    pv=$(kubectl get pvc "$claim" -n demo -o jsonpath='{.spec.volumeName}')
    path=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}{.spec.local.path}')
    [[ $path == "$WORK/node/local-path/"* ]] || fail "PV $pv of $claim is not local-path-provisioner's: '$path'"
    [[ -n "$(find "$path" -type f -user 10001 | head -1)" ]] \
      || fail "no file of the broker (uid 10001) on $pv ($path): $(ls -laR "$path" | head)"
    cid=$(kubectl get pod "demo-$i" -n demo -o jsonpath='{.status.containerStatuses[0].containerID}'); cid=${cid#containerd://}
    pid=$(node_task_pid "$cid")
    rn_expect "demo-$i process uid" "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" 10001
    seen+="demo-$i=$pv "
  done
  echo "$seen"
}

rn_healthy() {
  [[ "$(kubectl get fjordcluster demo -n demo -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Degraded")].status}/{.status.readyReplicas}')" == True/False/3 ]]
}

# rn_broker_pid N: the host pid of broker N's container process.
rn_broker_pid() {
  local cid; cid=$(kubectl get pod "demo-$1" -n demo -o jsonpath='{.status.containerStatuses[0].containerID}')
  node_task_pid "$cid"
}

# rn_brokers_on NODE: the broker pods of demo that NODE runs.
rn_brokers_on() {
  kubectl get pods -n demo -l app.kubernetes.io/instance=demo,app.kubernetes.io/component=broker \
    -o jsonpath="{range .items[?(@.spec.nodeName==\"$1\")]}{.metadata.name} {end}"
}

# rn_drain: the node running the most brokers is cordoned and its brokers drained
# (kubectl drain: evictions, which the brokers' PodDisruptionBudget lets through one at
# a time); each comes back on the other node, on its own volume, and rejoins. The node
# is uncordoned after.
rn_drain() {
  local node="" most=-1 n on t0
  for n in "${NODE_NAMES[@]}"; do
    on=$(rn_brokers_on "$n" | wc -w)
    (( on > most )) && { most=$on; node=$n; }
  done
  log "draining $node, which runs $(rn_brokers_on "$node")"
  t0=$(now)
  kubectl drain "$node" --pod-selector app.kubernetes.io/instance=demo,app.kubernetes.io/component=broker \
    --delete-emptydir-data --timeout 300s > "$WORK/logs/drain.log" 2>&1 ||
    { cat "$WORK/logs/drain.log" >&2; fail "kubectl drain $node"; }
  log "kubectl drain $node done after $(since "$t0")s: $(grep -c evicted "$WORK/logs/drain.log") broker pods evicted"
  [[ "$(kubectl get node "$node" -o jsonpath='{.spec.unschedulable}')" == true ]] || fail "$node not cordoned"
  [[ -z "$(rn_brokers_on "$node")" ]] || fail "brokers still on $node: $(rn_brokers_on "$node")"
  all_ready() { [[ "$(kubectl get statefulset demo -n demo -o jsonpath='{.status.readyReplicas}')" == 3 ]]; }
  wait_for "the drained brokers Ready on the other node" 180 all_ready
  wait_for "FjordCluster demo Ready, not Degraded, after the drain" 180 rn_healthy
  kubectl uncordon "$node" >/dev/null
}

# rn_longest_gap BEGAN: the workload's longest gap between acknowledgements (from the
# line it prints on stderr), placed after the last failure that began before it ended
# (BEGAN: the name of an associative array, failure -> when it began, ms since the
# Unix epoch).
rn_longest_gap() {
  local -n at=$1
  local gap ms ended what after=""
  gap=$(rn_pod_stdout "$RN_NS" workload stderr | grep -o 'longest gap between acknowledgements [0-9]* ms, ended at [0-9]*' | tail -n 1)
  [[ -n $gap ]] || { log "the workload printed no longest gap"; return 0; }
  ms=$(awk '{print $5}' <<<"$gap"); ended=$(awk '{print $NF}' <<<"$gap")
  for what in "${!at[@]}"; do
    (( ended >= at[$what] )) || continue
    [[ -z $after ]] || (( at[$what] > at[$after] )) && after=$what
  done
  [[ -n $after ]] || { log "figure: longest gap between acknowledgements ${ms} ms, before any failure"; return 0; }
  log "figure: longest gap between acknowledgements ${ms} ms, from $(( ended - ms - at[$after] )) ms to $(( ended - at[$after] )) ms after the ${after} began"
}

# After the README path: the volumes, then failures under an acks=all producer and a
# consumer group running in a pod (scaling-workload).
realnode_after_readme() {
  local before after
  before=$(rn_claims)
  log "broker claims Bound on local-path volumes, data written by uid 10001: $before"

  kubectl apply -n demo -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"realnode"},"spec":{"clusterRef":"demo","partitions":3,"replicationFactor":3,"config":{"min.insync.replicas":"2"}}}'
  wait_for "Topic realnode Ready" 60 topic_ready realnode
  kubectl apply -n "$RN_NS" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: workload}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  containers:
  - name: workload
    image: $NODE_CLIENTS_IMAGE
    imagePullPolicy: IfNotPresent
    command: [scaling-workload, --bootstrap, "$BOOT", --topic, realnode, --partitions, "3",
              --group, realnode, --consumers, "2", --rate, "200", --stop-file, /run/stop/stop]
    volumeMounts: [{name: stop, mountPath: /run/stop}]
  volumes: [{name: stop, emptyDir: {}}]
EOF
  workload_up() {
    [[ "$(rn_jp pod/workload '{.status.phase}')" != Failed ]] || { rn_describe workload; fail "the workload pod failed"; } 2>&"$RN_ERR"
    rn_pod_stdout "$RN_NS" workload | grep -qx "scaling-workload: ready"
  }
  exec {RN_ERR}>&2
  wait_for "workload pod producing (acks=all), its group assigned" 120 workload_up

  # A broker pod deleted: kubelet stops it (SIGTERM, controlled shutdown), the
  # StatefulSet makes it again, and it comes back on its own claim and rejoins.
  # When each failure began (ms since the Unix epoch), to tell which one the workload's
  # longest wait for an acknowledgement followed.
  local -A began
  local old_uid; old_uid=$(kubectl get pod demo-1 -n demo -o jsonpath='{.metadata.uid}')
  began[pod deletion]=$(date +%s%3N)
  kubectl delete pod demo-1 -n demo --wait=false >/dev/null
  replaced() {
    local uid; uid=$(kubectl get pod demo-1 -n demo -o jsonpath='{.metadata.uid}')
    [[ -n $uid && $uid != "$old_uid" ]] && RN_NS=demo rn_pod_ready demo-1
  }
  wait_for "broker pod demo-1 deleted, made again and Ready" 180 replaced
  wait_for "FjordCluster demo Ready, not Degraded, after demo-1's return" 180 rn_healthy

  # The broker's process killed inside its container: kubelet restarts the container.
  local pid restarts; pid=$(rn_broker_pid 2)
  restarts=$(kubectl get pod demo-2 -n demo -o jsonpath='{.status.containerStatuses[0].restartCount}')
  [[ -n $pid ]] || fail "no process for demo-2"
  began[kill in the container]=$(date +%s%3N)
  kill -KILL "$pid"
  restarted() {
    [[ "$(kubectl get pod demo-2 -n demo -o jsonpath='{.status.containerStatuses[0].restartCount}')" -gt $restarts ]] &&
      RN_NS=demo rn_pod_ready demo-2
  }
  wait_for "demo-2's broker killed (SIGKILL) in its container, restarted by kubelet and Ready" 180 restarted
  wait_for "FjordCluster demo Ready, not Degraded, after demo-2's restart" 180 rn_healthy

  began[drain]=$(date +%s%3N)
  rn_drain

  after=$(rn_claims)
  rn_expect "claims and volumes after the failures" "$after" "$before"

  # The workload stops; the stop file carries the balance the suite measures, as the
  # full suite's scaling step does.
  local balance line
  balance=$(broker_balance)
  kubectl exec -n "$RN_NS" workload -- sh -c \
    "printf 'moved_partitions=0\nbalance_max_over_min=$balance\n' > /run/stop/stop.tmp && mv /run/stop/stop.tmp /run/stop/stop"
  workload_done() { [[ "$(rn_jp pod/workload '{.status.phase}')" == Succeeded || "$(rn_jp pod/workload '{.status.phase}')" == Failed ]]; }
  wait_for "workload pod finished" 200 workload_done
  line=$(rn_pod_stdout "$RN_NS" workload | tail -n 1)
  [[ $line == "scaling: "* ]] || { rn_describe workload; fail "the workload pod printed no summary"; }
  log "real node, broker pod deleted and broker killed under traffic: ${line#scaling: }"
  rn_longest_gap began
  [[ " $line " == *" lost=0 "* && " $line " == *" duplicates=0 "* && " $line " == *" consumer_missed=0 "* ]] \
    || { rn_describe workload; fail "real node workload: lost, duplicated or missed records"; }
  [[ " $line " == *" acked=0 "* ]] && fail "real node workload: nothing acknowledged"
  return 0
}
