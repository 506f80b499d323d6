package tests

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/testenv"
)

// registered is one resource the program registered, with the inputs it sent.
type registered struct {
	Type                string
	Name                string
	Inputs              resource.PropertyMap
	ImportID            string // pulumi.Import
	Protect             bool
	RetainOnDelete      bool
	DeleteBeforeReplace bool
	IgnoreChanges       []string
	ReplaceOnChanges    []string
	ReplaceWith         []string // URNs
	Dependencies        []string // URNs of pulumi.DependsOn
}

// recorder is a pulumi mock monitor that keeps every registration.
type recorder struct {
	previous  map[string]any // the stack's outputs of its last run (StackReference to itself)
	mu        sync.Mutex
	resources []registered
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if args.TypeToken == testenv.StackReferenceType {
		return testenv.StackReference(args, r.previous)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := registered{Type: args.TypeToken, Name: args.Name, Inputs: args.Inputs, ImportID: args.ID}
	if rpc := args.RegisterRPC; rpc != nil {
		reg.Protect = rpc.GetProtect()
		reg.RetainOnDelete = rpc.GetRetainOnDelete()
		reg.DeleteBeforeReplace = rpc.GetDeleteBeforeReplace()
		reg.IgnoreChanges = rpc.GetIgnoreChanges()
		reg.ReplaceOnChanges = rpc.GetReplaceOnChanges()
		reg.ReplaceWith = rpc.GetReplaceWith()
		reg.Dependencies = rpc.GetDependencies()
	}
	r.resources = append(r.resources, reg)
	// Outputs = inputs: what the provider would return for a create.
	return args.Name + "-id", args.Inputs.Copy(), nil
}

func (r *recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

// ofType returns the registrations of one type token, keyed by logical name.
func (r *recorder) ofType(typ string) map[string]registered {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]registered{}
	for _, res := range r.resources {
		if res.Type == typ {
			out[res.Name] = res
		}
	}
	return out
}

// run is the result of running the real program of a stack under mocks.
type run struct {
	*recorder
	topology *components.Topology
	outputs  map[string]map[string]any // per server: the resolved component outputs
}

// runStack runs components.Run (what main.go runs) with the config the engine
// would give the stack, after edit (may be nil) has changed it.
func runStack(t *testing.T, stack string, edit func(cfg map[string]string)) (*run, error) {
	t.Helper()
	return runStackIn(t, projectDir(t), stack, edit)
}

func runStackIn(t *testing.T, dir, stack string, edit func(cfg map[string]string)) (*run, error) {
	t.Helper()
	raw, err := spec.MergedConfig(dir, stack)
	require.NoError(t, err)
	if edit != nil {
		edit(raw)
	}
	cfg := map[string]string{}
	for k, v := range raw {
		cfg[spec.Namespace+":"+k] = v
	}
	return runWithConfig(t, dir, stack, cfg)
}

// runEditedProject runs a stack of a copy of the project whose Pulumi.yaml
// shared config was changed by edit: what a developer's edit of Pulumi.yaml does.
func runEditedProject(t *testing.T, stack string, edit func(shared map[string]string)) *run {
	t.Helper()
	r, err := runStackIn(t, editedProject(t, stack, edit), stack, nil)
	require.NoError(t, err)
	return r
}

// editedProject is a copy of the project's Pulumi.yaml, its shared config
// changed by edit, and the stack file: the directory the program runs in.
func editedProject(t *testing.T, stack string, edit func(shared map[string]string)) string {
	t.Helper()
	shared, err := spec.ProjectConfig(projectDir(t))
	require.NoError(t, err)
	edit(shared)
	config := map[string]any{}
	for k, raw := range shared {
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			v = raw // a plain string
		}
		config[k] = map[string]any{"value": v}
	}
	project, err := yaml.Marshal(map[string]any{"name": spec.Namespace, "runtime": "go", "config": config})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), project, 0o644))
	stackFile, err := os.ReadFile(filepath.Join(projectDir(t), "Pulumi."+stack+".yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi."+stack+".yaml"), stackFile, 0o644))
	return dir
}

func runWithConfig(t *testing.T, dir, stack string, cfg map[string]string) (*run, error) {
	t.Helper()
	// A preview (DryRun): the nasd image is built, as in `pulumi preview`, but
	// never loaded into a cluster.
	return runMode(t, dir, stack, cfg, true)
}

// runMode runs the program as a preview (dryRun) or an update.
func runMode(t *testing.T, dir, stack string, cfg map[string]string, dryRun bool) (*run, error) {
	t.Helper()
	return runAfter(t, dir, stack, cfg, dryRun, nil)
}

// runAfter runs the program on a stack whose last run exported previous
// (what the program reads back through a StackReference to its own stack).
func runAfter(t *testing.T, dir, stack string, cfg map[string]string, dryRun bool, previous map[string]any) (*run, error) {
	t.Helper()
	r := &run{recorder: &recorder{previous: previous}, outputs: map[string]map[string]any{}}
	withConfig := func(info *pulumi.RunInfo) { info.Config = maps.Clone(cfg); info.DryRun = dryRun }
	var mu sync.Mutex
	var resolved sync.WaitGroup // applies are not awaited by RunErr
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		topo, err := components.Run(ctx, dir)
		if err != nil {
			return err
		}
		r.topology = topo
		for _, s := range topo.Servers {
			name := s.Volume.Name
			resolved.Add(1)
			pulumi.All(s.NFSAddress, s.NodePort, s.ExportPath, s.VolumeName, s.ClaimName, s.ClaimNamespace, s.MountCommand,
				s.ExternalMountCommand, s.NFSURL, s.PortmapperNodePort).
				ApplyT(func(v []any) error {
					defer resolved.Done()
					mu.Lock()
					defer mu.Unlock()
					r.outputs[name] = map[string]any{
						"nfsAddress": v[0], "nodePort": v[1], "exportPath": v[2], "volumeName": v[3],
						"claimName": v[4], "claimNamespace": v[5], "mountCommand": v[6],
						"externalMountCommand": v[7], "nfsURL": v[8], "portmapperNodePort": v[9],
					}
					return nil
				})
		}
		return nil
	}, pulumi.WithMocks(spec.Namespace, stack, r.recorder), withConfig)
	done := make(chan struct{})
	go func() { resolved.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("stack %s: component outputs did not resolve", stack)
	}
	return r, err
}

// mustRun is runStack for configs that must succeed.
func mustRun(t *testing.T, stack string, edit func(cfg map[string]string)) *run {
	t.Helper()
	r, err := runStack(t, stack, edit)
	require.NoError(t, err)
	return r
}

// Type tokens of the resources the program registers.
const (
	typePV         = "kubernetes:core/v1:PersistentVolume"
	typePVC        = "kubernetes:core/v1:PersistentVolumeClaim"
	typeService    = "kubernetes:core/v1:Service"
	typeDeployment = "kubernetes:apps/v1:Deployment"
	typeNamespace  = "kubernetes:core/v1:Namespace"
	typeSecret     = "kubernetes:core/v1:Secret"
	typeNasServer  = components.NasServerType
)

// path reads a nested property (plain map keys) from a PropertyMap.
func path(m resource.PropertyMap, keys ...string) resource.PropertyValue {
	v := resource.NewObjectProperty(m)
	for _, k := range keys {
		if !v.IsObject() {
			panic(fmt.Sprintf("%v is not an object at %q", v, k))
		}
		v = v.ObjectValue()[resource.PropertyKey(k)]
	}
	return v
}
