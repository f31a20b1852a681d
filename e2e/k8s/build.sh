#!/usr/bin/env bash
# Builds the Kubernetes control plane the suite runs against, from published Go modules
# only: kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from
# k8s.io/kubernetes (version pinned in go.mod), etcd from go.etcd.io/etcd/server/v3
# (cmd/etcd), and helm via `go install`. Binaries land in $FJORD_CACHE/k8s/bin and are
# rebuilt only when go.mod, go.sum, the helm version or the Go toolchain change.
#
# `build.sh node` builds, in addition, what the real-node tier (K8S_NODE=real, node.sh)
# runs: kubelet and kube-proxy from k8s.io/kubernetes at the same version (module
# node/go.mod, kept apart so that its pins never invalidate the control plane's stamp),
# into the same directory, stamped separately (.stamp-node); CoreDNS and rancher's
# local-path-provisioner by `go install` at the versions below.
#
# Prints the build time of each part; nothing here is timed against a limit.
set -euo pipefail

HELM_VERSION=v4.3.1
# The real node's cluster DNS and dynamic PersistentVolumes (build.sh node).
COREDNS_VERSION=v1.15.0
LOCAL_PATH_VERSION=v0.0.30
here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
cache=${FJORD_CACHE:-$HOME/.cache/fjord}/k8s
bin=$cache/bin
mkdir -p "$bin"
# One build at a time: a second suite started meanwhile waits, then finds the cache.
exec 9>"$bin/.lock"
flock 9

export GOTOOLCHAIN=local
export GOFLAGS="-trimpath -buildvcs=false"
# Two cores shared with others and a linker that takes gigabytes for kube-apiserver:
# build at most two packages at once.
par=${FJORD_GO_PARALLEL:-2}

stamp_of() {
    { cat "$self" "$here/go.mod" "$here/go.sum" "$here/cmd/etcd/main.go"; go version; echo "$HELM_VERSION"; } | sha256sum | cut -d' ' -f1
}
# Built outside their git tree, the commands would report v0.0.0-master; stamp the
# version from go.mod, as the release build does, so `--version`, discovery and helm's
# kubeVersion checks see the real one.
kver=$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")
minor=$(echo "$kver" | cut -d. -f2)
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

# build_node: kubelet and kube-proxy at the control plane's Kubernetes version, CoreDNS and
# local-path-provisioner.
build_node() {
    local nver want_node t0 t1 t2 t3
    nver=$(go -C "$here/node" list -m -f "{{.Version}}" k8s.io/kubernetes)
    if [[ $nver != "$kver" ]]; then
        echo "node/go.mod pins k8s.io/kubernetes $nver, go.mod $kver: they must match" >&2
        exit 1
    fi
    want_node=$({ cat "$self" "$here/node/go.mod" "$here/node/go.sum"; go version; } | sha256sum | cut -d' ' -f1)
    if [[ -f $bin/.stamp-node && $(cat "$bin/.stamp-node") == "$want_node" ]]; then
        echo "k8s node: cached in $bin"
        return
    fi
    t0=$(date +%s)
    (cd "$here/node" && go build -p "$par" -ldflags "$ldflags" -o "$bin/" \
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
    t1=$(date +%s)
    GOBIN=$bin go install -p "$par" "github.com/coredns/coredns@$COREDNS_VERSION"
    t2=$(date +%s)
    GOBIN=$bin go install -p "$par" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
    t3=$(date +%s)
    echo "k8s node built: kubelet and kube-proxy $kver in $((t1 - t0))s, coredns $COREDNS_VERSION in $((t2 - t1))s," \
        "local-path-provisioner $LOCAL_PATH_VERSION in $((t3 - t2))s"
    echo "$want_node" > "$bin/.stamp-node"
}

want=$(stamp_of)
if [[ -f $bin/.stamp && $(cat "$bin/.stamp") == "$want" ]]; then
    echo "k8s control plane: cached in $bin"
    if [[ ${1:-} == node ]]; then build_node; fi
    exit 0
fi

cd "$here"
t0=$(date +%s)
go build -p "$par" -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
t1=$(date +%s)
go build -p "$par" -o "$bin/etcd" ./cmd/etcd
t2=$(date +%s)
GOBIN=$bin go install -p "$par" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
t3=$(date +%s)
echo "k8s control plane built: kubernetes $(grep 'k8s.io/kubernetes v' go.mod | awk '{print $2}') in $((t1 - t0))s," \
    "etcd in $((t2 - t1))s, helm $HELM_VERSION in $((t3 - t2))s"
echo "$want" > "$bin/.stamp"
if [[ ${1:-} == node ]]; then build_node; fi
