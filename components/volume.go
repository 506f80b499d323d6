package components

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/spec"
)

// PatchForceAnnotation tells the Kubernetes provider to force its server-side
// apply over fields another manager changed (a `kubectl edit` of a production
// PV): the shared definition is authoritative, and without it fixing drift
// fails with a field-manager conflict.
const PatchForceAnnotation = "pulumi.com/patchForce"

// Volume is the complete, environment-free description of one NAS's
// PersistentVolume and PersistentVolumeClaim. VolumeFor is the only place it
// is made; the NFS server address is the one thing added per stack.
type Volume struct {
	Name             string            `json:"name"`
	Labels           map[string]string `json:"labels"`
	Capacity         string            `json:"capacity"`
	AccessModes      []string          `json:"accessModes"`
	ReclaimPolicy    string            `json:"reclaimPolicy"`
	StorageClassName string            `json:"storageClassName"`
	MountOptions     []string          `json:"mountOptions"`
	VolumeMode       string            `json:"volumeMode"`
	ExportPath       string            `json:"exportPath"`
	ReadOnly         bool              `json:"readOnly"`
	Claim            spec.Claim        `json:"claim"`
}

// VolumeFor derives a server's volume from the shared config alone.
func VolumeFor(shared spec.Shared, srv spec.Server) Volume {
	labels := maps.Clone(shared.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, srv.Labels)
	labels["nas-topology/server"] = srv.Name
	return Volume{
		Name:             srv.VolumeName,
		Labels:           labels,
		Capacity:         srv.Capacity,
		AccessModes:      slices.Clone(srv.AccessModes),
		ReclaimPolicy:    shared.ReclaimPolicy,
		StorageClassName: shared.StorageClassName,
		MountOptions:     slices.Clone(shared.MountOptions),
		VolumeMode:       "Filesystem",
		ExportPath:       srv.ExportPath,
		ReadOnly:         srv.ReadOnly,
		Claim:            srv.Claim,
	}
}

// PersistentVolumeArgs renders the PV. nfsServer is the only per-stack input:
// a Service clusterIP in dev, a physical NAS address in production.
func (v Volume) PersistentVolumeArgs(nfsServer pulumi.StringInput) *corev1.PersistentVolumeArgs {
	return &corev1.PersistentVolumeArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        pulumi.String(v.Name),
			Labels:      pulumi.ToStringMap(v.Labels),
			Annotations: pulumi.StringMap{PatchForceAnnotation: pulumi.String("true")},
		},
		Spec: &corev1.PersistentVolumeSpecArgs{
			Capacity:                      pulumi.StringMap{"storage": pulumi.String(v.Capacity)},
			AccessModes:                   pulumi.ToStringArray(v.AccessModes),
			PersistentVolumeReclaimPolicy: pulumi.String(v.ReclaimPolicy),
			StorageClassName:              pulumi.String(v.StorageClassName),
			MountOptions:                  pulumi.ToStringArray(v.MountOptions),
			VolumeMode:                    pulumi.String(v.VolumeMode),
			Nfs: &corev1.NFSVolumeSourceArgs{
				Server:   nfsServer,
				Path:     pulumi.String(v.ExportPath),
				ReadOnly: pulumi.Bool(v.ReadOnly),
			},
			// Reserve the PV for its claim so no other PVC of the class can take it.
			ClaimRef: &corev1.ObjectReferenceArgs{
				Kind:       pulumi.String("PersistentVolumeClaim"),
				ApiVersion: pulumi.String("v1"),
				Namespace:  pulumi.String(v.Claim.Namespace),
				Name:       pulumi.String(v.Claim.Name),
			},
		},
	}
}

// ClaimArgs renders the PVC, bound to the PV by name.
func (v Volume) ClaimArgs() *corev1.PersistentVolumeClaimArgs {
	return &corev1.PersistentVolumeClaimArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        pulumi.String(v.Claim.Name),
			Namespace:   pulumi.String(v.Claim.Namespace),
			Labels:      pulumi.ToStringMap(v.Labels),
			Annotations: pulumi.StringMap{PatchForceAnnotation: pulumi.String("true")},
		},
		Spec: &corev1.PersistentVolumeClaimSpecArgs{
			AccessModes:      pulumi.ToStringArray(v.AccessModes),
			StorageClassName: pulumi.String(v.StorageClassName),
			VolumeName:       pulumi.String(v.Name),
			VolumeMode:       pulumi.String(v.VolumeMode),
			Resources: &corev1.VolumeResourceRequirementsArgs{
				Requests: pulumi.StringMap{"storage": pulumi.String(v.Capacity)},
			},
		},
	}
}

// Fields of a PV and a PVC that Kubernetes cannot change in place. A PV's
// volume source (nfs: server, path, readOnly) is immutable; a PVC's spec is
// immutable but for requests.storage, and growing that needs a class that
// allows expansion, which a static class does not. A change to one of these
// replaces the object: cleanly in dev (delete before replace, PVC first),
// refused at preview in production, where the volumes are protected.
//
// The PV is replaced with its PVC, too (the PV fields that mirror the
// claim's): a bound PV keeps the old claim's uid in claimRef, so a new claim
// of the same name next to the old PV would never bind (Released, Retain).
// Only the claim's namespace and name count: the uid and resourceVersion
// Kubernetes adds to a bound PV's claimRef are no change (adopting a
// production PV would otherwise plan its replacement).
var (
	PVReplaceOnChanges  = []string{"spec.nfs", "spec.capacity", "spec.accessModes", "spec.storageClassName", "spec.volumeMode", "spec.claimRef.namespace", "spec.claimRef.name"}
	PVCReplaceOnChanges = []string{"spec.accessModes", "spec.resources", "spec.storageClassName", "spec.volumeName", "spec.volumeMode"}
)

// VolumeSpecDigest is a sha256 over the volumes in name order, without any NFS
// server address: equal on every stack exactly when their PV/PVC definitions
// are equal. `pulumi stack output volumeSpecDigest` compares stacks at a glance.
func VolumeSpecDigest(volumes []Volume) string {
	sorted := slices.Clone(volumes)
	slices.SortFunc(sorted, func(a, b Volume) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	b, err := json.Marshal(sorted) // maps marshal with sorted keys: stable
	if err != nil {
		panic(err) // plain strings, slices and maps always marshal
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
