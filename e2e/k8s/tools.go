//go:build tools

// Package tools pins the control-plane commands this suite builds, so that `go mod
// tidy` keeps their dependencies in go.sum. The commands are built by build.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
