// Package resizer grows the suite's volumes. They are directories (hostPath, or
// local-path-provisioner's on the real node), which no driver expands, so this loop
// plays the CSI external-resizer (and the node-side file system resize, which a
// directory does not need): a bound claim whose storage request exceeds its capacity,
// and whose StorageClass allows volume expansion, gets the request as the capacity of
// its PersistentVolume and as its own status.capacity. A class without expansion is
// left alone, as the API server already refuses to raise such a claim's request.
//
// A class annotated FileSystemResizeAnnotation: on-restart plays a volume whose file
// system grows only when a pod mounts it again: the volume grows, the claim gets the
// condition FileSystemResizePending and keeps its capacity, and it completes (capacity
// set, condition cleared) once a pod mounting the claim was created after the
// condition appeared. A claim no pod mounts stays pending.
package resizer

import (
	"context"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// FileSystemResizeAnnotation on a StorageClass chooses when a file system grows.
const FileSystemResizeAnnotation = "fjord.dev/e2e-filesystem-resize"

// Loop runs resizeOnce every second until ctx ends.
func Loop(ctx context.Context, cs *kubernetes.Clientset) {
	for {
		resizeOnce(ctx, cs)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func resizeOnce(ctx context.Context, cs *kubernetes.Clientset) {
	claims, err := cs.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		if ctx.Err() == nil {
			log.Printf("resizer: listing claims: %v", err)
		}
		return
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		want, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		have := pvc.Status.Capacity[corev1.ResourceStorage]
		if !ok || pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound || want.Cmp(have) <= 0 {
			continue
		}
		if pvc.Spec.StorageClassName == nil {
			continue
		}
		class, err := cs.StorageV1().StorageClasses().Get(ctx, *pvc.Spec.StorageClassName, metav1.GetOptions{})
		if err != nil || class.AllowVolumeExpansion == nil || !*class.AllowVolumeExpansion {
			continue
		}
		if class.Annotations[FileSystemResizeAnnotation] == "on-restart" {
			done, err := resizeOnRestart(ctx, cs, pvc, want)
			if err != nil && ctx.Err() == nil {
				log.Printf("resizer: claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
			}
			if !done {
				continue
			}
		}
		if err := resizeClaim(ctx, cs, pvc, want); err != nil && ctx.Err() == nil {
			log.Printf("resizer: claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
		}
	}
}

func resizeClaim(ctx context.Context, cs *kubernetes.Clientset, pvc *corev1.PersistentVolumeClaim, want resource.Quantity) error {
	pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if have := pv.Spec.Capacity[corev1.ResourceStorage]; have.Cmp(want) < 0 {
		pv.Spec.Capacity[corev1.ResourceStorage] = want
		if _, err := cs.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if pvc.Status.Capacity == nil {
		pvc.Status.Capacity = corev1.ResourceList{}
	}
	pvc.Status.Capacity[corev1.ResourceStorage] = want
	if pvc.Status.AllocatedResources != nil {
		pvc.Status.AllocatedResources[corev1.ResourceStorage] = want
	}
	delete(pvc.Status.AllocatedResourceStatuses, corev1.ResourceStorage)
	var kept []corev1.PersistentVolumeClaimCondition
	for _, c := range pvc.Status.Conditions {
		if c.Type != corev1.PersistentVolumeClaimResizing && c.Type != corev1.PersistentVolumeClaimFileSystemResizePending {
			kept = append(kept, c)
		}
	}
	pvc.Status.Conditions = kept
	if _, err := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		return err
	}
	log.Printf("resizer: claim %s/%s and volume %s grown to %s", pvc.Namespace, pvc.Name, pv.Name, want.String())
	return nil
}

// resizeOnRestart grows the volume and marks the claim FileSystemResizePending;
// returns true once a pod mounting the claim was created after that mark (the file
// system grows on mount), so the caller completes the resize.
func resizeOnRestart(ctx context.Context, cs *kubernetes.Clientset, pvc *corev1.PersistentVolumeClaim, want resource.Quantity) (bool, error) {
	var since *metav1.Time
	for i := range pvc.Status.Conditions {
		c := &pvc.Status.Conditions[i]
		if c.Type == corev1.PersistentVolumeClaimFileSystemResizePending && c.Status == corev1.ConditionTrue {
			since = &c.LastTransitionTime
		}
	}
	if since == nil {
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if have := pv.Spec.Capacity[corev1.ResourceStorage]; have.Cmp(want) < 0 {
			pv.Spec.Capacity[corev1.ResourceStorage] = want
			if _, err := cs.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
				return false, err
			}
		}
		pvc.Status.Conditions = append(pvc.Status.Conditions, corev1.PersistentVolumeClaimCondition{
			Type:               corev1.PersistentVolumeClaimFileSystemResizePending,
			Status:             corev1.ConditionTrue,
			LastTransitionTime: metav1.Now(),
			Message:            "waiting for a pod to mount the volume to grow its file system",
		})
		if _, err := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			return false, err
		}
		log.Printf("resizer: volume of claim %s/%s grown to %s; file system resize pending until a pod mounts it", pvc.Namespace, pvc.Name, want.String())
		return false, nil
	}
	pods, err := cs.CoreV1().Pods(pvc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	for _, pod := range pods.Items {
		// Timestamps have a resolution of a second: a pod counts only when created in
		// a later second than the condition, so a pod that mounted the claim before
		// never completes it.
		if pod.DeletionTimestamp != nil || !since.Before(&pod.CreationTimestamp) {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name {
				return true, nil
			}
		}
	}
	return false, nil
}
