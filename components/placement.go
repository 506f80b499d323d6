package components

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/spec"
)

// Placement is where a stack's NFS servers are: chosen once from the config
// (PlacementFor), then asked by everything that differs by placement, so no
// other code switches on the target. A third placement is a third type.
type Placement interface {
	// Prepare runs once before any server is registered (the cluster
	// placement builds and loads the nasd image).
	Prepare(ctx *pulumi.Context) error
	// Namespaces are the namespaces of the placement itself that a stack
	// with ManageNamespaces creates (the claims' are added by Deploy).
	Namespaces() []string
	// Serve registers what serves one server, children of its component,
	// and says where its PV points and how outside clients reach it.
	Serve(ctx *pulumi.Context, srv spec.Server, v Volume, child []pulumi.ResourceOption) (Served, error)
	// VolumeOptions are the resource options of a server's PV and PVC,
	// besides ReplaceOnChanges (the same everywhere: what Kubernetes cannot
	// change in place) and the PVC's ReplaceWith its PV.
	VolumeOptions(v Volume) (pv, pvc []pulumi.ResourceOption)
	// Address is the configured address a server's PV points at (the
	// Service clusterIP in the cluster), for comparing with what the stack
	// deployed.
	Address(srv spec.Server) string
	// Review sees, before anything is registered, what this run does to the
	// deployed volumes: it tells the user, or refuses (an error) a change the
	// placement cannot make.
	Review(ctx *pulumi.Context, changes []VolumeChange) error
}

// Served is what a placement gives a NasServer for one server.
type Served struct {
	NFSServer            pulumi.StringOutput // the PV's nfs.server
	DependsOn            []pulumi.Resource   // what the PV waits for (the Service owning the address)
	NodePort             pulumi.IntPtrOutput // nil output where there is none
	PortmapperNodePort   pulumi.IntPtrOutput
	ExternalMountCommand string
	NFSURL               string
}

// PlacementFor is the one place the target of a config is switched on.
func PlacementFor(cfg *spec.Config) (Placement, error) {
	switch cfg.Target {
	case spec.TargetCluster:
		return &inCluster{namespace: cfg.NasNamespace, cluster: cfg.Cluster}, nil
	case spec.TargetExternal:
		return &external{cfg: cfg.External}, nil
	}
	return nil, fmt.Errorf("unknown target %q", cfg.Target)
}

// inCluster runs nasd in the cluster (dev): per server a Service with a
// fixed clusterIP and node ports, a handle key Secret and a Deployment.
type inCluster struct {
	namespace string
	cluster   *spec.Cluster
}

func (p *inCluster) Prepare(ctx *pulumi.Context) error {
	img, err := resolveImage(ctx, p.cluster)
	if err != nil {
		return err
	}
	p.cluster.Image = img
	return nil
}

func (p *inCluster) Namespaces() []string { return []string{p.namespace} }

func (p *inCluster) Serve(ctx *pulumi.Context, srv spec.Server, v Volume, child []pulumi.ResourceOption) (Served, error) {
	cs := p.cluster.Servers[srv.Name]
	// Replaced (a new nasNamespace) by delete, then create: two Services
	// cannot hold the fixed clusterIP, and two nasd must never sync the
	// same Windows directory.
	replaceOpts := append(slices.Clone(child), pulumi.DeleteBeforeReplace(true))
	svc, err := corev1.NewService(ctx, srv.Name, ServiceArgs(p.namespace, srv, cs), replaceOpts...)
	if err != nil {
		return Served{}, err
	}
	key, err := newHandleKeySecret(ctx, p.namespace, srv, child)
	if err != nil {
		return Served{}, err
	}
	// The pod cannot start without its key: create the Secret first.
	deployOpts := append(slices.Clone(replaceOpts), pulumi.DependsOn([]pulumi.Resource{key}))
	if _, err := appsv1.NewDeployment(ctx, srv.Name, DeploymentArgs(p.namespace, srv, p.cluster), deployOpts...); err != nil {
		return Served{}, err
	}
	return Served{
		// The configured clusterIP, not the Service's output: a replaced
		// Service (a new nasNamespace) then leaves the PV alone, where an
		// output unknown until the new Service exists made the engine delete
		// the PV first (an immutable field "might change"), which then hung
		// Terminating under its bound claim. The PV still waits for the
		// Service that owns the address (DependsOn).
		NFSServer:            pulumi.String(cs.ClusterIP).ToStringOutput(),
		DependsOn:            []pulumi.Resource{svc},
		NodePort:             pulumi.IntPtr(cs.NodePort).ToIntPtrOutput(),
		PortmapperNodePort:   pulumi.IntPtr(cs.PortmapperNodePort).ToIntPtrOutput(),
		ExternalMountCommand: ExternalMountCommand(v, NodeIPPlaceholder, cs.NodePort),
		NFSURL:               NFSURL(v, NodeIPPlaceholder, cs.NodePort),
	}, nil
}

// Dev volumes are disposable: a destroy removes them, and a change Kubernetes
// cannot make in place deletes the PVC, then the PV, and creates both anew
// (their names are fixed: a replacement cannot be created next to the old one).
func (p *inCluster) VolumeOptions(Volume) (pv, pvc []pulumi.ResourceOption) {
	return []pulumi.ResourceOption{pulumi.DeleteBeforeReplace(true)}, []pulumi.ResourceOption{pulumi.DeleteBeforeReplace(true)}
}

func (p *inCluster) Address(srv spec.Server) string { return p.cluster.Servers[srv.Name].ClusterIP }

// Review says which claims are replaced and that the replacement waits for
// their pods: Kubernetes keeps a claim in use (pvc-protection) until no pod
// mounts it, and Pulumi's delete of it waits with it.
func (p *inCluster) Review(ctx *pulumi.Context, changes []VolumeChange) error {
	for _, c := range changes {
		if !c.Replaces() {
			continue
		}
		_ = ctx.Log.Warn(fmt.Sprintf("%s: %s: Kubernetes cannot change this on a live PV/PVC, so the PVC and the PV are "+
			"deleted, then created anew (delete before replace). Deleting the claim waits until no pod mounts it: "+
			"pulumi waits here until the apps that use the claim are stopped", c.Server, c.ReplacingFields()), nil)
	}
	return nil
}

// external points at physical NAS devices (production): only the PV/PVC.
type external struct {
	cfg *spec.External
}

func (p *external) Prepare(*pulumi.Context) error { return nil }

// Production namespaces exist (the claims' only are ours to create, if at all).
func (p *external) Namespaces() []string { return nil }

func (p *external) Serve(_ *pulumi.Context, srv spec.Server, v Volume, _ []pulumi.ResourceOption) (Served, error) {
	addr := p.cfg.Addresses[srv.Name]
	none := pulumi.ToOutput((*int)(nil)).(pulumi.IntPtrOutput) // a physical NAS has no NodePort
	return Served{
		NFSServer:            pulumi.String(addr).ToStringOutput(),
		NodePort:             none,
		PortmapperNodePort:   none,
		ExternalMountCommand: MountCommand(v, addr), // the same from anywhere
		NFSURL:               NFSURL(v, addr, 0),
	}, nil
}

func (p *external) Address(srv spec.Server) string { return p.cfg.Addresses[srv.Name] }

// MigrationSteps is how a production volume gets a value Kubernetes cannot
// change in place (README, Production, step 3).
const MigrationSteps = `do it as a migration (README, "Production", step 3): ` +
	`1. add a server with a new name, volumeName and claim next to the old one, carrying the new values, and run pulumi up --stack ocp; ` +
	`2. move the apps to the new claim; ` +
	`3. pulumi state unprotect --stack ocp the old server's PV and PVC, remove the old server from Pulumi.yaml and its address from Pulumi.ocp.yaml, pulumi up --stack ocp ` +
	`(retainOnDelete: the old PV and PVC stay in the cluster until you delete them)`

// Review refuses, at preview already, a change Kubernetes cannot make to a
// live production PV/PVC: a replacement would unbind every app (and, with
// the volumes' fixed names, fail halfway). It also says how many volumes the
// run imports or creates.
func (p *external) Review(ctx *pulumi.Context, changes []VolumeChange) error {
	var refused []string
	fresh := 0
	for _, c := range changes {
		if c.New {
			fresh++
		} else if c.Replaces() {
			refused = append(refused, c.Server+": "+c.ReplacingFields())
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("refusing to replace production volumes: Kubernetes cannot change these fields of a live PV/PVC, "+
			"and replacing them would unbind every app that uses them: %s. Nothing was changed; %s",
			strings.Join(refused, "; "), MigrationSteps)
	}
	objects := 2 * fresh // a PV and a PVC per server
	if p.cfg.Adopt {
		_ = ctx.Log.Info(fmt.Sprintf("external: %d PVs/PVCs to import (external.adopt: true), 0 to create", objects), nil)
	} else if objects > 0 {
		_ = ctx.Log.Warn(fmt.Sprintf("external: 0 PVs/PVCs to import, %d to create (external.adopt is false): "+
			"if production has them already, set external.adopt: true to import them instead (README, Production)", objects), nil)
	}
	return nil
}

// VolumeOptions: production volumes can be adopted (imported by their
// Kubernetes IDs: PV name, PVC namespace/name) and are protected by default:
// Protect makes any delete or replacement fail at preview, RetainOnDelete
// keeps the objects in the cluster when they leave the stack.
// DeleteBeforeReplace is never used for them.
func (p *external) VolumeOptions(v Volume) (pv, pvc []pulumi.ResourceOption) {
	if p.cfg.Adopt {
		pv = append(pv, pulumi.Import(pulumi.ID(v.Name)))
		pvc = append(pvc, pulumi.Import(pulumi.ID(v.Claim.Namespace+"/"+v.Claim.Name)))
	}
	if p.cfg.Protected() {
		for _, opts := range []*[]pulumi.ResourceOption{&pv, &pvc} {
			*opts = append(*opts, pulumi.Protect(true), pulumi.RetainOnDelete(true))
		}
	}
	return pv, pvc
}
