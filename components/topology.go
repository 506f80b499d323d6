package components

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/preflight"
	"github.com/nas-topology/nas-topology/components/spec"
)

// Program is the Pulumi program of the project: it reads the stack's config,
// refuses a stack that overrides shared keys, and deploys the topology.
// projectDir holds Pulumi.yaml (the program runs there).
func Program(projectDir string) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		_, err := Run(ctx, projectDir)
		return err
	}
}

// Run is the body of Program, returning what it registered (for tests).
func Run(ctx *pulumi.Context, projectDir string) (*Topology, error) {
	get := func(key string) (string, bool) { return ctx.GetConfig(spec.Namespace + ":" + key) }
	project, err := spec.ProjectConfig(projectDir)
	if err != nil {
		return nil, fmt.Errorf("reading the shared config from %s: %w", filepath.Join(projectDir, "Pulumi.yaml"), err)
	}
	if err := spec.CheckSharedNotOverridden(project, get); err != nil {
		return nil, err
	}
	cfg, err := spec.Load(get)
	if err != nil {
		return nil, err
	}
	if err := runPreflight(ctx, cfg); err != nil {
		return nil, err
	}
	place, err := PlacementFor(cfg)
	if err != nil {
		return nil, err
	}
	if err := place.Prepare(ctx); err != nil {
		return nil, err
	}
	return DeployTo(ctx, cfg, place)
}

// LookupEnv is how the preflight checks read the environment (KUBECONFIG,
// HOME); tests replace it.
var LookupEnv = os.LookupEnv

// runPreflight checks what the stack needs from this machine (the image
// loader's tool, the kube context). A preview reports every check, and a
// failed one as a warning, so that an offline preview (`make parity`, an
// operator planning production without its context) still runs; `up` stops
// at the first failure with its one sentence.
func runPreflight(ctx *pulumi.Context, cfg *spec.Config) error {
	checks := preflight.Run(cfg, LookupEnv)
	if !ctx.DryRun() {
		return preflight.First(checks)
	}
	_ = ctx.Log.Info(preflight.Summary(checks), nil)
	for _, c := range checks {
		if c.Err != nil {
			_ = ctx.Log.Warn(c.Err.Error()+" (`pulumi up` will stop here)", nil)
		}
	}
	return nil
}

// Topology is what Deploy registered.
type Topology struct {
	Servers          []*NasServer
	VolumeSpecDigest string
}

// Deploy registers the whole topology of a validated config: the Kubernetes
// provider, the namespaces it owns, one NasServer per server, stack outputs.
// The placement is the config's, unprepared (the image is cfg.Cluster.Image).
func Deploy(ctx *pulumi.Context, cfg *spec.Config) (*Topology, error) {
	place, err := PlacementFor(cfg)
	if err != nil {
		return nil, err
	}
	return DeployTo(ctx, cfg, place)
}

// DeployTo is Deploy with a prepared placement.
func DeployTo(ctx *pulumi.Context, cfg *spec.Config, place Placement) (*Topology, error) {
	// What this run does to the volumes the stack deployed, before anything
	// is registered: a placement may refuse it.
	next, order := map[string]Deployed{}, []string{}
	for _, srv := range cfg.Servers {
		next[srv.Name] = Deployed{Volume: VolumeFor(cfg.Shared, srv), NFSServer: place.Address(srv)}
		order = append(order, srv.Name)
	}
	prev, err := previousDeployed(ctx)
	if err != nil {
		return nil, err
	}
	if err := place.Review(ctx, ChangesOf(prev, next, order)); err != nil {
		return nil, err
	}

	providerArgs := &kubernetes.ProviderArgs{}
	if cfg.KubeContext != "" {
		providerArgs.Context = pulumi.String(cfg.KubeContext)
	}
	provider, err := kubernetes.NewProvider(ctx, "k8s", providerArgs)
	if err != nil {
		return nil, err
	}
	useProvider := pulumi.Provider(provider)

	var namespaces []pulumi.Resource
	if cfg.ManageNamespaces {
		for _, name := range namespaceNames(cfg, place) {
			ns, err := corev1.NewNamespace(ctx, name, &corev1.NamespaceArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Name:   pulumi.String(name),
					Labels: pulumi.ToStringMap(cfg.Labels),
				},
			}, useProvider)
			if err != nil {
				return nil, err
			}
			namespaces = append(namespaces, ns)
		}
	}

	topo := &Topology{}
	servers := pulumi.Map{}
	volumes := make([]Volume, 0, len(cfg.Servers))
	for _, srv := range cfg.Servers {
		s, err := NewNasServer(ctx, srv.Name, &NasServerArgs{Config: cfg, Server: srv, Placement: place, DependsOn: namespaces},
			pulumi.Providers(provider))
		if err != nil {
			return nil, err
		}
		topo.Servers = append(topo.Servers, s)
		volumes = append(volumes, s.Volume)
		servers[srv.Name] = pulumi.Map{
			"nfsAddress":   s.NFSAddress,
			"nodePort":     s.NodePort,
			"exportPath":   s.ExportPath,
			"pvName":       s.VolumeName,
			"pvcName":      pulumi.Sprintf("%s/%s", s.ClaimNamespace, s.ClaimName),
			"mountCommand": s.MountCommand,
			// From outside the cluster (dev: <node-ip> is `minikube ip`).
			"externalMountCommand": s.ExternalMountCommand,
			"nfsURL":               s.NFSURL,
			"portmapperNodePort":   s.PortmapperNodePort,
		}
	}
	topo.VolumeSpecDigest = VolumeSpecDigest(volumes)
	ctx.Export("target", pulumi.String(string(cfg.Target)))
	ctx.Export("servers", servers)
	ctx.Export("volumeSpecDigest", pulumi.String(topo.VolumeSpecDigest))
	ctx.Export(DeployedOutput, deployedOutputs(next))
	return topo, nil
}

// namespaceNames are the namespaces a stack with ManageNamespaces creates: the
// placement's and every claim namespace, sorted.
func namespaceNames(cfg *spec.Config, place Placement) []string {
	names := slices.Clone(place.Namespaces())
	for _, s := range cfg.Servers {
		names = append(names, s.Claim.Namespace)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
