// Package spec owns the typed configuration of the NAS topology: the shared
// part (Pulumi.yaml, identical for every stack: everything that defines a PV
// or PVC) and the per-environment part (stack files: where the NFS servers
// are). It parses and validates; it registers no resources and does no I/O
// beyond reading the project file for the override guard.
package spec

import (
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/nas-topology/nas-topology/nasimage/image"
)

// Namespace is the Pulumi config namespace: the project name.
const Namespace = "nas-topology"

// Role is what a NAS is for in production.
type Role string

const (
	RoleInput  Role = "input"  // apps read test data; Windows -> NFS
	RoleBackup Role = "backup" // read-only copy; Windows -> NFS
	RoleOutput Role = "output" // apps write results; both ways
)

// Roles lists the valid roles, in the order used in messages. What each
// role means is said once, here, by the methods below; the program, the
// policy pack and nasd's flags ask them.
var Roles = []Role{RoleInput, RoleBackup, RoleOutput}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// ReadOnly reports whether servers of the role are read-only in production
// (the backup): the PV, the export and the Windows side are never written.
func (r Role) ReadOnly() bool { return r == RoleBackup }

// WritesWindows reports whether nasd syncs NFS writes back to the Windows
// directory (output), so the hostPath is mounted writable.
func (r Role) WritesWindows() bool { return r == RoleOutput }

// Target says where the NFS servers of a stack live.
type Target string

const (
	TargetCluster  Target = "cluster"  // dev: nasd pods in the cluster, PVs point at their Service clusterIPs
	TargetExternal Target = "external" // ocp: physical NAS devices, only PVs/PVCs are managed
)

// Claim names the PVC a PV is reserved for (claimRef) and that is created for it.
type Claim struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Server is one NAS as the shared config describes it.
type Server struct {
	Name        string            `json:"name"`
	Role        Role              `json:"role"`
	FSID        *int              `json:"fsid"` // pointer: "missing" must be told apart from 0
	ExportPath  string            `json:"exportPath"`
	Capacity    string            `json:"capacity"`
	AccessModes []string          `json:"accessModes"`
	ReadOnly    bool              `json:"readOnly"`
	VolumeName  string            `json:"volumeName"` // the PV name
	Claim       Claim             `json:"claim"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// Shared is the project-level config of Pulumi.yaml. Every PV/PVC field comes
// from here, so every stack renders the same volumes.
type Shared struct {
	NasNamespace     string            // where the nasd pods run (target cluster)
	StorageClassName string            // static class name; no provisioner behind it
	ReclaimPolicy    string            // Retain: a PV must never delete production data
	MountOptions     []string          // what kubelet passes to mount.nfs
	Labels           map[string]string // on every PV and PVC
	Servers          []Server
}

// ClusterServer is the per-server placement on a cluster target.
type ClusterServer struct {
	ClusterIP string `json:"clusterIP"`
	// NodePort exposes NFS+MOUNT outside the cluster (e.g. to Windows clients).
	NodePort int `json:"nodePort"`
	// PortmapperNodePort is the node port of the portmapper (Service port 111).
	// Fixed too: an automatically allocated one could take another server's NodePort.
	PortmapperNodePort int `json:"portmapperNodePort"`
}

// Cluster is the stack config of a `cluster` target (Pulumi.dev.yaml).
type Cluster struct {
	// WindowsRoot is the directory inside the node where the Windows share is
	// mounted; each server syncs WindowsRoot/<server name>.
	WindowsRoot string `json:"windowsRoot"`
	// ImageLoader says how the nasd image built from nasimage/ reaches the
	// cluster during `up`: minikube (default), containerd, registry, or none.
	ImageLoader string `json:"imageLoader"`
	// ImageRegistry is where the registry loader pushes (host[:port][/path]).
	ImageRegistry string `json:"imageRegistry"`
	// MinikubeProfile is the minikube profile the minikube loader loads into.
	MinikubeProfile string `json:"minikubeProfile"`
	// Image is a prebuilt nasd reference, only with imageLoader none. Empty:
	// the Deployments run the image built from this checkout. After
	// components.Run it holds the reference the Deployments run.
	Image string `json:"image"`
	// NodeArch is the architecture of the cluster's nodes (amd64, arm64): the
	// nasd binary and image are built for it, and the pods select nodes of
	// it. Default: the architecture of the machine running Pulumi, which is
	// Minikube's node's (DefaultNodeArch).
	NodeArch string `json:"nodeArch"`
	// ServiceCIDR is the cluster's Service range; fixed clusterIPs must be in it.
	ServiceCIDR string `json:"serviceCIDR"`
	// ExportSizeLimit bounds the disk-backed emptyDir holding the export copy.
	ExportSizeLimit string `json:"exportSizeLimit"`
	// RunAsUser is the non-root uid of nasd; the Windows mount must be writable by it.
	RunAsUser int `json:"runAsUser"`
	// FilesOwner ("UID:GID") is the owner NFS clients see of the files that
	// come from Windows and of each export's root: the uid:gid the
	// production NAS gives the testers' files, so apps running as it (or in
	// its group) may write, and others get what the modes allow. Empty:
	// nasd's uid (runAsUser). Credentials are checked as the NAS does
	// (root_squash).
	FilesOwner string                   `json:"filesOwner"`
	Servers    map[string]ClusterServer `json:"servers"`
	// ImagePullPolicy is set by components.Run with Image (not config):
	// Never for a loaded image, IfNotPresent for a pushed or prebuilt one.
	ImagePullPolicy string `json:"-"`
}

// Owner returns FilesOwner's uid and gid (ok false: empty or malformed).
func (c *Cluster) Owner() (uid, gid int, ok bool) {
	u, g, found := strings.Cut(c.FilesOwner, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	ok = found && err1 == nil && err2 == nil && uid >= 0 && gid >= 0 && strconv.Itoa(uid) == u && strconv.Itoa(gid) == g
	return uid, gid, ok
}

// External is the stack config of an `external` target (Pulumi.ocp.yaml).
type External struct {
	// Addresses maps a server name to its physical NAS address (IP or host name).
	Addresses map[string]string `json:"addresses"`
	// Adopt takes over the live PVs/PVCs (pulumi import) instead of creating
	// them: in production they exist, and apps are bound to them.
	Adopt bool `json:"adopt"`
	// Protect marks the PVs/PVCs protected and retained on delete, so neither a
	// destroy nor a replacement can remove production volumes. Default true.
	Protect *bool `json:"protect"`
}

// Protected reports whether production volumes are protected (the default).
func (x *External) Protected() bool { return x.Protect == nil || *x.Protect }

// Config is the whole validated configuration of one stack.
type Config struct {
	Shared
	Target      Target
	KubeContext string // empty: the kubeconfig's current context
	// ManageNamespaces creates the NAS and claim namespaces (dev); production
	// namespaces already exist and are not ours.
	ManageNamespaces bool
	Cluster          *Cluster  // set when Target is cluster
	External         *External // set when Target is external
}

// Config keys, without the project namespace.
const (
	KeyNasNamespace     = "nasNamespace"
	KeyStorageClassName = "storageClassName"
	KeyReclaimPolicy    = "reclaimPolicy"
	KeyMountOptions     = "mountOptions"
	KeyLabels           = "labels"
	KeyServers          = "servers"

	KeyTarget           = "target"
	KeyKubeContext      = "kubeContext"
	KeyManageNamespaces = "manageNamespaces"
	KeyCluster          = "cluster"
	KeyExternal         = "external"
)

// SharedKeys are the keys that only Pulumi.yaml may set. A stack file that sets
// one would make that stack's PVs differ from the others'.
var SharedKeys = []string{KeyNasNamespace, KeyStorageClassName, KeyReclaimPolicy, KeyMountOptions, KeyLabels, KeyServers}

// Defaults of the cluster target that a stack file may leave out.
const (
	DefaultServiceCIDR     = "10.96.0.0/12" // Minikube's and kube-apiserver's default
	DefaultExportSizeLimit = "500Mi"
	DefaultRunAsUser       = 65532
	DefaultImageLoader     = image.LoaderMinikube
)

// DefaultNodeArch is the node architecture when cluster.nodeArch is unset:
// this machine's when nasd can be built for it (Minikube's node runs on it,
// as a VM or container of the same architecture), else amd64.
var DefaultNodeArch = func() string {
	if slices.Contains(image.Arches, runtime.GOARCH) {
		return runtime.GOARCH
	}
	return image.DefaultGoArch
}()

// NodePortMin and NodePortMax bound a Service nodePort (kube-apiserver's
// default --service-node-port-range, Minikube's too).
const (
	NodePortMin = 30000
	NodePortMax = 32767
)
