//go:build tools

// Package tools pins the node commands the real-node tier of the Kubernetes suite
// builds (kubelet and kube-proxy, same k8s.io/kubernetes version as ../go.mod), so that
// `go mod tidy` keeps their dependencies in go.sum. The commands are built by
// ../build.sh when K8S_NODE=real.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
