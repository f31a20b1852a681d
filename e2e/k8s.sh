#!/usr/bin/env bash
# Kubernetes suite: the operator and chart against a real control plane and real nodes.
#
#   e2e/k8s.sh                  (K8S_NODE=real, the default: what the test command runs)
#   K8S_NODE=fake e2e/k8s.sh    (the fast development tier: fake-kubelet)
#
# 1. Builds (once, cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#    kubectl, helm, and for the real nodes kubelet, kube-proxy, CoreDNS and
#    local-path-provisioner, from their published Go modules (e2e/k8s/build.sh); the
#    harness e2e/k8s/cmd/fake-kubelet and volume-resizer; the broker and operator
#    binaries, and (real nodes) their images (e2e/images.sh IMAGES_BUILD_ONLY=1).
# 2. Starts etcd, kube-apiserver (client-certificate auth, RBAC), kube-controller-manager
#    and kube-scheduler, then the nodes. Real (e2e/k8s/node.sh): two Nodes on this machine,
#    each with containerd, runc, a CNI bridge and kubelet, one kube-proxy, CoreDNS and
#    local-path-provisioner; the images imported into containerd, never pulled; every
#    client of the suite (Kafka's tools, fjord-check, scaling-workload, openssl) runs in a
#    pod (sections/realnode.sh, which also checks the nodes themselves and deletes a
#    broker pod, kills a broker in its container and drains a node under traffic).
#    Fake: fake-kubelet as the one Node runs each bound broker pod as a local `fjord`
#    process (see its doc), clients run on the host.
# 3. `helm lint`, `helm template` (compared with e2e/k8s/golden/), `helm install` of the
#    chart. Real: the operator runs as the chart's Deployment, in a pod. Fake: the
#    Deployment is scaled to 0 and the operator runs as a local process under the chart's
#    ServiceAccount (a token from the TokenRequest API), so the chart's RBAC is what it
#    gets.
# 4. Applies e2e/k8s/examples (a 3-broker FjordCluster, a Topic, a ConsumerGroup) and
#    checks what the API server holds and what the brokers report; a consumer group's
#    lag through Kafka's console clients; a Deployment autoscaled from that lag (scale
#    out to the partition count, partition growth, scale in); topic growth, config
#    drift set back and a partition increase made by Kafka's kafka-configs /
#    kafka-topics (NotSupported);
#    CEL rejections by server-side dry run; a refused scale-in (quorum voters); scaling
#    out to 5 brokers with the rebalance that follows (replicas and leaders even), back
#    to 3, draining the removed brokers, all under a live producer and consumer group
#    (the `scaling` line); a rolling restart from a config change (one broker at a time,
#    the controller last, the operator killed mid-roll) and storage growth (refused by a
#    class without expansion, then claims expanded in place and the StatefulSet re-created
#    around its running pods) under the same traffic; a rebalance asked for by
#    annotation; a Topic's replication factor raised and lowered with its data (and
#    refused changes); topic deletion through
#    the finalizer; a deleted broker pod coming back; many Topics at once.
# 5. `scaling`: from before the scale-out until after the requested rebalance, live
#    traffic (e2e/src/bin/scaling-workload.rs: an acks=all idempotent producer and a
#    3-member consumer group); the operator is killed once mid-rebalance and once
#    mid-drain. Its summary line, `scaling: acked=N lost=L duplicates=D
#    consumer_missed=M moved_partitions=P balance_max_over_min=B
#    max_produce_stall_ms=T`, fails the suite unless L, D and M are 0 and B <= 1.1.
#
# Waits are on conditions with deadlines; timing figures are printed, never asserted.
# Environment: FJORD_CACHE (default ~/.cache/fjord), CARGO_TARGET_DIR, K8S_TOPICS (Topic
# objects applied at once for the scale figure; default 1000, 0 skips), K8S_KEEP=1 keeps
# the control plane running after the suite (for poking with kubectl), K8S_OPERATOR_LOG
# (the operator's RUST_LOG; fake node only), K8S_NODE (real, the default, or fake). A failed
# run keeps its logs under $FJORD_CACHE/k8s-logs.
set -euo pipefail
# One suite at a time on a machine: it owns a block of /etc/hosts and fixed ports. A caller
# that already holds /tmp/k8s-suite.lock (to keep the control plane for poking) says so
# with FJORD_K8S_LOCK=held. (--close: a daemon the suite starts, dockerd, does not inherit
# the lock and keep it after the suite.)
if [[ ${FJORD_K8S_LOCK:-} != held ]]; then
  export FJORD_K8S_LOCK=held
  exec flock --close /tmp/k8s-suite.lock "$0" "$@"
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
K8S_TOPICS="${K8S_TOPICS:-1000}"
BIN="$CACHE/k8s/bin"
NS=demo

log() { echo "k8s: $*"; }
fail() { echo "k8s: FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_for DESCRIPTION DEADLINE_SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what="$1" deadline=$(( $(date +%s) + $2 )); shift 2
  local t0; t0=$(now)
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      "$@" || true
      fail "timed out waiting for $what"
    fi
    sleep 0.5
  done
  log "$what after $(since "$t0")s"
}

# K8S_NODE: real (the default) or fake; see 2. above.
K8S_NODE="${K8S_NODE:-real}"
[[ $K8S_NODE == fake || $K8S_NODE == real ]] || { echo "k8s: K8S_NODE is fake or real, not '$K8S_NODE'" >&2; exit 1; }
if [[ $K8S_NODE == real ]]; then "$HERE/k8s/build.sh" node; else "$HERE/k8s/build.sh"; fi
log "building broker, operator and harness"
cargo build -q -p fjord-broker -p fjord-operator --bins
cargo build -q -p fjord-e2e --bin scaling-workload
(cd "$HERE/k8s" && GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false" go build -p 2 -o "$BIN/" ./cmd/fake-kubelet ./cmd/volume-resizer)

WORK="$(mktemp -d /tmp/fjord-k8s.XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  if [[ -n "${K8S_KEEP:-}" ]]; then
    log "K8S_KEEP set: control plane left running; KUBECONFIG=$WORK/admin.kubeconfig; pids ${PIDS[*]}"
    return
  fi
  if (( rc != 0 )); then
    # What a failed wait needs: the resources' status (a stuck roll's reason), the pods
    # and where they run, the Events, while the API server still answers.
    { kubectl get fjordclusters,topics,users -A -o yaml; kubectl get pods,pvc -A -o wide
      kubectl get events -A --sort-by=.lastTimestamp | tail -n 200; } > "$WORK/logs/cluster-state.txt" 2>&1 || true
    if declare -F rn_network_state >/dev/null; then rn_network_state 2> "$WORK/logs/network-state.txt" || true; fi
  fi
  if [[ $K8S_NODE == real ]] && declare -F node_stop >/dev/null; then
    if [[ $rc != 0 ]]; then
      local d
      for d in "$WORK"/node/n*; do cp -r "$d/pod-logs" "$WORK/pods/$(basename "$d")-pod-logs" 2>/dev/null; done
    fi
    node_stop
  fi
  # Newest first: operator, harness (stops its pods and clears /etc/hosts), then the
  # control plane.
  # Each gets 15 s to stop before SIGKILL, so a slow graceful shutdown cannot hang
  # the suite.
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    local pid=${PIDS[$i]} deadline=$(( $(date +%s) + 15 ))
    kill "$pid" 2>/dev/null || continue
    while kill -0 "$pid" 2>/dev/null && (( $(date +%s) < deadline )); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if (( rc != 0 )); then
    for f in "$WORK"/logs/*.log; do echo "--- tail $f"; tail -n 20 "$f"; done
    local kept; kept="$CACHE/k8s-logs/$(date +%Y%m%d-%H%M%S)"
    mkdir -p "$kept" && cp -r "$WORK/logs" "$WORK/pods" "$kept/" && log "logs kept in $kept"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/logs" "$WORK/pods"
export KUBECONFIG="$WORK/admin.kubeconfig"
kubectl() { "$BIN/kubectl" "$@"; }
helm() { "$BIN/helm" "$@"; }

# Ports: a per-run base in 20000-28999, below the client suites' ports (29092 and up),
# which run beside this suite in the test command.
base=$(( 20000 + (RANDOM % 900) * 10 ))
ETCD_PORT=$base ETCD_PEER=$((base + 1)) API_PORT=$((base + 2)) OP_PORT=$((base + 3))

log "versions: $("$BIN/kube-apiserver" --version), etcd $("$BIN/etcd" --version | head -1 | awk '{print $3}'), $("$BIN/helm" version --short)"

# --- certificates and kubeconfig --------------------------------------------------
pki="$WORK/pki"; mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=fjord-e2e-ca -keyout ca.key -out ca.crt 2>/dev/null
  cat > san.cnf <<EOF
[req]
distinguished_name = dn
[dn]
[ext]
subjectAltName = IP:127.0.0.1,IP:10.0.0.1,IP:10.244.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
EOF
  openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr 2>/dev/null
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.cnf -extensions ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=fjord-e2e-admin" -keyout admin.key -out admin.csr 2>/dev/null
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out admin.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)
cat > "$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$pki/admin.crt", client-key: "$pki/admin.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
EOF

# On loopback only, with no endpoints for the `kubernetes` Service, for fake-kubelet. For
# the real node, pods reach it through that Service: it listens on every address (node.sh
# drops what does not come from loopback or the pods' bridge), advertises the node's
# bridge address (10.244.0.1), and the real node's kubelet authenticates it (logs, exec)
# by the admin certificate.
APISERVER_ADDRESSES=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1)
APISERVER_NODE=(--endpoint-reconciler-type none)
if [[ $K8S_NODE == real ]]; then
  APISERVER_ADDRESSES=(--bind-address 0.0.0.0 --advertise-address 10.244.0.1)
  APISERVER_NODE=(--endpoint-reconciler-type lease --kubelet-client-certificate "$pki/admin.crt"
    --kubelet-client-key "$pki/admin.key" --kubelet-preferred-address-types InternalIP)
fi

# --- control plane -------------------------------------------------------------------
"$BIN/etcd" --name e2e --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER" --quota-backend-bytes $((2 << 30)) \
  > "$WORK/logs/etcd.log" 2>&1 &
PIDS+=($!)
log "etcd started on 127.0.0.1:$ETCD_PORT (pid $!)"

"$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  "${APISERVER_ADDRESSES[@]}" --secure-port "$API_PORT" \
  --cert-dir "$pki" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.0.0.0/24 \
  "${APISERVER_NODE[@]}" \
  > "$WORK/logs/kube-apiserver.log" 2>&1 &
PIDS+=($!)
log "kube-apiserver started on 127.0.0.1:$API_PORT (pid $!)"
wait_for "kube-apiserver /readyz" 120 kubectl get --raw /readyz

"$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port 0 --enable-hostpath-provisioner \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=false --controllers '*' \
  > "$WORK/logs/kube-controller-manager.log" 2>&1 &
PIDS+=($!)
log "kube-controller-manager started (pid $!)"
"$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port 0 \
  > "$WORK/logs/kube-scheduler.log" 2>&1 &
PIDS+=($!)
log "kube-scheduler started (pid $!)"

# Pods run `fjord` from the build; the harness finds commands in this directory only.
ln -sf "$TARGET/debug/fjord" "$BIN/fjord"
ln -sf "$TARGET/debug/fjord-check" "$BIN/fjord-check"  # the chart's `helm test` pod
if [[ $K8S_NODE == real ]]; then
  source "$HERE/k8s/node.sh"
  node_start  # returns once both nodes are Ready
  wait_for "default ServiceAccount" 60 kubectl get serviceaccount default -n default
  source "$HERE/k8s/sections/realnode.sh"
  realnode_basics
else
"$BIN/fake-kubelet" -kubeconfig "$KUBECONFIG" -bin-dir "$BIN" -log-dir "$WORK/pods" \
  > "$WORK/logs/fake-kubelet.log" 2>&1 &
PIDS+=($!)
log "fake-kubelet started (pid $!)"
wait_for "node Ready" 60 bash -c "\"$BIN/kubectl\" get node fjord-e2e-node -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
wait_for "default ServiceAccount" 60 kubectl get serviceaccount default -n default

kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
# Expanded by fake-kubelet's resizer (playing the CSI external-resizer).
allowVolumeExpansion: true
EOF
fi

# --- chart -----------------------------------------------------------------------------
CHART="$ROOT/charts/fjord-operator"
helm lint --strict "$CHART" >/dev/null || { helm lint --strict "$CHART"; fail "helm lint"; }
log "helm lint clean"
golden="$HERE/k8s/golden/helm-template.yaml"
helm template fjord "$CHART" --namespace fjord-system \
  --set cluster.enabled=true --set image.tag=test > "$WORK/template.yaml"
if [[ -n "${K8S_UPDATE_GOLDEN:-}" ]]; then cp "$WORK/template.yaml" "$golden"; fi
diff -u "$golden" "$WORK/template.yaml" || fail "helm template output differs from $golden (K8S_UPDATE_GOLDEN=1 rewrites it)"
log "helm template matches $golden"

kubectl create namespace fjord-system >/dev/null
t0=$(now)
if [[ $K8S_NODE == real ]]; then
  # The operator runs as the chart's Deployment, in a pod of the imported image.
  helm install fjord "$CHART" --namespace fjord-system --set topicResyncSeconds=5 --set userResyncSeconds=5 --set logFormat=text \
    --wait --timeout 3m >/dev/null || { kubectl get pods -n fjord-system -o wide >&2; fail "helm install"; }
  log "helm install, the operator's Deployment available, after $(since "$t0")s"
else
helm install fjord "$CHART" --namespace fjord-system --set replicaCount=0 --wait --timeout 2m >/dev/null
log "helm install after $(since "$t0")s"
fi
for crd in fjordclusters topics consumergroups; do
  kubectl wait --for condition=Established "crd/$crd.fjord.dev" --timeout 60s >/dev/null
done
kubectl get clusterrole fjord-fjord-operator >/dev/null || fail "chart created no ClusterRole"

if [[ $K8S_NODE == real ]]; then
  wait_for "operator pod holds the Lease" 90 bash -c "\"$BIN/kubectl\" get lease fjord-operator -n fjord-system -o jsonpath='{.spec.holderIdentity}' | grep -q fjord-fjord-operator-"
else
# The operator runs as the chart's ServiceAccount, so missing RBAC shows up here.
token=$(kubectl create token fjord-fjord-operator -n fjord-system --duration 2h)
cat > "$WORK/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: operator
  user: {token: "$token"}
contexts:
- name: e2e
  context: {cluster: e2e, user: operator, namespace: fjord-system}
current-context: e2e
EOF
# start_operator: runs the operator in the background; OP_PID is its pid.
start_operator() {
  # One POD_NAME across restarts, as a container restarted in its pod keeps it: a
  # restarted operator takes its own Lease back at once instead of waiting out the 15 s
  # lease of the one killed.
  KUBECONFIG="$WORK/operator.kubeconfig" POD_NAMESPACE=fjord-system POD_NAME=fjord-operator-e2e \
    RUST_LOG="${K8S_OPERATOR_LOG:-info,kube=warn}" \
    "$TARGET/debug/fjord-operator" --http-listen "127.0.0.1:$OP_PORT" --leader-elect true --log-format text \
      --topic-resync-seconds 5 --user-resync-seconds 5 \
      --operator-pod-labels app.kubernetes.io/name=fjord-operator,app.kubernetes.io/instance=fjord \
    >> "$WORK/logs/fjord-operator.log" 2>&1 &
  OP_PID=$!
  PIDS+=("$OP_PID")
  log "fjord-operator started as ServiceAccount fjord-system/fjord-fjord-operator (pid $OP_PID)"
}
start_operator
wait_for "operator /healthz" 30 curl -sf "http://127.0.0.1:$OP_PORT/healthz"
wait_for "operator holds the Lease" 60 bash -c "\"$BIN/kubectl\" get lease fjord-operator -n fjord-system -o jsonpath='{.spec.holderIdentity}' | grep -q fjord-operator"
# The operator as the rest of the suite sees it (realnode.sh has the real node's):
# operator_crash kills it (SIGKILL) and has it start again; operator_log prints its log;
# operator_metrics its /metrics.
operator_crash() {
  kill -KILL "$OP_PID"
  wait "$OP_PID" 2>/dev/null || true
  start_operator
}
operator_log() { cat "$WORK/logs/fjord-operator.log"; }
operator_metrics() { curl -sf "http://127.0.0.1:$OP_PORT/metrics"; }
fi

# --- the README path ---------------------------------------------------------------------
kubectl create namespace "$NS" >/dev/null
t0=$(now)
kubectl apply -n "$NS" -f "$HERE/k8s/examples/" >/dev/null
group_applied=$(date +%s)
cluster_ready() {
  [[ "$(kubectl get fjordcluster demo -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for "FjordCluster demo Ready (3 brokers)" 240 cluster_ready
log "cluster Ready $(since "$t0")s after apply"

jp() { kubectl get "$1" -n "$NS" -o jsonpath="$2"; }
expect() { # expect WHAT ACTUAL WANTED
  [[ "$2" == "$3" ]] || fail "$1: got '$2', want '$3'"
}
VOTERS="0@demo-0.demo-brokers.demo.svc:9093,1@demo-1.demo-brokers.demo.svc:9093,2@demo-2.demo-brokers.demo.svc:9093"
expect "statefulset replicas" "$(jp statefulset/demo '{.spec.replicas}')" 3
expect "statefulset serviceName" "$(jp statefulset/demo '{.spec.serviceName}')" demo-brokers
expect "statefulset args" "$(jp statefulset/demo '{.spec.template.spec.containers[0].args}')" \
  "[\"--node-id=\$(POD_INDEX)\",\"--data-dir=/var/lib/fjord/data\",\"--http-listen=\$(POD_IP):9644\",\"--listeners=PLAIN://\$(POD_IP):9092,OPERATOR://\$(POD_IP):9091\",\"--advertised-listeners=PLAIN://\$(POD_NAME).demo-brokers.demo.svc:9092,OPERATOR://\$(POD_NAME).demo-brokers.demo.svc:9091\",\"--listener-security-protocol-map=PLAIN:PLAINTEXT,OPERATOR:SSL\",\"--listener-ssl-client-auth=OPERATOR:required\",\"--ssl-principal-mapping-rules=RULE:^CN=([^,]+)\$/\$1/,DEFAULT\",\"--internal-listen=\$(POD_IP):9093\",\"--voters=$VOTERS\",\"--internal-ssl-certificate=/etc/fjord/tls/broker/\$(POD_NAME).crt\",\"--internal-ssl-key=/etc/fjord/tls/broker/\$(POD_NAME).key\",\"--internal-ssl-ca=/etc/fjord/tls/cluster-ca/ca.crt\",\"--ssl-keystore-location=/etc/fjord/tls/broker/\$(POD_NAME).crt\",\"--ssl-key-location=/etc/fjord/tls/broker/\$(POD_NAME).key\",\"--ssl-truststore-location=/etc/fjord/tls/broker/truststore.crt\"]"
expect "readiness probe" "$(jp statefulset/demo '{.spec.template.spec.containers[0].readinessProbe.httpGet.path}')" /ready/in-sync
expect "scrape annotation" "$(jp statefulset/demo '{.spec.template.metadata.annotations.prometheus\.io/scrape}')" true
expect "claim size" "$(jp statefulset/demo '{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}')" 1Gi
expect "headless service" "$(jp service/demo-brokers '{.spec.clusterIP}')" None
expect "bootstrap service port" "$(jp service/demo-bootstrap '{.spec.ports[0].port}')" 9092
expect "pdb maxUnavailable" "$(jp pdb/demo-brokers '{.spec.maxUnavailable}')" 1
expect "configmap" "$(jp configmap/demo-config '{.data.FJORD_LOG_RETENTION_MS}')" 604800000
uid=$(jp fjordcluster/demo '{.metadata.uid}')
for obj in statefulset/demo service/demo-brokers service/demo-bootstrap pdb/demo-brokers configmap/demo-config; do
  expect "$obj owner" "$(jp "$obj" '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].uid}/{.metadata.ownerReferences[0].controller}')" "FjordCluster/$uid/true"
  expect "$obj field manager" "$(jp "$obj" '{.metadata.managedFields[?(@.operation=="Apply")].manager}')" fjord-operator
done
expect "observedGeneration" "$(jp fjordcluster/demo '{.status.observedGeneration}')" "$(jp fjordcluster/demo '{.metadata.generation}')"
expect "readyReplicas" "$(jp fjordcluster/demo '{.status.readyReplicas}')" 3
expect "bootstrap" "$(jp fjordcluster/demo '{.status.bootstrap}')" demo-bootstrap.demo.svc:9092
expect "broker states" "$(jp fjordcluster/demo '{.status.brokers[*].state}')" "Active Active Active"
[[ "$(jp fjordcluster/demo '{.status.controllerId}')" =~ ^[012]$ ]] || fail "no controller id in status"
expect "Degraded" "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="Degraded")].status}')" False
for i in 0 1 2; do
  expect "pod demo-$i Ready" "$(jp "pod/demo-$i" '{.status.conditions[?(@.type=="Ready")].status}')" True
done
expect "scale subresource" "$(kubectl get --raw "/apis/fjord.dev/v1alpha1/namespaces/$NS/fjordclusters/demo/scale" | grep -o '"selector":"[^"]*"')" \
  '"selector":"app.kubernetes.io/component=broker,app.kubernetes.io/instance=demo,app.kubernetes.io/name=fjord"'
log "FjordCluster objects, owner references, status and scale subresource as expected"

BOOT=demo-bootstrap.demo.svc:9092
source "$HERE/k8s/clients.sh"
[[ $K8S_NODE == fake ]] || realnode_clients
check() { client fjord-check "$@"; }
kt() { client kafka-tool "$@"; }
# kt_within SECONDS NAME ARGS...: kt, stopped after SECONDS.
kt_within() { local s=$1; shift; client_argv kafka-tool "$@"; timeout "$s" "${CLIENT_ARGV[@]}"; }
# broker_balance: the larger max/min of replicas and of leaders per broker up, from
# `fjord-check brokers` (the scaling summary's balance_max_over_min).
broker_balance() {
  check brokers "$BOOT" | python3 -c "
import json, sys
b = json.load(sys.stdin)
ratios = [max(v) / min(v) if min(v) else float('inf')
          for key in ('replicas', 'leaders')
          for v in [[b[key].get(str(i), 0) for i in b['up']]]]
print('%.4f' % max(ratios))"
}
topic_ready() {
  [[ "$(kubectl get topic "$1" -n "$NS" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for "Topic orders Ready" 60 topic_ready orders
expect "topic on broker" "$(check topic "$BOOT" orders)" \
  '{"configs":{"min.insync.replicas":"2","retention.ms":"86400000"},"partitions":3,"replicationFactor":3}'
[[ $K8S_NODE == fake ]] || realnode_after_readme

# --- scaling under live traffic ------------------------------------------------------
# The `scaling` scenario: from here until after the scale-out, the scale-in, the rolling
# restart and the storage growth below, an acks=all idempotent producer and a 3-member
# consumer group (e2e/src/bin/scaling-workload.rs) run on topic `scaling`, RF 3 over 6
# partitions; its summary is the suite's `scaling:` line, and it fails the suite unless
# nothing is lost, duplicated or missed by the group and the brokers end even. It starts
# here, early, so that its start-up overlaps the steps before the scale-out.
SCALING_PARTITIONS=6
SCALING_STOP="$WORK/scaling.stop"
kubectl apply -n "$NS" -f - >/dev/null <<<"{\"apiVersion\":\"fjord.dev/v1alpha1\",\"kind\":\"Topic\",\"metadata\":{\"name\":\"scaling\"},\"spec\":{\"clusterRef\":\"demo\",\"partitions\":$SCALING_PARTITIONS,\"replicationFactor\":3,\"config\":{\"min.insync.replicas\":\"2\"}}}"
client_start workload "$WORK/logs/scaling-workload.out" "$WORK/logs/scaling-workload.log" \
  scaling-workload --bootstrap "$BOOT" --topic scaling --partitions "$SCALING_PARTITIONS" \
  --group scaling --consumers 3 --stop-file "$SCALING_STOP"
WORKLOAD_PID=${CLIENT_PID[workload]}
log "scaling workload started (pid $WORKLOAD_PID)"
exec {SUITE_ERR}>&2  # wait_for silences its condition's stderr; an early exit must show
workload_ready() {
  kill -0 "$WORKLOAD_PID" 2>/dev/null ||
    fail "the scaling workload exited early: $(tail -n 5 "$WORK/logs/scaling-workload.log")" 2>&"$SUITE_ERR"
  grep -qx "scaling-workload: ready" "$WORK/logs/scaling-workload.out"
}
# Partitions moved by the rebalances and the drain, for the summary.
SCALING_MOVED=0

# The chart's test hook: a pod that produces one record and reads it back.
helm upgrade fjord "$CHART" --namespace fjord-system --reuse-values --set test.bootstrap="$BOOT" >/dev/null
t0=$(now)
helm test fjord --namespace fjord-system --timeout 2m >/dev/null || fail "helm test"
expect "helm test pod" "$(kubectl get pod fjord-fjord-operator-test-roundtrip -n fjord-system -o jsonpath='{.status.phase}')" Succeeded
log "helm test passed in $(since "$t0")s"

# A client: Kafka's console producer and a consumer in group "payments"; the
# ConsumerGroup resource then reports the group and its lag. The records are keyed so
# that every partition gets some (keys k1..k15 hash, by Kafka's murmur2, to partitions
# 2,0,1,1,0,1,1,2,2,1 | 0,0,2,1,0 of 3): the consumer then reads from, and commits, all
# three. Lag counts partitions with a committed offset only (as kafka-consumer-groups
# does), so unkeyed records that the producer happened to put on a partition the
# consumer had not positioned on before leaving would not show as lag.
keyed() { for i in $(seq "$1" "$2"); do echo "k$i:$i"; done; }
produce_keyed() {
  kt kafka-console-producer --bootstrap-server "$BOOT" --topic orders \
    --reader-property parse.key=true --reader-property key.separator=: >/dev/null
}
keyed 1 10 | produce_keyed
got=$(kt kafka-console-consumer --bootstrap-server "$BOOT" --topic orders --group payments \
  --from-beginning --max-messages 10 --timeout-ms 60000 2>"$WORK/consumer.err" | sort -n | paste -sd,) \
  || { grep -v SLF4J "$WORK/consumer.err" >&2 || true; fail "kafka-console-consumer in group payments"; }
expect "records consumed by group payments" "$got" "1,2,3,4,5,6,7,8,9,10"
keyed 11 15 | produce_keyed
group_lag() {
  local seen; seen=$(jp consumergroup/payments '{.status.state} {.status.totalLag} {.status.partitions[*].committedOffset}')
  echo "ConsumerGroup payments: state, lag and committed offsets '$seen'; status $(jp consumergroup/payments '{.status}')" >&2
  [[ "$seen" == "Empty 5 2 5 3" ]]
}
wait_for "ConsumerGroup payments: Empty, lag 5, committed offsets 2 5 3" 60 group_lag
log "kubectl get consumergroups:"
kubectl get consumergroups -n "$NS" | sed 's/^/k8s:   /'

# Lag-driven autoscaling: a second ConsumerGroup resource on group "payments" scales a
# Deployment from the group's lag. Its pods stay Pending (no node has the label its
# selector wants): what is checked is the scale the operator sets, the Topic it grows,
# status.autoscale and the Events.
kubectl apply -n "$NS" -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: payments-consumer}
spec:
  replicas: 1
  selector: {matchLabels: {app: payments-consumer}}
  template:
    metadata: {labels: {app: payments-consumer}}
    spec:
      nodeSelector: {fjord.dev/e2e-no-such-node: "true"}
      containers: [{name: consumer, image: "consumer:test"}]
---
apiVersion: fjord.dev/v1alpha1
kind: ConsumerGroup
metadata: {name: payments-autoscale}
spec:
  clusterRef: demo
  groupId: payments
  resyncSeconds: 2
  autoscale:
    scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: payments-consumer}
    minReplicas: 1
    maxReplicas: 5
    lagThreshold: 1
    scaleInStabilizationWindowSeconds: 0
    partitionGrowth: {enabled: true, maxPartitions: 4}
EOF
deployment_replicas() { # deployment_replicas N: the operator set the scale to N
  local seen; seen=$(jp deployment/payments-consumer '{.spec.replicas}')
  echo "Deployment payments-consumer: replicas $seen; autoscale $(jp consumergroup/payments-autoscale '{.status.autoscale}')" >&2
  [[ "$seen" == "$1" ]]
}
event_seen() { # event_seen REASON: an Event about the ConsumerGroup with that reason
  [[ -n "$(kubectl get events -n "$NS" --field-selector "involvedObject.name=payments-autoscale,reason=$1" -o name)" ]]
}
autoscale_says() { # autoscale_says DECISION SUBSTRING-OF-REASON
  [[ "$(jp consumergroup/payments-autoscale '{.status.autoscale.decision}')" == "$1" &&
     "$(jp consumergroup/payments-autoscale '{.status.autoscale.reason}')" == *"$2"* ]]
}
# Lag 5 at one record per consumer asks for 5, capped at the topic's 3 partitions.
wait_for "autoscale: Deployment scaled out to the 3 partitions" 60 deployment_replicas 3
wait_for "autoscale: ScaledOut Event" 30 event_seen ScaledOut
wait_for "autoscale: holding at the partition count" 30 autoscale_says Hold "capped at the 3 partitions"
# Lag grows with a consumer on every partition: the Topic grows, up to maxPartitions 4,
# and the workload follows onto the new partition.
keyed 16 25 | produce_keyed
orders_partitions() { [[ "$(jp topic/orders '{.spec.partitions}')" == "$1" ]]; }
wait_for "autoscale: Topic orders grown to maxPartitions 4" 60 orders_partitions 4
wait_for "autoscale: PartitionsGrown Event" 30 event_seen PartitionsGrown
wait_for "autoscale: Deployment scaled out to 4" 60 deployment_replicas 4
wait_for "autoscale: growth stops at maxPartitions" 60 autoscale_says Hold "the maxPartitions limit 4"
# The backlog is skipped (offsets reset to the end): lag 0, back to minReplicas.
kubectl patch consumergroup payments-autoscale -n "$NS" --type merge \
  -p '{"spec":{"offsetReset":{"token":"drain","to":"Latest"}}}' >/dev/null
wait_for "autoscale: Deployment scaled in to 1 once lag is 0" 60 deployment_replicas 1
wait_for "autoscale: ScaledIn Event" 30 event_seen ScaledIn
log "autoscale Events: $(kubectl get events -n "$NS" --field-selector involvedObject.name=payments-autoscale -o jsonpath='{range .items[*]}{.reason} {end}')"
kubectl delete consumergroup payments-autoscale -n "$NS" >/dev/null
kubectl delete deployment payments-consumer -n "$NS" >/dev/null
wait_for "Topic orders Ready at 4 partitions" 60 topic_ready orders

# Grow partitions and change configs through the resource.
kubectl patch topic orders -n "$NS" --type merge -p '{"spec":{"partitions":6,"config":{"retention.ms":"3600000","cleanup.policy":"delete"}}}' >/dev/null
SPEC6='{"configs":{"cleanup.policy":"delete","min.insync.replicas":"2","retention.ms":"3600000"},"partitions":6,"replicationFactor":3}'
broker_has() { [[ "$(check topic "$BOOT" orders)" == "$1" ]]; }
wait_for "partitions grown to 6 and configs set" 60 broker_has "$SPEC6"
status_partitions() { [[ "$(jp topic/orders '{.status.partitions}')" == "$1" ]]; }
wait_for "Topic orders status: 6 partitions" 30 status_partitions 6

# Drift: while the resource is paused, other tools change the topic; once resumed, the
# operator sets the configs back. A partition increase it cannot undo: NotSupported.
pause() { kubectl annotate topic orders -n "$NS" --overwrite "fjord.dev/pause-reconciliation=$1" >/dev/null; }
paused() { [[ "$(jp topic/orders '{.status.conditions[?(@.type=="Paused")].status}')" == True ]]; }
pause true
wait_for "Topic orders paused" 30 paused
kt kafka-configs --bootstrap-server "$BOOT" --alter --entity-type topics --entity-name orders \
  --add-config retention.ms=1000 --delete-config cleanup.policy >/dev/null
DRIFTED='{"configs":{"min.insync.replicas":"2","retention.ms":"1000"},"partitions":6,"replicationFactor":3}'
expect "configs changed by kafka-configs" "$(check topic "$BOOT" orders)" "$DRIFTED"
t0=$(now)
pause false
wait_for "config drift set back" 60 broker_has "$SPEC6"
log "figure: drift set back $(since "$t0")s after resuming (resync every 5 s)"

pause true
wait_for "Topic orders paused" 30 paused
kt kafka-topics --bootstrap-server "$BOOT" --alter --topic orders --partitions 8 >/dev/null
pause false
not_supported() { [[ "$(jp topic/orders '{.status.conditions[?(@.type=="NotSupported")].status}/{.status.conditions[?(@.type=="Ready")].reason}')" == True/NotSupported ]]; }
wait_for "Topic orders NotSupported after a partition increase by kafka-topics" 60 not_supported
log "NotSupported: $(jp topic/orders '{.status.conditions[?(@.type=="NotSupported")].message}')"
expect "partitions on the broker after NotSupported" "$(check topic "$BOOT" orders | grep -o '"partitions":[0-9]*')" '"partitions":8'
kubectl patch topic orders -n "$NS" --type merge -p '{"spec":{"partitions":8}}' >/dev/null
supported_again() { topic_ready orders && [[ -z "$(jp topic/orders '{.status.conditions[?(@.type=="NotSupported")].status}')" ]]; }
wait_for "Topic orders Ready once the spec says 8" 60 supported_again

# CEL rules, by server-side dry run.
reject() { # reject WHAT EXPECTED_MESSAGE MANIFEST...
  local what="$1" want="$2"; shift 2
  local out
  if out=$(kubectl "$@" --dry-run=server -n "$NS" 2>&1); then fail "$what was accepted"; fi
  grep -qF "$want" <<<"$out" || fail "$what: rejected without '$want': $out"
  log "rejected $what: $want"
}
reject "partitions decrease" "partitions may grow but never shrink" patch topic orders --type merge -p '{"spec":{"partitions":2}}'
reject "partitions 0" "partitions must be at least 1" apply -f - <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"bad"},"spec":{"clusterRef":"demo","partitions":0}}'
reject "topicName change" "topicName is immutable" patch topic orders --type merge -p '{"spec":{"topicName":"other"}}'
reject "replicas 0" "replicas must be at least 1" patch fjordcluster demo --type merge -p '{"spec":{"replicas":0}}'
reject "storage shrink" "storage size may grow but never shrink" patch fjordcluster demo --type merge -p '{"spec":{"storage":{"size":"512Mi"}}}'
reject "bad quantity" "storage size must be a quantity" patch fjordcluster demo --type merge -p '{"spec":{"storage":{"size":"lots"}}}'
autoscale_patch() { # autoscale_patch MIN MAX LAG_THRESHOLD: a patch of payments' spec.autoscale
  echo "{\"spec\":{\"autoscale\":{\"scaleTargetRef\":{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"name\":\"c\"},\"minReplicas\":$1,\"maxReplicas\":$2,\"lagThreshold\":$3}}}"
}
reject "autoscale max below min" "maxReplicas must be at least minReplicas" patch consumergroup payments --type merge -p "$(autoscale_patch 3 2 10)"
reject "autoscale lagThreshold 0" "lagThreshold must be at least 1" patch consumergroup payments --type merge -p "$(autoscale_patch 1 2 0)"
reject "autoscale maxReplicas 1001" "maxReplicas must be between 1 and 1000" patch consumergroup payments --type merge -p "$(autoscale_patch 1 1001 10)"
# Hardened pods: StatefulSet and NetworkPolicy goldens, Pod Security, podTemplate CEL.
source "$HERE/k8s/sections/hardening.sh" && hardening_demo

# A Topic on a missing cluster.
kubectl apply -n "$NS" -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"orphan"},"spec":{"clusterRef":"nope","partitions":1}}'
orphan_reason() { [[ "$(jp topic/orphan '{.status.conditions[?(@.type=="Ready")].reason}')" == ClusterNotFound ]]; }
wait_for "Topic orphan ClusterNotFound" 30 orphan_reason

# A Topic the broker refuses: the condition carries the broker's error code.
kubectl apply -n "$NS" -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"badconfig"},"spec":{"clusterRef":"demo","partitions":1,"config":{"retention.ms":"soon"}}}'
broker_refused() { [[ "$(jp topic/badconfig '{.status.conditions[?(@.type=="Ready")].reason}')" == KafkaError40 ]]; }
wait_for "Topic badconfig refused with INVALID_CONFIG (40)" 30 broker_refused
log "badconfig: $(jp topic/badconfig '{.status.conditions[?(@.type=="Ready")].message}')"
kubectl delete topic badconfig -n "$NS" --wait=true --timeout 60s >/dev/null

# Scaling. Below three brokers the metadata quorum would lose voters: refused, and the
# StatefulSet keeps its pods.
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"replicas":2}}' >/dev/null
blocked() { [[ "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="ScaleDownBlocked")].status}/{.status.conditions[?(@.type=="ScaleDownBlocked")].reason}')" == True/QuorumVoters ]]; }
wait_for "scale-in to 2 refused (ScaleDownBlocked)" 60 blocked
log "ScaleDownBlocked: $(jp fjordcluster/demo '{.status.conditions[?(@.type=="ScaleDownBlocked")].message}')"
expect "statefulset replicas while blocked" "$(jp statefulset/demo '{.spec.replicas}')" 3
voters_arg() { jp statefulset/demo '{range .spec.template.spec.containers[0].args[*]}{@}{"\n"}{end}' | grep -- '^--voters='; }
expect "pod template while blocked" "$(voters_arg)" "--voters=$VOTERS"
wait_for "scaling workload producing, its group of 3 assigned" 120 workload_ready
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"replicas":5}}' >/dev/null
brokers_up() { [[ "$(check brokers "$BOOT" | grep -o '"up":\[[0-9,]*\]')" == "\"up\":[$1]" ]]; }
five_ready() { cluster_ready && [[ "$(jp statefulset/demo '{.spec.replicas}')" == 5 ]] && brokers_up 0,1,2,3,4; }
t0=$(now)
wait_for "scaled out to 5 brokers" 180 five_ready
log "figure: 5th broker up and cluster Ready $(since "$t0")s after the edit"
expect "ScaleDownBlocked cleared" "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="ScaleDownBlocked")].status}')" ""

# The scale-out is followed by a rebalance: replicas and leaders move onto brokers 3
# and 4 in batches until every broker holds an even share (max - min <= 1, or max/min
# <= 1.1 once the share reaches 10).
# spread KEY BROKERS: "min max" of the per-broker counts of `fjord-check brokers`.
spread() {
  check brokers "$BOOT" | python3 -c "
import json, sys
counts = json.load(sys.stdin)['$1']
v = [counts.get(str(b), 0) for b in range($2)]
print(min(v), max(v))"
}
even() { local lo hi; read -r lo hi < <(spread "$1" "$2"); (( hi - lo <= 1 || hi * 10 <= lo * 11 )); }
rebalance_state() { jp fjordcluster/demo '{.status.rebalance.state}/{.status.rebalance.reason}'; }
rebalanced() {
  [[ "$(rebalance_state)" == "Done/$1" ]] && even replicas "$2" && even leaders "$2" &&
    [[ "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="Rebalancing")].status}')" == False ]]
}
# The operator is killed mid-run and started again: it continues from status.rebalance
# (one run, one RebalanceStarted Event) and ends with every planned partition moved.
midrun() { [[ "$(rebalance_state)" == Running/ScaleOut ]] && (( $(jp fjordcluster/demo '{.status.rebalance.partitionsMoved}') > 0 )); }
wait_for "rebalance running with a batch moved" 120 midrun
log "killing the operator mid-rebalance: $(jp fjordcluster/demo '{.status.rebalance.message}'); throttle $(jp fjordcluster/demo '{.status.rebalance.throttle}')"
operator_crash
t0=$(now)
wait_for "rebalanced over 5 brokers" 300 rebalanced ScaleOut 5
log "figure: rebalance 3 -> 5 done $(since "$t0")s after the 5th broker was up; $(jp fjordcluster/demo '{.status.rebalance.partitionsMoved}') partitions moved; $(check brokers "$BOOT")"
log "rebalance: $(jp fjordcluster/demo '{.status.rebalance.message}')"
expect "RebalanceStarted events (one run across the restart)" \
  "$(kubectl get events -n "$NS" --field-selector reason=RebalanceStarted -o name | wc -l)" 1
[[ -n "$(kubectl get events -n "$NS" --field-selector reason=Rebalanced -o name)" ]] || fail "no Rebalanced event"
(( $(jp fjordcluster/demo '{.status.rebalance.partitionsMoved}') > 0 )) || fail "the rebalance moved nothing"
expect "partitions moved = partitions to move" "$(jp fjordcluster/demo '{.status.rebalance.partitionsMoved}')" \
  "$(jp fjordcluster/demo '{.status.rebalance.partitionsToMove}')"
# Each batch moved under a replication throttle (spec.rebalance.throttleBytesPerSecond),
# removed when its batch ended, the one in flight at the kill included: no rate is left
# on any broker and no throttle in status.
expect "throttle left in status.rebalance" "$(jp fjordcluster/demo '{.status.rebalance.throttle}')" ""
for b in 0 1 2 3 4; do
  out="$(kt kafka-configs --bootstrap-server "$BOOT" --describe --entity-type brokers --entity-name "$b" 2>&1)"
  if grep -q "replication.throttled.rate" <<<"$out"; then fail "broker $b still has a throttle rate: $out"; fi
done
SCALING_MOVED=$(( SCALING_MOVED + $(jp fjordcluster/demo '{.status.rebalance.partitionsMoved}') ))

# Scaling in from 5 to 3 drains brokers 3 and 4 first: their replicas move, then their
# pods go, then they are unregistered; every record stays readable.
kubectl apply -n "$NS" -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"moving"},"spec":{"clusterRef":"demo","partitions":4,"replicationFactor":2}}'
wait_for "Topic moving Ready" 60 topic_ready moving
replicas_on() { check brokers "$BOOT" | python3 -c "import json,sys; print(json.load(sys.stdin)['replicas'].get('$1', 0))"; }
on_broker_3=$(replicas_on 3)
(( on_broker_3 > 0 )) || fail "broker 3 holds no replicas to drain"
seq 1 200 | kt kafka-console-producer --bootstrap-server "$BOOT" --topic moving --producer-property acks=all >/dev/null
t0=$(now)
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"replicas":3}}' >/dev/null
# The operator is killed mid-drain and started again: the drain continues from what the
# brokers and status report, starting no partition's move twice (one Draining Event,
# one logged move per partition) and leaving none behind (brokers 3 and 4 end empty).
draining() { [[ "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="Reconciling")].reason}')" == Draining ]]; }
wait_for "drain running" 120 draining
log "killing the operator mid-drain: $(jp fjordcluster/demo '{.status.conditions[?(@.type=="Reconciling")].message}')"
operator_crash
drained() {
  cluster_ready && [[ "$(jp statefulset/demo '{.spec.replicas}')" == 3 ]] && brokers_up 0,1,2 &&
    ! kubectl get pod demo-3 -n "$NS" >/dev/null 2>&1 && ! kubectl get pod demo-4 -n "$NS" >/dev/null 2>&1 &&
    [[ -n "$(kubectl get events -n "$NS" --field-selector reason=BrokerRemoved -o name)" ]]
}
wait_for "brokers 3 and 4 drained ($on_broker_3 replicas on 3), removed and unregistered" 300 drained
log "figure: scale-in 5 -> 3 done $(since "$t0")s after the edit"
expect "Draining events (one drain across the restart)" \
  "$(kubectl get events -n "$NS" --field-selector reason=Draining -o name | wc -l)" 1
# Each drain move the operator started, as "topic partition", from its log.
drain_moves() {
  operator_log | sed 's/\x1b\[[0-9;]*m//g' |
    grep -o 'moving replicas off a broker being removed topic=[^ ]* partition=[0-9]*' |
    sed 's/.* topic=\([^ ]*\) partition=/\1 /'
}
repeated=$(drain_moves | sort | uniq -d | paste -sd,)
[[ -z "$repeated" ]] || fail "drain moves started twice: $repeated"
drain_moved=$(drain_moves | wc -l)
(( drain_moved > 0 )) || fail "the drain started no moves"
SCALING_MOVED=$(( SCALING_MOVED + drain_moved ))
log "drain: $drain_moved partitions moved, none twice, across the operator restart"
expect "replicas on broker 3" "$(replicas_on 3)" 0
expect "replicas on broker 4" "$(replicas_on 4)" 0
# The example keeps claims on scale-in (storage.claimPolicyOnScaleDown: Retain).
expect "claims of the removed brokers" "$(jp pvc/data-demo-3 '{.metadata.name}') $(jp pvc/data-demo-4 '{.metadata.name}')" "data-demo-3 data-demo-4"
got=$(kt kafka-console-consumer --bootstrap-server "$BOOT" --topic moving --from-beginning \
  --max-messages 200 --timeout-ms 60000 2>/dev/null | sort -n | uniq | wc -l)
expect "records of topic moving readable after the drain" "$got" 200

# --- scaling: the steps that follow the scale-in under the same live traffic ------------
# scaling_rolling_restart: a broker config change rolls the brokers one at a time, the
# operator killed once mid-roll, under the workload's traffic and one more producer.
scaling_rolling_restart() {
# A broker config change rolls the brokers: the operator (StatefulSet OnDelete) restarts
# one at a time, the controller last, each once the cluster is in sync again, while an
# acks=all producer runs. The operator is killed mid-roll and continues from
# status.roll: every broker restarts exactly once, and no acknowledged record is lost.
expect "update strategy" "$(jp statefulset/demo '{.spec.updateStrategy.type}')" OnDelete
kubectl apply -n "$NS" -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"rolling"},"spec":{"clusterRef":"demo","partitions":3,"replicationFactor":3,"config":{"min.insync.replicas":"2"}}}'
wait_for "Topic rolling Ready" 60 topic_ready rolling
roll_controller=$(jp fjordcluster/demo '{.status.controllerId}')
roll_uids="$(jp pod/demo-0 '{.metadata.uid}') $(jp pod/demo-1 '{.metadata.uid}') $(jp pod/demo-2 '{.metadata.uid}')"
# Stopped by SIGTERM, after its in-flight records are answered.
client_start roll-producer "$WORK/roll-producer.out" "$WORK/logs/roll-producer.log" \
  kafka-tool kafka-verifiable-producer --bootstrap-server "$BOOT" --topic rolling \
  --acks -1 --throughput 100 --max-messages 60000
acked_at_least() { (( $(grep -c producer_send_success "$WORK/roll-producer.out") >= $1 )); }
wait_for "producer acknowledging" 120 acked_at_least 100
t0=$(now)
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"config":{"log.retention.ms":"604800001"}}}' >/dev/null
roll() { jp fjordcluster/demo "{.status.roll.$1}"; }
# Killed once the first broker is done and the second one's pod was deleted.
midroll() {
  [[ "$(roll state)" == Rolling && "$(roll done)" =~ ^\[[0-9]\]$ && "$(roll reason)" =~ ^(BrokerRestarting|CatchingUp)$ ]]
}
wait_for "second broker of the roll restarting" 300 midroll
log "killing the operator mid-roll: $(roll done) done; $(roll message)"
operator_crash
rolled() { [[ "$(roll state)" == Done ]] && cluster_ready; }
wait_for "rolling restart done" 300 rolled
log "figure: rolling restart of 3 brokers done $(since "$t0")s after the config change; $(roll message)"
revision=$(jp statefulset/demo '{.status.updateRevision}')
for i in 0 1 2; do
  expect "pod demo-$i revision" "$(jp "pod/demo-$i" "{.metadata.labels.controller-revision-hash}")" "$revision"
  [[ " $roll_uids " != *" $(jp "pod/demo-$i" '{.metadata.uid}') "* ]] || fail "pod demo-$i was not restarted"
done
roll_done=$(roll done)
[[ "$roll_done" =~ ^\[[0-2],[0-2],$roll_controller\]$ ]] || fail "roll order $roll_done: want the controller $roll_controller last"
# one_at_a_time ORDER: each pod of ORDER (a JSON list of brokers) was created after
# the one before it was Ready again (timestamps the API server set).
one_at_a_time() {
kubectl get pods -n "$NS" -o json | python3 -c '
import json, sys
order = json.loads(sys.argv[1])
pods = {p["metadata"]["name"]: p for p in json.load(sys.stdin)["items"]}
def ready_at(b):
    c = [c for c in pods[f"demo-{b}"]["status"]["conditions"] if c["type"] == "Ready"]
    return c[0]["lastTransitionTime"]
for a, b in zip(order, order[1:]):
    created = pods[f"demo-{b}"]["metadata"]["creationTimestamp"]
    if created < ready_at(a):
        sys.exit(f"pod demo-{b} created at {created}, before demo-{a} was Ready ({ready_at(a)})")
' "$1" || fail "brokers restarted more than one at a time"
}
one_at_a_time "$roll_done"
# Each broker restarted once across the operator restart: Events of one reason about
# one object are counted in a series.
restarts() {
  kubectl get events.events.k8s.io -n "$NS" -o json | python3 -c "
import json, sys
print(sum((e.get('series') or {}).get('count', 1) for e in json.load(sys.stdin)['items'] if e['reason'] == '$1'))"
}
expect "RestartingBroker Events" "$(restarts RestartingBroker)" 3
expect "BrokerRestarted Events" "$(restarts BrokerRestarted)" 3
client_term roll-producer 2>/dev/null || true
python3 -c '
import json, sys
for line in sys.stdin:
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("name") == "producer_send_success":
        print(event["value"])' < "$WORK/roll-producer.out" | sort -u > "$WORK/roll-acked"
acked=$(wc -l < "$WORK/roll-acked")
# Reads until nothing comes for 20 s (then the consumer exits).
{ kt kafka-console-consumer --bootstrap-server "$BOOT" --topic rolling --from-beginning \
  --timeout-ms 20000 2>/dev/null || true; } | sort -u > "$WORK/roll-read"
lost=$(comm -23 "$WORK/roll-acked" "$WORK/roll-read" | wc -l)
failed=$(grep -c producer_send_error "$WORK/roll-producer.out" || true)
log "rolling restart under acks=all: acked=$acked lost=$lost failed_sends=$failed"
if (( failed > 0 )); then
  # kafka-verifiable-producer sends with retries=0: a leadership move mid-send fails
  # the record rather than retrying it; it was never acknowledged.
  log "failed sends (not acknowledged, so not counted as lost): $(grep producer_send_error "$WORK/roll-producer.out" |
    python3 -c 'import json, sys, collections; print(dict(collections.Counter(json.loads(l).get("exception", "?") + ": " + json.loads(l).get("message", "")[:120] for l in sys.stdin)))')"
fi
(( acked > 100 )) || fail "the producer had only $acked records acknowledged"
expect "acknowledged records lost in the roll" "$lost" 0
}
# scaling_storage_growth: a larger spec.storage.size grows every claim, under the
# workload's traffic.
scaling_storage_growth() {
# Storage growth. A class that does not allow expansion: nothing changes, and a
# condition says so. Then one that does: every claim (also those kept from brokers 3
# and 4) grows in place, the StatefulSet is re-created with its pods orphaned so its
# template carries the new size, and no broker pod is replaced.
pod_uids() { kubectl get pods -n "$NS" -l app.kubernetes.io/instance=demo -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.uid} {end}'; }
claim_sizes() { jp pvc '{range .items[*]}{.spec.resources.requests.storage}/{.status.capacity.storage} {end}'; }
uids_before=$(pod_uids)
# The default class: hostpath beside fake-kubelet, local-path on the real node.
STORAGE_CLASS=$(kubectl get storageclass -o jsonpath='{.items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")].metadata.name}')
sts_uid_before=$(jp statefulset/demo '{.metadata.uid}')
ready_since() { jp fjordcluster/demo '{.status.conditions[?(@.type=="Ready")].status} since {.status.conditions[?(@.type=="Ready")].lastTransitionTime}'; }
ready_before=$(ready_since)
kubectl patch storageclass "$STORAGE_CLASS" -p '{"allowVolumeExpansion":false}' >/dev/null
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"storage":{"size":"2Gi"}}}' >/dev/null
unexpandable() {
  [[ "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="StorageResizeUnsupported")].status}/{.status.conditions[?(@.type=="StorageResizeUnsupported")].reason}/{.status.storage.state}')" == True/StorageClassNotExpandable/Unsupported ]]
}
wait_for "StorageResizeUnsupported for a class without expansion" 60 unexpandable
message=$(jp fjordcluster/demo '{.status.conditions[?(@.type=="StorageResizeUnsupported")].message}')
grep -q "\"$STORAGE_CLASS\"" <<<"$message" || fail "StorageResizeUnsupported does not name the class: $message"
log "StorageResizeUnsupported: $message"
expect "claims while unsupported" "$(claim_sizes)" "1Gi/1Gi 1Gi/1Gi 1Gi/1Gi 1Gi/1Gi 1Gi/1Gi "
expect "claim template while unsupported" "$(jp statefulset/demo '{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}')" 1Gi
expect "Ready while unsupported" "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="Ready")].status}')" True
kubectl patch storageclass "$STORAGE_CLASS" -p '{"allowVolumeExpansion":true}' >/dev/null
t0=$(now)
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"storage":{"size":"3Gi"}}}' >/dev/null
grown() {
  [[ "$(claim_sizes)" == "3Gi/3Gi 3Gi/3Gi 3Gi/3Gi 3Gi/3Gi 3Gi/3Gi " ]] &&
    [[ "$(jp statefulset/demo '{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}')" == 3Gi ]] &&
    [[ "$(jp fjordcluster/demo '{.status.storage.state}/{.status.storage.claimsResized}/{.status.storage.claimsTotal}')" == Done/5/5 ]] &&
    cluster_ready && brokers_up 0,1,2
}
wait_for "claims grown to 3Gi and the StatefulSet re-created with them" 120 grown
log "figure: storage 1Gi -> 3Gi on 5 claims done $(since "$t0")s after the edit; $(jp fjordcluster/demo '{.status.storage.message}')"
[[ "$(jp statefulset/demo '{.metadata.uid}')" != "$sts_uid_before" ]] || fail "the StatefulSet was not re-created"
expect "broker pods after storage growth (none replaced)" "$(pod_uids)" "$uids_before"
sts_uid=$(jp statefulset/demo '{.metadata.uid}')
for i in 0 1 2; do
  expect "pod demo-$i adopted by the new StatefulSet" "$(jp "pod/demo-$i" '{.metadata.ownerReferences[0].uid}')" "$sts_uid"
done
expect "Ready throughout the storage growth" "$(ready_since)" "$ready_before"
expect "StorageResizeUnsupported cleared" "$(jp fjordcluster/demo '{.status.conditions[?(@.type=="StorageResizeUnsupported")].status}')" ""
[[ -n "$(kubectl get events -n "$NS" --field-selector reason=StorageResized -o name)" ]] || fail "no StorageResized event"

# A volume whose file system grows only when a pod mounts it again (the resizer's
# on-restart mode): the brokers' claims report FileSystemResizePending and the rolling
# restart restarts their pods, one at a time, the controller last; the claims of
# removed brokers 3 and 4 (no pod) wait for a mount as PendingMount without holding
# the growth.
kubectl annotate storageclass "$STORAGE_CLASS" fjord.dev/e2e-filesystem-resize=on-restart >/dev/null
fs_controller=$(jp fjordcluster/demo '{.status.controllerId}')
fs_uids="$(jp pod/demo-0 '{.metadata.uid}') $(jp pod/demo-1 '{.metadata.uid}') $(jp pod/demo-2 '{.metadata.uid}')"
fs_roll_before=$(jp fjordcluster/demo '{.status.roll.startedAt}')
t0=$(now)
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"storage":{"size":"4Gi"}}}' >/dev/null
fs_grown() {
  [[ "$(claim_sizes)" == "4Gi/4Gi 4Gi/4Gi 4Gi/4Gi 4Gi/3Gi 4Gi/3Gi " ]] &&
    [[ "$(jp fjordcluster/demo '{.status.storage.state}/{.status.storage.claimsResized}/{.status.storage.claimsTotal}/{.status.storage.claims[3].state}/{.status.storage.claims[4].state}')" == Done/3/5/PendingMount/PendingMount ]] &&
    [[ "$(jp fjordcluster/demo '{.status.roll.startedAt}')" != "$fs_roll_before" ]] &&
    [[ "$(jp fjordcluster/demo '{.status.roll.state}')" == Done ]] &&
    cluster_ready && brokers_up 0,1,2
}
wait_for "claims grown to 4Gi by restarting the brokers" 300 fs_grown
log "figure: storage 3Gi -> 4Gi with file system resize on restart done $(since "$t0")s after the edit; $(jp fjordcluster/demo '{.status.storage.message}'); $(jp fjordcluster/demo '{.status.roll.message}')"
for i in 0 1 2; do
  [[ " $fs_uids " != *" $(jp "pod/demo-$i" '{.metadata.uid}') "* ]] || fail "pod demo-$i was not restarted for its volume"
done
fs_done=$(jp fjordcluster/demo '{.status.roll.done}')
[[ "$fs_done" =~ ^\[[0-2],[0-2],$fs_controller\]$ ]] || fail "volume roll order $fs_done: want each broker once, the controller $fs_controller last"
one_at_a_time "$fs_done"
kubectl get events -n "$NS" --field-selector reason=RestartingBroker -o jsonpath='{.items[*].message}' |
  grep -q "to finish growing its volume" || fail "no RestartingBroker Event says the volume is why"
kubectl annotate storageclass "$STORAGE_CLASS" fjord.dev/e2e-filesystem-resize- >/dev/null
}
scaling_rolling_restart
scaling_storage_growth

# A rebalance on request: the annotation starts a run, which removes it when done.
kubectl annotate fjordcluster demo -n "$NS" fjord.dev/rebalance=true >/dev/null
requested_done() { rebalanced Requested 3 && [[ -z "$(jp fjordcluster/demo '{.metadata.annotations.fjord\.dev/rebalance}')" ]]; }
wait_for "requested rebalance done and annotation removed" 180 requested_done
log "rebalance on request: $(jp fjordcluster/demo '{.status.rebalance.message}')"
SCALING_MOVED=$(( SCALING_MOVED + $(jp fjordcluster/demo '{.status.rebalance.partitionsMoved}') ))

# The scaling workload stops: the stop file carries the figures the suite measured
# (written whole by a rename); its summary is collected below, while other steps run.
# balance_max_over_min: the larger max/min of replicas and of leaders per broker.
balance=$(broker_balance)
printf 'moved_partitions=%s\nbalance_max_over_min=%s\n' "$SCALING_MOVED" "$balance" > "$SCALING_STOP.tmp"
mv "$SCALING_STOP.tmp" "$SCALING_STOP"
scaling_summary() {
  local rc=0 line
  wait "$WORKLOAD_PID" || rc=$?
  line=$(tail -n 1 "$WORK/logs/scaling-workload.out")
  [[ "$line" == "scaling: "* ]] || fail "the scaling workload printed no summary (exit $rc): $(tail -n 5 "$WORK/logs/scaling-workload.log")"
  echo "$line"
  (( rc == 0 )) || fail "scaling: lost, duplicated or missed records, or brokers uneven (exit $rc)"
}

# Replication-factor changes: a Topic with data goes from 1 to 3 replicas, then to 2.
# Each change moves replicas in batches (status.reassignment; Ready False/Reassigning
# meanwhile) and ends with every partition's replicas in sync, as kafka-topics reports.
kubectl apply -n "$NS" -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"rf"},"spec":{"clusterRef":"demo","partitions":12,"replicationFactor":1}}'
wait_for "Topic rf Ready" 60 topic_ready rf
seq 1 3000 | kt kafka-console-producer --bootstrap-server "$BOOT" --topic rf --producer-property acks=all >/dev/null
# rf_in_sync RF: each of the 12 partitions has RF replicas, all in the ISR.
rf_in_sync() {
  kt kafka-topics --bootstrap-server "$BOOT" --describe --topic rf | awk -v rf="$1" '
    /Partition: / {
      n++; r = 0; s = 0
      for (i = 1; i < NF; i++) {
        # An empty list is followed by the next label ("Isr: \tElr: ...").
        if ($(i + 1) ~ /:$/) continue
        if ($i == "Replicas:") r = split($(i + 1), a, ",")
        if ($i == "Isr:") s = split($(i + 1), b, ",")
      }
      if (r != rf || s != rf) bad++
    }
    END { exit !(n == 12 && bad == 0) }'
}
rf_running() {
  [[ "$(jp topic/rf '{.status.reassignment.state}/{.status.reassignment.replicationFactor}/{.status.conditions[?(@.type=="Ready")].reason}')" == "Running/$1/Reassigning" ]]
}
rf_done() {
  topic_ready rf && [[ "$(jp topic/rf '{.status.reassignment.state}/{.status.replicationFactor}')" == "Done/$1" ]]
}
for want in 3 2; do
  t0=$(now)
  kubectl patch topic rf -n "$NS" --type merge -p "{\"spec\":{\"replicationFactor\":$want}}" >/dev/null
  wait_for "Topic rf reassigning to $want replicas" 60 rf_running "$want"
  log "rf progress: $(jp topic/rf '{.status.reassignment}')"
  wait_for "Topic rf Ready with $want replicas" 180 rf_done "$want"
  log "figure: replication factor of 12 partitions changed to $want in $(since "$t0")s: $(jp topic/rf '{.status.reassignment.message}')"
  wait_for "every partition of rf with $want in-sync replicas (kafka-topics)" 60 rf_in_sync "$want"
  expect "partitions moved = partitions to move" "$(jp topic/rf '{.status.reassignment.partitionsMoved}')" \
    "$(jp topic/rf '{.status.reassignment.partitionsToMove}')"
done
[[ -n "$(kubectl get events -n "$NS" --field-selector reason=ReplicationFactorChanged -o name)" ]] || fail "no ReplicationFactorChanged event"
got=$(kt kafka-console-consumer --bootstrap-server "$BOOT" --topic rf --from-beginning \
  --max-messages 3000 --timeout-ms 60000 2>/dev/null | sort -n | uniq | wc -l)
expect "records of topic rf readable after the changes" "$got" 3000
# Refused, changing nothing: more replicas than brokers, and fewer than the topic's
# min.insync.replicas (orders has min.insync.replicas=2).
rf_refused() { [[ "$(jp topic/"$1" '{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}')" == "False/$2" ]]; }
kubectl patch topic rf -n "$NS" --type merge -p '{"spec":{"replicationFactor":4}}' >/dev/null
wait_for "replication factor 4 on 3 brokers refused" 60 rf_refused rf TooFewBrokers
log "refused: $(jp topic/rf '{.status.conditions[?(@.type=="NotSupported")].message}')"
kubectl patch topic orders -n "$NS" --type merge -p '{"spec":{"replicationFactor":1}}' >/dev/null
wait_for "replication factor 1 below min.insync.replicas=2 refused" 60 rf_refused orders BelowMinInsyncReplicas
log "refused: $(jp topic/orders '{.status.conditions[?(@.type=="NotSupported")].message}')"
expect "orders keeps its replicas" "$(check topic "$BOOT" orders | grep -o '"replicationFactor":[0-9]*')" '"replicationFactor":3'
kubectl patch topic orders -n "$NS" --type merge -p '{"spec":{"replicationFactor":3}}' >/dev/null
kubectl patch topic rf -n "$NS" --type merge -p '{"spec":{"replicationFactor":2}}' >/dev/null
wait_for "Topic orders Ready again at 3 replicas" 60 topic_ready orders
wait_for "Topic rf Ready again at 2 replicas" 60 topic_ready rf
kubectl delete topic rf -n "$NS" --wait=true --timeout 60s >/dev/null

# Deleting a Topic deletes the broker topic through the finalizer.
expect "finalizer" "$(jp topic/orders '{.metadata.finalizers[0]}')" fjord.dev/topic
kubectl delete topic orders -n "$NS" --wait=true --timeout 60s >/dev/null
topic_gone() { ! check topic "$BOOT" orders; }
wait_for "topic orders deleted on the broker" 30 topic_gone

scaling_summary

# Deleting a broker pod: the harness stops the process, the StatefulSet brings it back.
old_uid=$(jp pod/demo-0 '{.metadata.uid}')
kubectl delete pod demo-0 -n "$NS" --wait=true --timeout 90s >/dev/null
new_pod() { [[ "$(jp pod/demo-0 '{.metadata.uid}')" != "$old_uid" ]] && cluster_ready && brokers_up 0,1,2; }
wait_for "broker pod recreated and cluster Ready again" 120 new_pod

# certs: the internal plane's mutual TLS, certificate and CA renewals under traffic.
source "$HERE/k8s/sections/certs.sh"

# topics-at-scale: many Topic resources applied at once, all Ready. The time is a
# figure, not a pass/fail timer (the wait's deadline only bounds a stuck run).
if (( K8S_TOPICS > 0 )); then
  for i in $(seq 1 "$K8S_TOPICS"); do
    printf -- '---\napiVersion: fjord.dev/v1alpha1\nkind: Topic\nmetadata: {name: bulk-%d}\nspec: {clusterRef: demo, partitions: 1}\n' "$i"
  done > "$WORK/bulk.yaml"
  t0=$(now)
  # Server-side apply: one request per object (client-side apply reads each first).
  kubectl apply --server-side -n "$NS" -f "$WORK/bulk.yaml" >/dev/null
  log "applied $K8S_TOPICS Topic objects in $(since "$t0")s"
  all_ready() {
    local n
    n=$(kubectl get topics -n "$NS" -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^bulk-.* True$')
    [[ "$n" -eq "$K8S_TOPICS" ]]
  }
  wait_for "$K8S_TOPICS Topics Ready" 900 all_ready
  echo "topics-at-scale: $K8S_TOPICS Topics Ready $(since "$t0")s after apply"
fi

metrics=$(operator_metrics)
grep -q 'fjord_operator_reconciles_total{kind="Topic"}' <<<"$metrics" || fail "operator /metrics lacks reconcile counts"
# Status writes must not wake the controllers: the ConsumerGroup (resync 10 s) is
# reconciled about once per resync, not in a loop.
group_reconciles=$(awk '/^fjord_operator_reconciles_total\{kind="ConsumerGroup"\}/ {print int($2)}' <<<"$metrics")
group_age=$(( $(date +%s) - group_applied ))
log "ConsumerGroup reconciled ${group_reconciles:-0} times in ${group_age}s"
(( ${group_reconciles:-0} <= group_age / 10 * 2 + 20 )) || fail "ConsumerGroup reconciled $group_reconciles times in ${group_age}s with resyncSeconds 10"

# Listeners: the secure cluster (TLS, SCRAM, client certificates, ACLs).
source "$HERE/k8s/sections/listeners.sh"
# Users on the secure cluster (after the listeners section, which applies it).
source "$HERE/k8s/sections/users.sh"

# Deleting the FjordCluster removes what it owns (garbage collection through owner
# references) and keeps the claims (storage.claimPolicyOnDelete: Retain).
kubectl delete fjordcluster demo -n "$NS" --wait=true --timeout 60s >/dev/null
owned_gone() { ! kubectl get statefulset/demo service/demo-bootstrap configmap/demo-config -n "$NS" 2>/dev/null | grep -q .; }
wait_for "StatefulSet, Services and ConfigMap of demo deleted" 120 owned_gone
expect "claims kept after the cluster is deleted" "$(jp pvc '{.items[*].metadata.name}')" "data-demo-0 data-demo-1 data-demo-2 data-demo-3 data-demo-4"
hardening_namespaced  # last: it re-installs the chart for one namespace
log "PASS"
echo "1 passed, 0 failed"
