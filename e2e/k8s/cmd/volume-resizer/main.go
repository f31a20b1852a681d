// Command volume-resizer grows the claims of the real node's directory volumes
// (local-path-provisioner's), which no driver expands: package resizer's loop, as the
// CSI external-resizer and kubelet's file system resize would for a driver that can.
// fake-kubelet runs the same loop for its hostPath volumes.
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"fjord.dev/e2e/k8s/resizer"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("volume-resizer: watching claims")
	resizer.Loop(ctx, kubernetes.NewForConfigOrDie(cfg))
}
