package main

// Secret and ConfigMap volumes, written as the kubelet writes them (its atomic writer):
// the files of one version live in a timestamped directory `..<time>`, the symlink
// `..data` points at it, and each key is a symlink `<key>` -> `..data/<key>`. A new
// version is a new directory and one rename of a `..data_tmp` symlink over `..data`,
// so a reader sees all old or all new files, never a mix; brokers watching their
// certificate files see the rotation as the file behind the path changing.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// projectedSource reads the data of a Secret or ConfigMap volume: files by relative
// path, their mode, and the object's resourceVersion (to notice changes).
func (k *kubelet) projectedSource(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (map[string][]byte, os.FileMode, string, error) {
	var data map[string][]byte
	var items []corev1.KeyToPath
	var mode *int32
	var optional bool
	var version string
	switch {
	case v.Secret != nil:
		items, mode = v.Secret.Items, v.Secret.DefaultMode
		optional = v.Secret.Optional != nil && *v.Secret.Optional
		s, err := k.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && optional {
			return map[string][]byte{}, 0o644, "absent", nil
		}
		if err != nil {
			return nil, 0, "", fmt.Errorf("secret volume %s: %w", v.Name, err)
		}
		data, version = s.Data, s.ResourceVersion
	case v.ConfigMap != nil:
		items, mode = v.ConfigMap.Items, v.ConfigMap.DefaultMode
		optional = v.ConfigMap.Optional != nil && *v.ConfigMap.Optional
		cm, err := k.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && optional {
			return map[string][]byte{}, 0o644, "absent", nil
		}
		if err != nil {
			return nil, 0, "", fmt.Errorf("configmap volume %s: %w", v.Name, err)
		}
		data = map[string][]byte{}
		for key, value := range cm.Data {
			data[key] = []byte(value)
		}
		for key, value := range cm.BinaryData {
			data[key] = value
		}
		version = cm.ResourceVersion
	}
	fileMode := os.FileMode(0o644)
	if mode != nil {
		fileMode = os.FileMode(*mode) & 0o777
	}
	files := map[string][]byte{}
	if len(items) == 0 {
		for key, value := range data {
			files[key] = value
		}
	} else {
		for _, it := range items {
			value, ok := data[it.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, 0, "", fmt.Errorf("volume %s: key %q not found", v.Name, it.Key)
			}
			files[it.Path] = value
		}
	}
	for path := range files {
		clean := filepath.Clean(path)
		if filepath.IsAbs(path) || clean != path || strings.HasPrefix(clean, "..") {
			return nil, 0, "", fmt.Errorf("volume %s: refusing file path %q", v.Name, path)
		}
	}
	return files, fileMode, version, nil
}

// writeAtomic makes dir hold exactly files, switching versions with one rename.
func writeAtomic(dir string, files map[string][]byte, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	version := filepath.Join(dir, stamp)
	if err := os.Mkdir(version, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for path, data := range files {
		full := filepath.Join(version, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			return err
		}
		if err := os.Chmod(full, mode); err != nil {
			return err
		}
		top[strings.SplitN(path, "/", 2)[0]] = true
	}
	dataLink := filepath.Join(dir, "..data")
	old, _ := os.Readlink(dataLink)
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(stamp, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dataLink); err != nil {
		return err
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !top[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if old != "" && old != stamp && strings.HasPrefix(old, "..") {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// projectedDir is the scratch directory of a Secret or ConfigMap volume of pod.
func (k *kubelet) projectedDir(pod *corev1.Pod, v corev1.Volume) string {
	return filepath.Join(k.logDir, "volumes", string(pod.UID), v.Name)
}

// project writes a Secret or ConfigMap volume of pod when its object changed since the
// last time (always the first time).
func (k *kubelet) project(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (string, error) {
	dir := k.projectedDir(pod, v)
	files, mode, version, err := k.projectedSource(ctx, pod, v)
	if err != nil {
		return "", err
	}
	key := string(pod.UID) + "/" + v.Name
	k.mu.Lock()
	same := k.projected[key] == version
	k.mu.Unlock()
	if same {
		return dir, nil
	}
	if err := writeAtomic(dir, files, mode); err != nil {
		return "", fmt.Errorf("volume %s: %w", v.Name, err)
	}
	k.mu.Lock()
	first := k.projected[key] == ""
	k.projected[key] = version
	k.mu.Unlock()
	if !first {
		fmt.Fprintf(os.Stderr, "%s pod %s/%s: volume %s updated to version %s\n",
			time.Now().Format("2006/01/02 15:04:05"), pod.Namespace, pod.Name, v.Name, version)
	}
	return dir, nil
}

// refreshProjected re-syncs the Secret and ConfigMap volumes of a running pod.
func (k *kubelet) refreshProjected(ctx context.Context, pod *corev1.Pod) {
	for _, v := range pod.Spec.Volumes {
		if v.Secret == nil && v.ConfigMap == nil {
			continue
		}
		if _, err := k.project(ctx, pod, v); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "pod %s/%s: %v\n", pod.Namespace, pod.Name, err)
		}
	}
}

// forgetProjected drops the versions recorded for a pod that is gone.
func (k *kubelet) forgetProjected(uid string) {
	for key := range k.projected {
		if strings.HasPrefix(key, uid+"/") {
			delete(k.projected, key)
		}
	}
}
