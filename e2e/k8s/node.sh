# The real nodes of the Kubernetes suite (K8S_NODE=real), sourced by e2e/k8s.sh after the
# control plane is up: two Nodes on this machine, fjord-e2e-node and fjord-e2e-node-2,
# each with its own containerd (Debian's) and runc, CNI bridge (Debian's
# containernetworking-plugins: bridge and host-local) and kubelet (built by build.sh node
# at the control plane's version); one kube-proxy, CoreDNS and local-path-provisioner
# serve both. Two, so that a node can be drained: its pods go to the other one.
#
# Everything it creates lives under $WORK/node or is named here, and node_stop removes
# it. Node I (0 or 1) has: containerd's root, state and socket, its CNI configuration,
# kubelet's root and the pod logs under $WORK/node/nI; the bridge fjordI with
# 10.244.I.1/24 (the node's IP; its pods get 10.244.I.2-254 from host-local); the cgroup
# fjord-e2e (node 0) or fjord-e2e-2 (node 1) in each cgroup v1 hierarchy (its kubelet's
# cgroupRoot). Shared: a route sending the Service range (10.0.0.0/24) to fjord0, so a
# Service IP that kube-proxy has not translated yet stays on this machine; the iptables
# chain FJORD-E2E-NODE, first in FORWARD, which passes what pods send each other (on
# either bridge) and drops anything else a pod sends through the host (pods talk to each
# other and to the host only), and FJORD-E2E-NODE-IN, which keeps the API server's port
# to loopback and the bridges; the CNI network namespaces containerd made; kube-proxy's
# chains (kube-proxy --cleanup). The nodes share this machine's file system, and
# local-path-provisioner is told so (sharedFileSystemPath): its volumes carry no node
# affinity, as network storage would not, and a pod drained off one node mounts its
# volume on the other.
#
# Images: nothing is pulled. The broker and operator images that e2e/images.sh builds
# with docker, and a pause image built here from kubernetes' pause.c, are saved from
# docker and imported into containerd's k8s.io namespace; every registry containerd
# knows of is pointed at 127.0.0.1:9, so a missing image fails to pull instead of
# reaching out.
#
# Needs (from k8s.sh): WORK, BIN, CACHE, pki (with ca.crt and ca.key), API_PORT, log,
# fail, wait_for. Provides node_start, node_stop, node_task_pid, NODE_NAMES, and
# NODE_NAME, NODE_IP and NODE_BRIDGE of node 0 (where CoreDNS listens).

NODE_NAMES=(fjord-e2e-node fjord-e2e-node-2)
NODE_NAME=${NODE_NAMES[0]}
NODE_BRIDGE=fjord0
NODE_IP=10.244.0.1
NODE_CLUSTER_CIDR=10.244.0.0/16
NODE_SERVICE_CIDR=10.0.0.0/24
NODE_CHAIN=FJORD-E2E-NODE
NODE_PAUSE_IMAGE=fjord.dev/e2e/pause:3.10
# Debian's busybox-static as an image: local-path-provisioner's helper pods (mkdir, rm)
# and the DNS checks (nslookup) run it.
NODE_BUSYBOX_IMAGE=fjord.dev/e2e/busybox:1.35
NODE_STORAGE_NS=local-path-storage
# The suite's clients as an image: fjord-check and scaling-workload from the build
# ($TARGET/debug) on the Kafka tools image; tagged by the content, so a new build makes
# a new image.
NODE_CLIENTS_REPO=fjord.dev/e2e/clients
# Kafka's own command-line tools as an image: `kafka-tool NAME ARGS` runs one of
# e2e/apache-kafka/tools.tsv on the Maven Central jars of e2e/apache-kafka.sh's
# classpath, with a Java runtime made by jlink from the host's JDK, plus busybox and
# Debian's openssl, on the broker's runtime base. Tagged by its content.
NODE_TOOLS_REPO=fjord.dev/e2e/kafka-tools
# The JDK modules Kafka's tools load (java.desktop for java.beans, which log4j uses).
NODE_JRE_MODULES=java.base,java.desktop,java.logging,java.management,java.naming,java.net.http,java.security.jgss,java.security.sasl,java.sql,java.xml,jdk.crypto.ec,jdk.management,jdk.naming.dns,jdk.security.auth,jdk.security.jgss,jdk.unsupported,jdk.zipfs
# kubelet, kube-proxy, CoreDNS, the provisioner: stopped before the containerds.
NODE_PIDS=()
NODE_CONTAINERD_PIDS=()
NODE_NETNS_BEFORE=""

# node_vars I: node I's name (N_NAME), bridge (N_BRIDGE), IP (N_IP), pod range (N_CIDR),
# directory (N_DIR), cgroup (N_CGROUP) and kubelet healthz port (N_HEALTHZ).
node_vars() {
  local i=$1 suffix=""
  (( i == 0 )) || suffix="-$((i + 1))"
  N_NAME=${NODE_NAMES[$i]}
  N_BRIDGE="fjord$i"
  N_IP="10.244.$i.1"
  N_CIDR="10.244.$i.0/24"
  N_DIR="$WORK/node/n$i"
  N_CGROUP="fjord-e2e$suffix"
  N_HEALTHZ=$((10248 - 2 * i))
}
# node_ctr I ARGS...: ctr on node I's containerd.
node_ctr() { local i=$1; shift; ctr --address "$WORK/node/n$i/containerd/containerd.sock" -n k8s.io "$@"; }
# node_task_pid CONTAINER_ID: the host pid of a running container, on whichever node.
node_task_pid() {
  local i
  for i in "${!NODE_NAMES[@]}"; do
    node_ctr "$i" tasks ls 2>/dev/null | awk -v c="${1#containerd://}" '$1 == c {print $2; f = 1} END {exit !f}' && return 0
  done
  return 1
}

# node_cert NAME SUBJECT: a client certificate signed by the suite's CA, and a kubeconfig
# for it.
node_cert() {
  local name="$1" subject="$2" dir="$WORK/node"
  openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -out "$dir/$name.crt" 2>/dev/null
  cat > "$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$dir/$name.crt", client-key: "$dir/$name.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: $name}
current-context: e2e
EOF
}

# node_debs DIR PACKAGE...: Debian packages, downloaded once into DIR/debs.
node_debs() {
  local dir="$1/debs" p; shift
  mkdir -p "$dir"
  for p in "$@"; do
    compgen -G "$dir/${p}_*.deb" >/dev/null && continue
    (cd "$dir" && apt-get -qq -o APT::Sandbox::User=root download "$p" >/dev/null 2>&1) || fail "apt-get download $p"
  done
}

# node_tools_image DIR: NODE_TOOLS_IMAGE, built when missing (its parts cached in DIR).
node_tools_image() {
  local dir="$1" root="$WORK/node/tools-image/root" cp tag p
  cp="$("$ROOT/e2e/apache-kafka.sh" classpath)" || fail "Kafka's classpath"
  tag=$( { echo "$NODE_JRE_MODULES"; java -version 2>&1; sha256sum "$NODE_BUSYBOX" "$ROOT/e2e/apache-kafka/tools.tsv"; tr ':' '\n' <<<"$cp" | xargs sha256sum; } | sha256sum | cut -c1-12)
  NODE_TOOLS_IMAGE="$NODE_TOOLS_REPO:$tag"
  docker image inspect "$NODE_TOOLS_IMAGE" >/dev/null 2>&1 && return 0
  log "building $NODE_TOOLS_IMAGE (Java runtime, Kafka's jars)"
  rm -rf "$WORK/node/tools-image"; mkdir -p "$root/opt/kafka/libs" "$root/usr/local/bin" "$root/bin"
  # libstdc++ and zlib for the JVM, openssl (and its libssl3) for the TLS checks.
  node_debs "$dir" libstdc++6 zlib1g libssl3 openssl
  for p in libstdc++6 zlib1g libssl3 openssl; do dpkg-deb -x "$dir"/debs/"${p}"_*.deb "$root"; done
  rm -rf "$root/usr/share" "$root/usr/lib/ssl/misc"
  jlink --add-modules "$NODE_JRE_MODULES" --strip-debug --no-header-files --no-man-pages --compress=2 \
    --output "$root/opt/java" || fail "jlink"
  tr ':' '\n' <<<"$cp" | xargs -I{} cp {} "$root/opt/kafka/libs/"
  cp "$ROOT/e2e/apache-kafka/tools.tsv" "$root/opt/kafka/tools.tsv"
  cp "$NODE_BUSYBOX" "$root/bin/busybox"
  cat > "$root/usr/local/bin/kafka-tool" <<'SH'
#!/bin/sh
# kafka-tool NAME ARGS...: Kafka's command-line tool NAME, as its kafka-NAME.sh runs it.
class=$(awk -F'\t' -v n="$1" '$1 == n {print $2}' /opt/kafka/tools.tsv)
[ -n "$class" ] || { echo "kafka-tool: unknown tool $1" >&2; exit 2; }
shift
exec /opt/java/bin/java -Xmx256m -Dlog4j2.level=warn -cp '/opt/kafka/libs/*' "$class" "$@"
SH
  chmod +x "$root/usr/local/bin/kafka-tool"
  printf 'FROM %s\nCOPY root/ /\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' fjord-base:bookworm > "$WORK/node/tools-image/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$NODE_TOOLS_IMAGE" "$WORK/node/tools-image" >/dev/null 2>&1 \
    || fail "docker build $NODE_TOOLS_IMAGE"
  rm -rf "$WORK/node/tools-image"
  docker images --format '{{.Repository}}:{{.Tag}}' "$NODE_TOOLS_REPO" | grep -vx "$NODE_TOOLS_IMAGE" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
}

# node_images: the images the node runs, as one docker-save archive in the cache, made
# again only when one of the images changed.
node_images() {
  local version; version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
  NODE_BROKER_IMAGE="fjord:$version"
  NODE_OPERATOR_IMAGE="fjord-operator:$version"
  local dir="$CACHE/k8s/images"; mkdir -p "$dir"
  # Built from this checkout, or found current (the builds are cached).
  IMAGES_BUILD_ONLY=1 "$ROOT/e2e/images.sh" > "$WORK/logs/images.log" 2>&1 ||
    { tail -n 20 "$WORK/logs/images.log"; fail "e2e/images.sh"; }
  if ! docker image inspect "$NODE_PAUSE_IMAGE" >/dev/null 2>&1; then
    local src; src="$(cd "$HERE/k8s/node" && GOTOOLCHAIN=local go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    mkdir -p "$WORK/node/pause"
    gcc -Os -static -o "$WORK/node/pause/pause" "$src" || fail "gcc $src"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$WORK/node/pause/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$NODE_PAUSE_IMAGE" "$WORK/node/pause" >/dev/null 2>&1 || fail "docker build $NODE_PAUSE_IMAGE"
  fi
  NODE_BUSYBOX="$dir/busybox"
  if [[ ! -x $NODE_BUSYBOX ]]; then
    mkdir -p "$WORK/node/busybox"
    (cd "$WORK/node/busybox" && apt-get download busybox-static >/dev/null 2>&1 && dpkg-deb -x busybox-static_*.deb x) \
      || fail "apt-get download busybox-static"
    cp "$WORK/node/busybox/x/bin/busybox" "$NODE_BUSYBOX"
  fi
  if ! docker image inspect "$NODE_BUSYBOX_IMAGE" >/dev/null 2>&1; then
    mkdir -p "$WORK/node/busybox-image"
    cp "$NODE_BUSYBOX" "$WORK/node/busybox-image/busybox"
    printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > "$WORK/node/busybox-image/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$NODE_BUSYBOX_IMAGE" "$WORK/node/busybox-image" >/dev/null 2>&1 \
      || fail "docker build $NODE_BUSYBOX_IMAGE"
  fi
  node_tools_image "$dir"
  local clients="$WORK/node/clients-image" tag
  mkdir -p "$clients/root/usr/local/bin"
  objcopy --strip-debug "$TARGET/debug/fjord-check" "$clients/root/usr/local/bin/fjord-check"
  objcopy --strip-debug "$TARGET/debug/scaling-workload" "$clients/root/usr/local/bin/scaling-workload"
  tag=$( { echo "$NODE_TOOLS_IMAGE"; cd "$clients/root" && find . -type f | sort | xargs sha256sum; } | sha256sum | cut -c1-12)
  NODE_CLIENTS_IMAGE="$NODE_CLIENTS_REPO:$tag"
  if ! docker image inspect "$NODE_CLIENTS_IMAGE" >/dev/null 2>&1; then
    printf 'FROM %s\nCOPY root/ /\n' "$NODE_TOOLS_IMAGE" > "$clients/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$NODE_CLIENTS_IMAGE" "$clients" >/dev/null 2>&1 \
      || fail "docker build $NODE_CLIENTS_IMAGE"
    # Older client images of this suite: replaced by this one.
    docker images --format '{{.Repository}}:{{.Tag}}' "$NODE_CLIENTS_REPO" | grep -vx "$NODE_CLIENTS_IMAGE" \
      | xargs -r docker rmi >/dev/null 2>&1 || true
  fi
  local images=("$NODE_BROKER_IMAGE" "$NODE_OPERATOR_IMAGE" "$NODE_PAUSE_IMAGE" "$NODE_BUSYBOX_IMAGE" "$NODE_CLIENTS_IMAGE")
  local ids; ids="$(docker image inspect -f '{{.Id}}' "${images[@]}" | sha256sum | cut -c1-16)"
  NODE_IMAGES_TAR="$dir/node-images-$ids.tar"
  if [[ ! -f $NODE_IMAGES_TAR ]]; then
    rm -f "$dir"/node-images-*.tar
    docker save -o "$NODE_IMAGES_TAR.tmp" "${images[@]}" && mv "$NODE_IMAGES_TAR.tmp" "$NODE_IMAGES_TAR"
  fi
}

# node_network: both bridges, the Service route, the suite's iptables chains.
node_network() {
  local i
  for i in "${!NODE_NAMES[@]}"; do
    node_vars "$i"
    # The bridge exists before the first pod, so the node has its IP from the start; the
    # bridge plugin finds and uses it.
    ip link add "$N_BRIDGE" type bridge || fail "ip link add $N_BRIDGE type bridge"
    ip addr add "$N_IP/24" dev "$N_BRIDGE"
    ip link set "$N_BRIDGE" up
    mkdir -p "$N_DIR/cni/net.d" "$N_DIR/cni/ipam"
    cat > "$N_DIR/cni/net.d/10-fjord-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "fjord-e2e",
  "plugins": [{
    "type": "bridge", "bridge": "$N_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$N_DIR/cni/ipam",
             "ranges": [[{"subnet": "$N_CIDR", "gateway": "$N_IP"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
  done
  ip route add "$NODE_SERVICE_CIDR" dev "$NODE_BRIDGE"
  iptables -w -N "$NODE_CHAIN"
  # Frames between two pods cross a bridge, or the host between the two bridges, and
  # with br_netfilter on (as here) both go through iptables' FORWARD chain, whose policy
  # docker sets to DROP: without this ACCEPT, pods reach the host but not each other
  # (brokers wait for their quorum).
  iptables -w -A "$NODE_CHAIN" -i fjord+ -o fjord+ -j ACCEPT
  iptables -w -A "$NODE_CHAIN" -i fjord+ -j DROP
  iptables -w -I FORWARD 1 -j "$NODE_CHAIN"
  # The API server listens on every address for the pods' sake (k8s.sh): only loopback
  # and the bridges may reach it.
  iptables -w -N "$NODE_CHAIN-IN"
  iptables -w -A "$NODE_CHAIN-IN" -i lo -j RETURN
  iptables -w -A "$NODE_CHAIN-IN" -i fjord+ -j RETURN
  iptables -w -A "$NODE_CHAIN-IN" -p tcp --dport "$API_PORT" -j DROP
  iptables -w -I INPUT 1 -j "$NODE_CHAIN-IN"
}

# node_containerd I: node I's containerd, the images imported into it.
node_containerd() {
  node_vars "$1"
  local i=$1 dir="$N_DIR/containerd" reg
  mkdir -p "$dir/root" "$dir/state" "$dir/certs.d"
  # No registry is reachable from here, and none may be tried.
  for reg in _default docker.io registry.k8s.io fjord.dev; do
    mkdir -p "$dir/certs.d/$reg"
    printf 'server = "http://127.0.0.1:9"\n' > "$dir/certs.d/$reg/hosts.toml"
  done
  cat > "$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  # This sandbox's bounding set lacks CAP_SYS_RESOURCE, so no process here can lower an
  # oom_score_adj (echo -998 > /proc/self/oom_score_adj: Permission denied). kubelet asks
  # -998 for every pod sandbox and -997 for Guaranteed containers, and runc then fails
  # with "can't get final child's PID from pipe: EOF". Restricted, containerd raises such
  # requests to its own score (0).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
  containerd --config "$dir/config.toml" > "$WORK/logs/containerd-$N_NAME.log" 2>&1 &
  NODE_CONTAINERD_PIDS+=($!)
  log "containerd $(containerd --version | awk '{print $3}') of $N_NAME started (pid $!)"
  wait_for "containerd socket of $N_NAME" 30 node_ctr "$i" version
  local t0; t0=$(now)
  node_ctr "$i" images import "$NODE_IMAGES_TAR" >/dev/null || fail "ctr images import $NODE_IMAGES_TAR"
  log "images imported into $N_NAME's containerd in $(since "$t0")s: $(node_ctr "$i" images ls -q | grep -v '^sha256:' | paste -sd' ')"
}

# node_cgroups I: node I's kubelet cgroupRoot, one directory per cgroup v1 hierarchy;
# cpuset needs its cpus and mems before anything can join it.
node_cgroups() {
  node_vars "$1"
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -f $h/cgroup.procs && $(basename "$h") != unified ]] || continue
    mkdir -p "$h$N_CGROUP"
  done
  if [[ -d /sys/fs/cgroup/cpuset/$N_CGROUP ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/$N_CGROUP/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/$N_CGROUP/cpuset.mems"
  fi
}

# node_kubelet I: node I's kubelet.
node_kubelet() {
  node_vars "$1"
  local dir="$N_DIR" name="kubelet-$1"
  mkdir -p "$dir/kubelet" "$dir/pod-logs"
  node_cert "$name" "/O=system:nodes/CN=system:node:$N_NAME"
  cat > "$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine's cgroups are v1; kubelet 1.35+ refuses them unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$N_CGROUP
failSwapOn: false
address: $N_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $N_HEALTHZ
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
# Pods get the cluster's DNS only, never the host's resolvers.
resolvConf: ""
podCIDR: $N_CIDR
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
podLogsDir: $dir/pod-logs
# The shared disk of this machine is fuller than kubelet's defaults allow (imagefs 15%).
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# Secret volumes (the brokers' certificates, renewed every 20 s in the certs section)
# follow their Secret within a pod sync.
syncFrequency: 5s
maxPods: 60
EOF
  "$BIN/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$WORK/node/$name.kubeconfig" \
    --root-dir "$dir/kubelet" --hostname-override "$N_NAME" --node-ip "$N_IP" --v 2 \
    > "$WORK/logs/kubelet-$N_NAME.log" 2>&1 &
  NODE_PIDS+=($!)
  log "kubelet $("$BIN/kubelet" --version | awk '{print $2}') of $N_NAME started (pid $!)"
}

node_proxy() {
  local dir="$WORK/node"
  node_cert kube-proxy "/CN=system:kube-proxy"
  cat > "$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$dir/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["10.244.0.1/32", "10.244.1.1/32"]
# Leave the host's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  "$BIN/kube-proxy" --config "$dir/kube-proxy.yaml" --v 2 > "$WORK/logs/kube-proxy.log" 2>&1 &
  NODE_PIDS+=($!)
  log "kube-proxy started (pid $!)"
}

# node_dns: CoreDNS as a process of the node, serving cluster.local (kubernetes plugin)
# on the node's IP, which kubelet gives pods as their nameserver. Nothing else is
# resolved: there is no forward plugin, so no query leaves the machine.
node_dns() {
  local dir="$WORK/node"
  cat > "$dir/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $KUBECONFIG e2e
        pods insecure
        ttl 5
    }
}
EOF
  "$BIN/coredns" -conf "$dir/Corefile" > "$WORK/logs/coredns.log" 2>&1 &
  NODE_PIDS+=($!)
  log "coredns $("$BIN/coredns" -version | head -1 | awk '{print $1}') started on $NODE_IP:53 (pid $!)"
  wait_for "cluster DNS answers kubernetes.default.svc.cluster.local" 60 \
    "$NODE_BUSYBOX" nslookup kubernetes.default.svc.cluster.local "$NODE_IP"
}

# node_storage: rancher's local-path-provisioner as a process of the nodes, its volumes
# under $WORK/node/local-path, shared by both nodes (no node affinity); its helper pods
# (busybox) make each volume's directory
# (mode 0777) and remove it. StorageClass local-path, the default, binds on first use.
node_storage() {
  local dir="$WORK/node"
  mkdir -p "$dir/local-path"
  kubectl create namespace "$NODE_STORAGE_NS" >/dev/null
  kubectl create serviceaccount local-path-provisioner -n "$NODE_STORAGE_NS" >/dev/null
  printf '{"sharedFileSystemPath": "%s"}\n' "$dir/local-path" > "$dir/local-path.json"
  cat > "$dir/local-path-helper.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: helper-pod}
spec:
  priorityClassName: system-node-critical
  containers:
  - {name: helper-pod, image: $NODE_BUSYBOX_IMAGE, imagePullPolicy: IfNotPresent}
EOF
  kubectl create configmap local-path-config -n "$NODE_STORAGE_NS" \
    --from-file config.json="$dir/local-path.json" --from-file helperPod.yaml="$dir/local-path-helper.yaml" \
    --from-literal setup=$'#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n' \
    --from-literal teardown=$'#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n' >/dev/null
  "$BIN/local-path-provisioner" start --kubeconfig "$KUBECONFIG" --namespace "$NODE_STORAGE_NS" \
    --config "$dir/local-path.json" --helper-pod-file "$dir/local-path-helper.yaml" \
    --configmap-name local-path-config --service-account-name local-path-provisioner \
    --provisioner-name rancher.io/local-path --helper-image "$NODE_BUSYBOX_IMAGE" \
    > "$WORK/logs/local-path-provisioner.log" 2>&1 &
  NODE_PIDS+=($!)
  log "local-path-provisioner started (pid $!)"
  # Its volumes are directories, which it cannot expand: volume-resizer grows their
  # claims (e2e/k8s/resizer).
  "$BIN/volume-resizer" -kubeconfig "$KUBECONFIG" > "$WORK/logs/volume-resizer.log" 2>&1 &
  NODE_PIDS+=($!)
  log "volume-resizer started (pid $!)"
  kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
}

node_start() {
  mkdir -p "$WORK/node"
  command -v containerd >/dev/null && command -v runc >/dev/null || fail "containerd and runc (Debian's) are needed"
  if [[ ! -x /usr/lib/cni/bridge ]]; then
    log "installing containernetworking-plugins from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containernetworking-plugins >/dev/null \
      || fail "apt-get install containernetworking-plugins"
  fi
  node_images
  node_network
  NODE_NETNS_BEFORE="$( (ls /var/run/netns 2>/dev/null || true) | sort)"
  local i
  for i in "${!NODE_NAMES[@]}"; do
    node_containerd "$i"
    node_cgroups "$i"
    node_kubelet "$i"
  done
  node_proxy
  node_dns
  node_storage
  for i in "${!NODE_NAMES[@]}"; do
    wait_for "node ${NODE_NAMES[$i]} Ready" 180 bash -c \
      "\"$BIN/kubectl\" get node ${NODE_NAMES[$i]} -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  done
}

# node_kubelet_chains_remove: the chains kubelet keeps in iptables and ip6tables
# (KUBE-FIREWALL, which drops outside packets to 127.0.0.0/8, and its canaries), which
# kube-proxy --cleanup leaves. Only one suite runs on a machine (the suite's lock).
node_kubelet_chains_remove() {
  local cmd table chain
  for cmd in iptables ip6tables; do
    for table in filter nat mangle; do
      for chain in INPUT OUTPUT; do
        while $cmd -w -t "$table" -D "$chain" -j KUBE-FIREWALL 2>/dev/null; do :; done
      done
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        $cmd -w -t "$table" -F "$chain" 2>/dev/null && $cmd -w -t "$table" -X "$chain" 2>/dev/null
      done
    done
  done
}

# node_stop: kubelets first (nothing restarts after them), then every container and the
# runtimes, then what they left: mounts, network namespaces, cgroups, the network.
node_stop() {
  set +e  # clean up as much as there is, whatever fails
  local pid i
  [[ -d $WORK/node ]] || return 0
  for (( i=${#NODE_PIDS[@]}-1; i>=0; i-- )); do  # the provisioner ... kubelets; containerds last
    kill "${NODE_PIDS[$i]}" 2>/dev/null && wait "${NODE_PIDS[$i]}" 2>/dev/null
  done
  local n c
  for n in "${!NODE_NAMES[@]}"; do
    node_ctr "$n" version >/dev/null 2>&1 || continue
    for c in $(node_ctr "$n" tasks ls -q 2>/dev/null); do node_ctr "$n" tasks kill -s SIGKILL "$c" >/dev/null 2>&1; done
    for c in $(node_ctr "$n" tasks ls -q 2>/dev/null); do node_ctr "$n" tasks rm -f "$c" >/dev/null 2>&1; done
  done
  for pid in "${NODE_CONTAINERD_PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  # Shims of these containerds that outlived them, by their -address argument.
  for pid in $(grep -lsF -- "$WORK/node/n" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    grep -qsF "containerd.sock" "/proc/$pid/cmdline" && kill -KILL "$pid" 2>/dev/null
  done
  # Mounts under the work dir, deepest first.
  awk -v w="$WORK/node/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  local ns
  for ns in $(comm -13 <(echo "$NODE_NETNS_BEFORE") <( (ls /var/run/netns 2>/dev/null || true) | sort)); do
    [[ $ns == cni-* ]] || continue
    umount "/var/run/netns/$ns" 2>/dev/null; rm -f "/var/run/netns/$ns"
  done
  "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  node_kubelet_chains_remove
  local h d
  for n in "${!NODE_NAMES[@]}"; do
    node_vars "$n"
    for h in /sys/fs/cgroup/*/; do
      [[ -d $h$N_CGROUP ]] || continue
      find "$h$N_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  iptables -w -D FORWARD -j "$NODE_CHAIN" 2>/dev/null
  iptables -w -F "$NODE_CHAIN" 2>/dev/null && iptables -w -X "$NODE_CHAIN" 2>/dev/null
  iptables -w -D INPUT -j "$NODE_CHAIN-IN" 2>/dev/null
  iptables -w -F "$NODE_CHAIN-IN" 2>/dev/null && iptables -w -X "$NODE_CHAIN-IN" 2>/dev/null
  ip route del "$NODE_SERVICE_CIDR" dev "$NODE_BRIDGE" 2>/dev/null
  for n in "${!NODE_NAMES[@]}"; do
    node_vars "$n"
    # Pod ends of the bridge whose namespace is still held somewhere.
    for d in $(ls "/sys/class/net/$N_BRIDGE/brif" 2>/dev/null); do ip link del "$d" 2>/dev/null; done
    ip link del "$N_BRIDGE" 2>/dev/null
  done
  return 0
}
