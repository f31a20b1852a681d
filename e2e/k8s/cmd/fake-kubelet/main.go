// Command fake-kubelet stands in for the kubelet of one Node in the Kubernetes suite,
// which runs no real kubelet and no container runtime. It
//
//   - registers the Node (Ready, with capacity) and renews its Lease, so the real
//     scheduler binds pods to it and the node lifecycle controller leaves it alone;
//   - runs every bound pod whose container command is found in -bin-dir as a local
//     process: env and envFrom resolved (values, downward API fields and labels,
//     ConfigMap keys), $(VAR) references in command and args expanded, its own loopback
//     address 127.0.0.N as pod IP, and each PersistentVolumeClaim volume replaced by
//     the bound hostPath PV's directory (mount paths in args are rewritten to it);
//   - writes Secret and ConfigMap volumes into a per-pod directory as the kubelet
//     does (a `..data` symlink to a timestamped directory, one symlink per key), and
//     re-syncs them while the pod runs: a changed Secret is swapped in atomically by
//     renaming `..data`, so brokers see rotated certificates (projected.go). A pod
//     whose Secret does not exist yet waits, as with a real kubelet;
//   - writes pod status through the API server: Running, podIP, and Ready from the
//     container's readiness probe (httpGet); Succeeded or Failed with the exit code
//     once the process exits (no restarts: a `helm test` pod runs once);
//   - on pod deletion sends SIGTERM, then SIGKILL after the grace period, and removes
//     the pod object, as a kubelet does;
//   - plays the CSI external-resizer: a claim whose request grew past its capacity,
//     on a StorageClass that allows volume expansion, gets the new capacity on its
//     PersistentVolume and in its status (package resizer);
//   - plays cluster DNS: a marked block of /etc/hosts maps each pod's
//     <hostname>.<subdomain>.<ns>.svc name, and each Service's <svc>.<ns>.svc name to
//     the IP of a ready pod it selects (there is no kube-proxy).
//
// Pods whose command is not found (the operator's own Deployment, say) stay bound and
// Pending. Everything else a kubelet does (images, cgroups, other volume kinds,
// liveness probes, restarts) is out of scope.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"fjord.dev/e2e/k8s/resizer"
)

const hostsBegin = "# BEGIN fjord-e2e fake-kubelet"
const hostsEnd = "# END fjord-e2e fake-kubelet"

type running struct {
	cmd      *exec.Cmd
	ip       string
	done     chan struct{}
	exitCode int // set before done is closed
	ready    bool
	stopped  bool
}

type kubelet struct {
	cs      *kubernetes.Clientset
	node    string
	binDir  string
	logDir  string
	hosts   string
	mu      sync.Mutex
	pods    map[string]*running // by pod UID
	nextIP  int
	freeIPs []string
	// resourceVersion of each Secret or ConfigMap volume written, by "<pod uid>/<volume>"
	projected map[string]string
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	node := flag.String("node", "fjord-e2e-node", "name of the Node to register")
	binDir := flag.String("bin-dir", "", "directory holding the commands pods may run")
	logDir := flag.String("log-dir", "", "directory for pod logs")
	hosts := flag.String("hosts-file", "/etc/hosts", "hosts file whose marked block plays cluster DNS")
	resize := flag.Bool("resize", true, "play the CSI external-resizer for expandable claims (see resizer.go)")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	k := &kubelet{
		cs: kubernetes.NewForConfigOrDie(cfg), node: *node, binDir: *binDir,
		logDir: *logDir, hosts: *hosts, pods: map[string]*running{}, nextIP: 10,
		projected: map[string]string{},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := k.register(ctx); err != nil {
		log.Fatalf("registering node: %v", err)
	}
	log.Printf("fake-kubelet: node %s registered", k.node)
	go k.heartbeat(ctx)
	if *resize {
		go resizer.Loop(ctx, k.cs)
	}
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		k.sync(ctx)
		select {
		case <-ctx.Done():
			k.shutdown()
			return
		case <-ticker.C:
		}
	}
}

func (k *kubelet) register(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.node, Labels: map[string]string{
			"kubernetes.io/hostname": k.node, "kubernetes.io/os": "linux",
			"topology.kubernetes.io/zone": "zone-a",
		}},
	}
	_, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return k.nodeStatus(ctx)
}

func (k *kubelet) nodeStatus(ctx context.Context) error {
	node, err := k.cs.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	now := metav1.Now()
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "fake-kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	node.Status.NodeInfo.KubeletVersion = "fake"
	_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the node Lease and Ready condition, as the kubelet does every 10 s.
func (k *kubelet) heartbeat(ctx context.Context) {
	leases := k.cs.CoordinationV1().Leases("kube-node-lease")
	for {
		now := metav1.NewMicroTime(time.Now())
		dur := int32(40)
		lease, err := leases.Get(ctx, k.node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, &coordv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: k.node},
				Spec:       coordv1.LeaseSpec{HolderIdentity: &k.node, LeaseDurationSeconds: &dur, RenewTime: &now},
			}, metav1.CreateOptions{})
		} else if err == nil {
			lease.Spec.RenewTime = &now
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("node lease: %v", err)
		}
		if err := k.nodeStatus(ctx); err != nil && ctx.Err() == nil {
			log.Printf("node status: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
}

// sync is one pass of the pod loop: start new pods, probe, stop deleted ones.
func (k *kubelet) sync(ctx context.Context) {
	list, err := k.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + k.node})
	if err != nil {
		if ctx.Err() == nil {
			log.Printf("listing pods: %v", err)
		}
		return
	}
	seen := map[string]bool{}
	for i := range list.Items {
		pod := &list.Items[i]
		uid := string(pod.UID)
		seen[uid] = true
		k.mu.Lock()
		r := k.pods[uid]
		k.mu.Unlock()
		switch {
		case pod.DeletionTimestamp != nil:
			k.stop(ctx, pod, r)
		case r == nil && pod.Status.Phase == corev1.PodPending:
			k.start(ctx, pod)
		case r != nil && !r.stopped:
			k.refreshProjected(ctx, pod)
			k.probe(ctx, pod, r)
		}
	}
	// Pods removed without a graceful deletion: kill what is left of them.
	k.mu.Lock()
	for uid, r := range k.pods {
		if !seen[uid] {
			r.kill(0)
			k.freeIPs = append(k.freeIPs, r.ip)
			delete(k.pods, uid)
			k.forgetProjected(uid)
		}
	}
	k.mu.Unlock()
	k.writeHosts(ctx, list.Items)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

var labelRef = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`)

func fieldValue(pod *corev1.Pod, ip, path string) string {
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "status.podIP":
		return ip
	case "status.hostIP":
		return "127.0.0.1"
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	}
	if m := labelRef.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]]
		}
		return pod.Annotations[m[2]]
	}
	return ""
}

func (k *kubelet) allocIP() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.freeIPs); n > 0 {
		ip := k.freeIPs[n-1]
		k.freeIPs = k.freeIPs[:n-1]
		return ip
	}
	k.nextIP++
	return fmt.Sprintf("127.0.0.%d", k.nextIP)
}

// volumeDir is the host directory behind a pod volume: the bound PV's hostPath for a
// claim, or a per-pod scratch directory for anything else.
func (k *kubelet) volumeDir(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (string, error) {
	if v.PersistentVolumeClaim != nil {
		pvc, err := k.cs.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if pvc.Spec.VolumeName == "" {
			return "", fmt.Errorf("claim %s not bound yet", pvc.Name)
		}
		pv, err := k.cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if pv.Spec.HostPath == nil {
			return "", fmt.Errorf("volume %s is not a hostPath volume", pv.Name)
		}
		return pv.Spec.HostPath.Path, os.MkdirAll(pv.Spec.HostPath.Path, 0o755)
	}
	if v.Secret != nil || v.ConfigMap != nil {
		return k.project(ctx, pod, v)
	}
	dir := filepath.Join(k.logDir, "volumes", string(pod.UID), v.Name)
	return dir, os.MkdirAll(dir, 0o755)
}

// mountRewriter replaces each mount path in a string with the host directory behind it,
// in one pass, longest mount path first: a directory substituted for one mount is not
// rewritten again by another (a hostPath PV under /tmp and an emptyDir mounted at /tmp).
func mountRewriter(mounts map[string]string) *strings.Replacer {
	paths := make([]string, 0, len(mounts))
	for mountPath := range mounts {
		paths = append(paths, mountPath)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	pairs := make([]string, 0, 2*len(paths))
	for _, mountPath := range paths {
		pairs = append(pairs, mountPath, mounts[mountPath])
	}
	return strings.NewReplacer(pairs...)
}

func (k *kubelet) start(ctx context.Context, pod *corev1.Pod) {
	if len(pod.Spec.Containers) == 0 || len(pod.Spec.Containers[0].Command) == 0 {
		return
	}
	c := pod.Spec.Containers[0]
	bin := filepath.Join(k.binDir, filepath.Base(c.Command[0]))
	if _, err := os.Stat(bin); err != nil {
		return // not ours to run; stays Pending
	}
	// Resolve volumes first: a claim not yet bound means try again next pass.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Spec.Volumes {
			if v.Name == m.Name {
				dir, err := k.volumeDir(ctx, pod, v)
				if err != nil {
					log.Printf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
					return
				}
				mounts[m.MountPath] = dir
			}
		}
	}
	ip := k.allocIP()
	env := map[string]string{}
	var order []string
	set := func(name, value string) {
		if _, ok := env[name]; !ok {
			order = append(order, name)
		}
		env[name] = value
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			cm, err := k.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				log.Printf("pod %s/%s: configmap: %v", pod.Namespace, pod.Name, err)
				k.release(ip)
				return
			}
			keys := make([]string, 0, len(cm.Data))
			for key := range cm.Data {
				keys = append(keys, key)
			}
			sort.Strings(keys)
			for _, key := range keys {
				set(from.Prefix+key, cm.Data[key])
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, expand(e.Value, env))
		case e.ValueFrom.FieldRef != nil:
			set(e.Name, fieldValue(pod, ip, e.ValueFrom.FieldRef.FieldPath))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := k.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err == nil {
				set(e.Name, cm.Data[ref.Key])
			}
		}
	}
	replacer := mountRewriter(mounts)
	rewrite := func(s string) string {
		return replacer.Replace(expand(s, env))
	}
	var args []string
	for _, a := range append(append([]string{}, c.Command[1:]...), c.Args...) {
		args = append(args, rewrite(a))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, name := range order {
		cmd.Env = append(cmd.Env, name+"="+env[name])
	}
	logPath := filepath.Join(k.logDir, pod.Namespace+"_"+pod.Name+".log")
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Printf("pod log: %v", err)
		k.release(ip)
		return
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Printf("pod %s/%s: start: %v", pod.Namespace, pod.Name, err)
		k.release(ip)
		return
	}
	r := &running{cmd: cmd, ip: ip, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		r.exitCode = cmd.ProcessState.ExitCode()
		out.Close()
		close(r.done)
	}()
	k.mu.Lock()
	k.pods[string(pod.UID)] = r
	k.mu.Unlock()
	log.Printf("pod %s/%s: started %s %s as pid %d, ip %s", pod.Namespace, pod.Name, bin, strings.Join(args, " "), cmd.Process.Pid, ip)
	k.writeStatus(ctx, pod, r)
}

func (k *kubelet) release(ip string) {
	k.mu.Lock()
	k.freeIPs = append(k.freeIPs, ip)
	k.mu.Unlock()
}

func (k *kubelet) probe(ctx context.Context, pod *corev1.Pod, r *running) {
	select {
	case <-r.done:
		if !r.stopped {
			r.stopped = true
			r.ready = false
			log.Printf("pod %s/%s: process exited", pod.Namespace, pod.Name)
			k.writeStatus(ctx, pod, r)
		}
		return
	default:
	}
	c := pod.Spec.Containers[0]
	ready := true
	if p := c.ReadinessProbe; p != nil && p.HTTPGet != nil {
		port := p.HTTPGet.Port.IntValue()
		if p.HTTPGet.Port.Type == intstr.String {
			for _, cp := range c.Ports {
				if cp.Name == p.HTTPGet.Port.StrVal {
					port = int(cp.ContainerPort)
				}
			}
		}
		client := http.Client{Timeout: time.Second}
		resp, err := client.Get(fmt.Sprintf("http://%s:%d%s", r.ip, port, p.HTTPGet.Path))
		ready = err == nil && resp.StatusCode >= 200 && resp.StatusCode < 400
		if resp != nil {
			resp.Body.Close()
		}
	}
	podReady := false
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			podReady = cond.Status == corev1.ConditionTrue
		}
	}
	if ready != r.ready || podReady != ready {
		r.ready = ready
		k.writeStatus(ctx, pod, r)
	}
}

func (k *kubelet) writeStatus(ctx context.Context, pod *corev1.Pod, r *running) {
	now := metav1.Now()
	status := func(b bool) corev1.ConditionStatus {
		if b {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	fresh, err := k.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || fresh.UID != pod.UID {
		return
	}
	s := &fresh.Status
	s.Phase = corev1.PodRunning
	if r.stopped && r.exitCode == 0 {
		s.Phase = corev1.PodSucceeded
	} else if r.stopped {
		s.Phase = corev1.PodFailed
	}
	s.PodIP, s.PodIPs = r.ip, []corev1.PodIP{{IP: r.ip}}
	s.HostIP, s.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
	if s.StartTime == nil {
		s.StartTime = &now
	}
	s.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status(r.ready), LastTransitionTime: now},
		{Type: corev1.PodReady, Status: status(r.ready), LastTransitionTime: now},
	}
	c := fresh.Spec.Containers[0]
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: r.ready, Started: &[]bool{!r.stopped}[0]}
	if r.stopped {
		reason := "Error"
		if r.exitCode == 0 {
			reason = "Completed"
		}
		cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: int32(r.exitCode), Reason: reason, FinishedAt: now}
	} else {
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
	}
	s.ContainerStatuses = []corev1.ContainerStatus{cs}
	if _, err := k.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		log.Printf("pod %s/%s: status: %v", pod.Namespace, pod.Name, err)
	}
}

// kill sends SIGTERM to the process group, then SIGKILL after grace.
func (r *running) kill(grace time.Duration) {
	if r.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(grace):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

func (k *kubelet) stop(ctx context.Context, pod *corev1.Pod, r *running) {
	if r != nil {
		grace := 30 * time.Second
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
		log.Printf("pod %s/%s: deleting: SIGTERM, SIGKILL after %s", pod.Namespace, pod.Name, grace)
		r.kill(grace)
		k.mu.Lock()
		delete(k.pods, string(pod.UID))
		k.freeIPs = append(k.freeIPs, r.ip)
		k.forgetProjected(string(pod.UID))
		k.mu.Unlock()
	}
	zero := int64(0)
	err := k.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		log.Printf("pod %s/%s: final delete: %v", pod.Namespace, pod.Name, err)
	}
}

func (k *kubelet) shutdown() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.pods {
		r.kill(5 * time.Second)
	}
	k.replaceHosts(nil)
}

// writeHosts plays cluster DNS for pods and Services (see the package comment).
func (k *kubelet) writeHosts(ctx context.Context, pods []corev1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var lines []string
	readyIPs := map[string][]corev1.Pod{}
	for _, pod := range pods {
		r := k.pods[string(pod.UID)]
		if r == nil || r.stopped || pod.DeletionTimestamp != nil {
			continue
		}
		if pod.Spec.Hostname != "" && pod.Spec.Subdomain != "" {
			lines = append(lines, fmt.Sprintf("%s %s.%s.%s.svc %s.%s.%s.svc.cluster.local", r.ip,
				pod.Spec.Hostname, pod.Spec.Subdomain, pod.Namespace,
				pod.Spec.Hostname, pod.Spec.Subdomain, pod.Namespace))
		}
		if r.ready {
			readyIPs[pod.Namespace] = append(readyIPs[pod.Namespace], pod)
		}
	}
	svcs, err := k.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, svc := range svcs.Items {
			if len(svc.Spec.Selector) == 0 || svc.Spec.ClusterIP == corev1.ClusterIPNone {
				continue
			}
			sel := labels.SelectorFromSet(svc.Spec.Selector)
			for _, pod := range readyIPs[svc.Namespace] {
				if sel.Matches(labels.Set(pod.Labels)) {
					ip := k.pods[string(pod.UID)].ip
					lines = append(lines, fmt.Sprintf("%s %s.%s.svc %s.%s.svc.cluster.local", ip, svc.Name, svc.Namespace, svc.Name, svc.Namespace))
					break
				}
			}
		}
	}
	sort.Strings(lines)
	k.replaceHosts(lines)
}

func (k *kubelet) replaceHosts(lines []string) {
	data, err := os.ReadFile(k.hosts)
	if err != nil {
		log.Printf("hosts: %v", err)
		return
	}
	var kept []string
	inBlock := false
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		switch {
		case l == hostsBegin:
			inBlock = true
		case l == hostsEnd:
			inBlock = false
		case !inBlock:
			kept = append(kept, l)
		}
	}
	if len(lines) > 0 {
		kept = append(kept, hostsBegin)
		kept = append(kept, lines...)
		kept = append(kept, hostsEnd)
	}
	next := strings.Join(kept, "\n") + "\n"
	if next != string(data) {
		// In place, not by rename: /etc/hosts may be a bind mount.
		if err := os.WriteFile(k.hosts, []byte(next), 0o644); err != nil {
			log.Printf("hosts: %v", err)
		}
	}
}
