package components

import (
	"fmt"
	"path"
	"strconv"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/spec"
)

// Ports. nasd runs without capabilities, so it listens on high container
// ports; the Service maps the well-known NFS and portmapper ports to them.
const (
	NFSPort              = 2049  // Service port: NFSv3 and MOUNT (one TCP port)
	PortmapperPort       = 111   // Service port: PMAP v2 / RPCBIND
	nfsContainerPort     = 20490 // nasd NFS+MOUNT listener
	portmapContainerPort = 20111 // nasd portmapper listener
	httpContainerPort    = 8080  // nasd /healthz /readyz /metrics
)

// Paths inside the nasd container.
const (
	windowsMount = "/windows"     // the server's Windows directory (hostPath)
	dataMount    = "/data"        // disk-backed emptyDir
	exportDir    = "/data/export" // the exported copy
	stateDir     = "/data/state"  // sync ancestor (dies with the pod, like the export it describes)
	// The handle key Secret's mount: nasd MACs its NFS file handles with this
	// key, so it must outlive the pod (an emptyDir key made every client
	// handle stale on each rollout or eviction).
	handleKeyDir  = "/etc/nasd"
	HandleKeyFile = "handle.key"   // the Secret's data key and the file name under handleKeyDir
	gracePeriod   = 60             // seconds kubelet waits after SIGTERM before SIGKILL
	nasdGrace     = "50s"          // nasd's budget to finish NFS calls and flush sync, inside gracePeriod
	appName       = "nasd"         // app.kubernetes.io/name
	partOf        = "nas-topology" // app.kubernetes.io/part-of
	managedBy     = "pulumi"       // app.kubernetes.io/managed-by
	roleLabelKey  = "nas-topology/role"
)

// workloadLabels are the app.kubernetes.io/* labels of a server's pods and objects.
func workloadLabels(srv spec.Server) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       appName,
		"app.kubernetes.io/instance":   srv.Name,
		"app.kubernetes.io/component":  "nfs-server",
		"app.kubernetes.io/part-of":    partOf,
		"app.kubernetes.io/managed-by": managedBy,
		roleLabelKey:                   string(srv.Role),
	}
}

// selectorLabels select a server's pods; a subset of workloadLabels that never changes.
func selectorLabels(srv spec.Server) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     appName,
		"app.kubernetes.io/instance": srv.Name,
	}
}

// ServiceArgs renders the Service of a server: a fixed clusterIP (the PV's
// nfs.server) and fixed node ports for clients outside the cluster.
func ServiceArgs(namespace string, srv spec.Server, cs spec.ClusterServer) *corev1.ServiceArgs {
	return &corev1.ServiceArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(srv.Name),
			Namespace: pulumi.String(namespace),
			Labels:    pulumi.ToStringMap(workloadLabels(srv)),
		},
		Spec: &corev1.ServiceSpecArgs{
			Type:      pulumi.String("NodePort"),
			ClusterIP: pulumi.String(cs.ClusterIP),
			Selector:  pulumi.ToStringMap(selectorLabels(srv)),
			Ports: corev1.ServicePortArray{
				&corev1.ServicePortArgs{
					Name:       pulumi.String("nfs"),
					Protocol:   pulumi.String("TCP"),
					Port:       pulumi.Int(NFSPort),
					TargetPort: pulumi.String("nfs"),
					NodePort:   pulumi.Int(cs.NodePort),
				},
				&corev1.ServicePortArgs{
					Name:       pulumi.String("portmapper"),
					Protocol:   pulumi.String("TCP"),
					Port:       pulumi.Int(PortmapperPort),
					TargetPort: pulumi.String("portmapper"),
					NodePort:   pulumi.Int(cs.PortmapperNodePort),
				},
			},
		},
	}
}

// NasdArgs is the command line of `nasd serve` for a server: the export
// options knfsd's defaults (sync, root_squash: credentials are checked as
// the NAS does), the files' owner from the cluster config.
func NasdArgs(srv spec.Server, c *spec.Cluster) []string {
	options := "rw,sync,root_squash"
	if srv.ReadOnly {
		options = "ro,sync,root_squash"
	}
	args := []string{
		"serve",
		"--role=" + string(srv.Role),
		"--fsid=" + strconv.Itoa(*srv.FSID),
		"--options=" + options,
		"--export=" + exportDir,
		"--export-path=" + srv.ExportPath,
		"--state=" + stateDir,
		"--handle-key-file=" + path.Join(handleKeyDir, HandleKeyFile),
		"--windows-dir=" + windowsMount,
		"--listen=:" + strconv.Itoa(nfsContainerPort),
		"--portmap-listen=:" + strconv.Itoa(portmapContainerPort),
		"--advertise-port=" + strconv.Itoa(NFSPort),
		"--http-listen=:" + strconv.Itoa(httpContainerPort),
		"--shutdown-grace=" + nasdGrace,
	}
	if uid, gid, ok := c.Owner(); ok {
		args = append(args, fmt.Sprintf("--files-owner=%d:%d", uid, gid))
	}
	return args
}

// DeploymentArgs renders the nasd Deployment of a server: one replica (two
// servers must never sync the same directories), Recreate for the same reason,
// the Windows directory as hostPath, the export on a bounded emptyDir, the
// handle key from its Secret (read-only), and a security context that meets the "restricted" pod security standard.
func DeploymentArgs(namespace string, srv spec.Server, c *spec.Cluster) *appsv1.DeploymentArgs {
	labels := pulumi.ToStringMap(workloadLabels(srv))
	uid := pulumi.Int(c.RunAsUser)
	return &appsv1.DeploymentArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(srv.Name),
			Namespace: pulumi.String(namespace),
			Labels:    labels,
		},
		Spec: &appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(1),
			Strategy: &appsv1.DeploymentStrategyArgs{Type: pulumi.String("Recreate")},
			Selector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selectorLabels(srv))},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels},
				Spec: &corev1.PodSpecArgs{
					AutomountServiceAccountToken: pulumi.Bool(false), // nasd never talks to the API
					// nasd is built for one architecture: a node of another
					// leaves the pod Pending and says why, instead of
					// "exec format error" in a crash loop.
					NodeSelector:                  pulumi.StringMap{"kubernetes.io/arch": pulumi.String(c.NodeArch), "kubernetes.io/os": pulumi.String("linux")},
					TerminationGracePeriodSeconds: pulumi.Int(gracePeriod),
					SecurityContext: &corev1.PodSecurityContextArgs{
						RunAsNonRoot:   pulumi.Bool(true),
						RunAsUser:      uid,
						RunAsGroup:     uid,
						FsGroup:        uid,
						SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
					},
					Containers: corev1.ContainerArray{&corev1.ContainerArgs{
						Name:            pulumi.String(appName),
						Image:           pulumi.String(c.Image),
						ImagePullPolicy: pulumi.String(pullPolicyOf(c)),
						Args:            pulumi.ToStringArray(NasdArgs(srv, c)),
						Ports: corev1.ContainerPortArray{
							&corev1.ContainerPortArgs{Name: pulumi.String("nfs"), ContainerPort: pulumi.Int(nfsContainerPort), Protocol: pulumi.String("TCP")},
							&corev1.ContainerPortArgs{Name: pulumi.String("portmapper"), ContainerPort: pulumi.Int(portmapContainerPort), Protocol: pulumi.String("TCP")},
							&corev1.ContainerPortArgs{Name: pulumi.String("http"), ContainerPort: pulumi.Int(httpContainerPort), Protocol: pulumi.String("TCP")},
						},
						// Ready only after the initial sync: a PV must not serve an empty export.
						ReadinessProbe: httpProbe("/readyz", 2, 5),
						LivenessProbe:  httpProbe("/healthz", 10, 10),
						Resources: &corev1.ResourceRequirementsArgs{
							Requests: pulumi.StringMap{"cpu": pulumi.String("50m"), "memory": pulumi.String("64Mi")},
							Limits:   pulumi.StringMap{"cpu": pulumi.String("1"), "memory": pulumi.String("256Mi")},
						},
						SecurityContext: &corev1.SecurityContextArgs{
							RunAsNonRoot:             pulumi.Bool(true),
							Privileged:               pulumi.Bool(false),
							AllowPrivilegeEscalation: pulumi.Bool(false),
							ReadOnlyRootFilesystem:   pulumi.Bool(true),
							Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
							SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
						},
						VolumeMounts: corev1.VolumeMountArray{
							// Only output servers write back to Windows.
							&corev1.VolumeMountArgs{Name: pulumi.String("windows"), MountPath: pulumi.String(windowsMount), ReadOnly: pulumi.Bool(!srv.Role.WritesWindows())},
							&corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(dataMount)},
							&corev1.VolumeMountArgs{Name: pulumi.String(handleKeyVolume), MountPath: pulumi.String(handleKeyDir), ReadOnly: pulumi.Bool(true)},
						},
					}},
					Volumes: corev1.VolumeArray{
						&corev1.VolumeArgs{
							Name: pulumi.String("windows"),
							HostPath: &corev1.HostPathVolumeSourceArgs{
								Path: pulumi.String(path.Join(c.WindowsRoot, srv.Name)),
								Type: pulumi.String("DirectoryOrCreate"),
							},
						},
						&corev1.VolumeArgs{
							Name: pulumi.String("data"),
							// Disk-backed (no medium: Memory), bounded so a runaway writer
							// gets the pod evicted instead of filling the node.
							EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(c.ExportSizeLimit)},
						},
						&corev1.VolumeArgs{
							Name: pulumi.String(handleKeyVolume),
							// The handle key outlives the pod (see handlekey.go).
							Secret: &corev1.SecretVolumeSourceArgs{
								SecretName:  pulumi.String(HandleKeySecretName(srv)),
								DefaultMode: pulumi.Int(HandleKeyMode),
							},
						},
					},
				},
			},
		},
	}
}

// pullPolicyOf is the cluster's pull policy, IfNotPresent when Run did not set one.
func pullPolicyOf(c *spec.Cluster) string {
	if c.ImagePullPolicy == "" {
		return "IfNotPresent"
	}
	return c.ImagePullPolicy
}

func httpProbe(path string, initialDelay, period int) *corev1.ProbeArgs {
	return &corev1.ProbeArgs{
		HttpGet:             &corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String("http")},
		InitialDelaySeconds: pulumi.Int(initialDelay),
		PeriodSeconds:       pulumi.Int(period),
		FailureThreshold:    pulumi.Int(3),
	}
}
