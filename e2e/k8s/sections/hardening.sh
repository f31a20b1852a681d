# Hardened pods, NetworkPolicy, CEL on podTemplate and the namespaced chart; sourced by
# e2e/k8s.sh, which calls:
#
# - hardening_demo, once the demo cluster is Ready and before anything changes its pods
#   (config roll, storage growth, scaling): the rendered StatefulSet and NetworkPolicy
#   as the API server holds them, compared field by field with e2e/k8s/golden/ (after
#   dropping what the server makes up per object: uid, resourceVersion, timestamps,
#   managedFields, status); the broker pods under the Pod Security "restricted" profile;
#   podTemplate refusals by CEL; the namespaced `helm template` golden.
#   K8S_UPDATE_GOLDEN=1 rewrites the golden files, as for the helm-template one.
# - hardening_namespaced, at the end (it replaces the operator): the chart re-installed
#   with watchNamespaces={fjord-hardened}, no ClusterRole or ClusterRoleBinding of it,
#   the operator running as its ServiceAccount with only that RBAC, a FjordCluster and a
#   Topic reconciled in the watched namespace (which enforces the restricted profile)
#   and a Topic in another namespace left alone.
#
# Uses k8s.sh's helpers: log, fail, wait_for, expect, kubectl, helm, reject, check,
# operator_log, $WORK, $HERE, $CHART, $TARGET, $NS, $K8S_NODE, $OP_PORT, $OP_PID, PIDS.

GOLDEN="$HERE/k8s/golden"

# normalise KIND: the JSON of a `kubectl get -o json` on stdin, without what the API
# server assigns per object or per run, keys sorted.
normalise() {
  python3 -c '
import json, sys
o = json.load(sys.stdin)
o.pop("status", None)
m = o["metadata"]
for k in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
    m.pop(k, None)
for r in m.get("ownerReferences", []):
    r["uid"] = "<uid of the FjordCluster>"
tm = o.get("spec", {}).get("template", {}).get("metadata", {})
if tm.get("creationTimestamp", 0) is None:
    tm.pop("creationTimestamp")
for c in o.get("spec", {}).get("volumeClaimTemplates", []):
    c.pop("status", None)
    if c.get("metadata", {}).get("creationTimestamp", 0) is None:
        c["metadata"].pop("creationTimestamp")
print(json.dumps(o, indent=2, sort_keys=True))
'
}

# golden_check NAME OBJECT: OBJECT (kind/name in $NS) as the API server holds it against
# golden/NAME.json.
golden_check() {
  local name="$1" obj="$2" file="$GOLDEN/$1.json"
  kubectl get "$obj" -n "$NS" -o json | normalise > "$WORK/$name.json" || fail "reading $obj"
  if [[ -n "${K8S_UPDATE_GOLDEN:-}" ]]; then cp "$WORK/$name.json" "$file"; fi
  diff -u "$file" "$WORK/$name.json" || fail "$obj differs from $file (K8S_UPDATE_GOLDEN=1 rewrites it)"
  log "$obj matches $file"
}

hardening_demo() {
  golden_check statefulset statefulset/demo
  golden_check networkpolicy networkpolicy/demo-brokers
  expect "networkpolicy owner" "$(kubectl get networkpolicy demo-brokers -n "$NS" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}')" FjordCluster/demo/true

  # Pod Security admission says which running pods would break the "restricted"
  # profile (as warnings of a dry-run label); the brokers must not be among them.
  local warnings
  warnings=$(kubectl label namespace "$NS" --dry-run=server --overwrite \
    pod-security.kubernetes.io/enforce=restricted 2>&1 >/dev/null)
  if grep -q 'demo-[0-9]' <<<"$warnings"; then
    fail "broker pods violate the restricted Pod Security profile: $warnings"
  fi
  log "broker pods pass the restricted Pod Security profile${warnings:+ (other warnings: $warnings)}"

  reject "podTemplate env from a Secret" "podTemplate.env may not take values from Secrets" \
    patch fjordcluster demo --type merge \
    -p '{"spec":{"podTemplate":{"env":[{"name":"PASSWORD","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}}}'
  reject "podTemplate env setting a broker flag" "podTemplate.env may not set FJORD_* variables" \
    patch fjordcluster demo --type merge \
    -p '{"spec":{"podTemplate":{"env":[{"name":"FJORD_SUPER_USERS","value":"User:mallory"}]}}}'
  reject "podTemplate env shadowing POD_NAME" "podTemplate.env may not set POD_* variables" \
    patch fjordcluster demo --type merge \
    -p '{"spec":{"podTemplate":{"env":[{"name":"POD_NAME","value":"demo-9"}]}}}'
  # A plain value is a setting the CRD defines: accepted.
  kubectl patch fjordcluster demo -n "$NS" --type merge --dry-run=server \
    -p '{"spec":{"podTemplate":{"env":[{"name":"TZ","value":"UTC"}]}}}' >/dev/null \
    || fail "podTemplate env with a plain value refused"

  # The namespaced chart, rendered: Roles in the listed namespaces, nothing cluster-wide.
  local golden="$GOLDEN/helm-template-namespaced.yaml"
  helm template fjord "$CHART" --namespace fjord-system --set image.tag=test \
    --set 'watchNamespaces={team-a,team-b}' > "$WORK/template-namespaced.yaml"
  if [[ -n "${K8S_UPDATE_GOLDEN:-}" ]]; then cp "$WORK/template-namespaced.yaml" "$golden"; fi
  diff -u "$golden" "$WORK/template-namespaced.yaml" \
    || fail "namespaced helm template differs from $golden (K8S_UPDATE_GOLDEN=1 rewrites it)"
  if grep -qE '^kind: Cluster(Role|RoleBinding)$' "$WORK/template-namespaced.yaml"; then
    fail "the namespaced chart renders cluster-scoped RBAC"
  fi
  log "namespaced helm template matches $golden (no ClusterRole or ClusterRoleBinding)"
}

hardening_namespaced() {
  local watched=fjord-hardened other=fjord-unwatched
  if [[ $K8S_NODE == fake ]]; then
    kill "$OP_PID" 2>/dev/null || true
    wait "$OP_PID" 2>/dev/null || true
  fi
  helm uninstall fjord --namespace fjord-system --wait >/dev/null
  # The watched namespace enforces the restricted profile: the broker pods are created
  # only if they pass it.
  kubectl create namespace "$watched" >/dev/null
  kubectl label namespace "$watched" pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl create namespace "$other" >/dev/null
  # On the real node the operator is the chart's Deployment again; beside fake-kubelet
  # it runs on the host below, with the chart's ServiceAccount.
  local replicas=0; [[ $K8S_NODE == fake ]] || replicas=1
  helm install fjord "$CHART" --namespace fjord-system --set replicaCount=$replicas \
    --set topicResyncSeconds=5 --set logFormat=text \
    --set "watchNamespaces={$watched}" --wait --timeout 2m >/dev/null
  local cluster_wide
  cluster_wide=$(kubectl get clusterroles,clusterrolebindings -l app.kubernetes.io/instance=fjord -o name)
  [[ -z "$cluster_wide" ]] || fail "namespaced install created cluster-scoped RBAC: $cluster_wide"
  expect "Role in the watched namespace" "$(kubectl get role fjord-fjord-operator -n "$watched" -o name)" role.rbac.authorization.k8s.io/fjord-fjord-operator
  expect "no Role elsewhere" "$(kubectl get role fjord-fjord-operator -n "$other" -o name 2>/dev/null)" ""
  log "namespaced install: Role and RoleBinding in $watched only, no ClusterRole or ClusterRoleBinding"

  if [[ $K8S_NODE == fake ]]; then
    # The operator as the re-created ServiceAccount (a new token: the old one's account
    # is gone), watching $watched only.
    local token
    token=$(kubectl create token fjord-fjord-operator -n fjord-system --duration 1h)
    sed -i "s|token: \".*\"|token: \"$token\"|" "$WORK/operator.kubeconfig"
    KUBECONFIG="$WORK/operator.kubeconfig" POD_NAMESPACE=fjord-system POD_NAME=fjord-operator-e2e \
      RUST_LOG="${K8S_OPERATOR_LOG:-info,kube=warn}" \
      "$TARGET/debug/fjord-operator" --http-listen "127.0.0.1:$OP_PORT" --leader-elect true --log-format text \
        --topic-resync-seconds 5 --watch-namespaces "$watched" \
      >> "$WORK/logs/fjord-operator-namespaced.log" 2>&1 &
    OP_PID=$!
    PIDS+=("$OP_PID")
    operator_log() { cat "$WORK/logs/fjord-operator-namespaced.log"; }
    log "namespaced fjord-operator started (pid $OP_PID), watching $watched"
  fi

  local topic='{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"events"},"spec":{"clusterRef":"hardened","partitions":1,"replicationFactor":1}}'
  kubectl apply -n "$watched" -f - >/dev/null <<'EOF'
apiVersion: fjord.dev/v1alpha1
kind: FjordCluster
metadata: {name: hardened}
spec:
  replicas: 1
  image: fjord:0.1.0
  storage: {size: 1Gi}
EOF
  kubectl apply -n "$watched" -f - >/dev/null <<<"$topic"
  kubectl apply -n "$other" -f - >/dev/null <<<"$topic"
  hardened_ready() {
    [[ "$(kubectl get fjordcluster hardened -n "$watched" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
  }
  wait_for "FjordCluster hardened Ready in $watched (restricted Pod Security)" 180 hardened_ready
  expect "NetworkPolicy of hardened" "$(kubectl get networkpolicy hardened-brokers -n "$watched" -o jsonpath='{.metadata.ownerReferences[0].name}')" hardened
  local boot="hardened-bootstrap.$watched.svc:9092"
  events_on_broker() {
    [[ "$(kubectl get topic events -n "$watched" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] &&
      check topic "$boot" events | grep -q "\"partitions\":$1,"
  }
  wait_for "Topic events Ready in $watched, 1 partition on the broker" 60 events_on_broker 1
  kubectl patch topic events -n "$watched" --type merge -p '{"spec":{"partitions":2}}' >/dev/null
  wait_for "Topic events grown to 2 partitions by the namespaced operator" 60 events_on_broker 2
  # The same Topic in a namespace the operator does not watch: no finalizer, no status.
  expect "Topic in $other left alone" \
    "$(kubectl get topic events -n "$other" -o jsonpath='{.metadata.finalizers}/{.status}')" "/"
  if operator_log | grep -q "forbidden"; then
    fail "the namespaced operator was refused by RBAC: $(operator_log | grep -m3 forbidden)"
  fi
  log "namespaced operator reconciled $watched and left $other alone"
  kubectl delete topic events -n "$other" --wait=false >/dev/null
}
