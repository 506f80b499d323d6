package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// projectRoot holds the committed Pulumi.yaml and stack files (a pristine
// copy: see tests/testenv), not the working copy's.
func projectRoot(t testing.TB) string { return testenv.ProjectDir(t) }

// committedServers are the server names of Pulumi.yaml, read as plain YAML
// (not through spec), in order.
func committedServers(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(projectRoot(t), "Pulumi.yaml"))
	require.NoError(t, err)
	var project struct {
		Config struct {
			Servers struct {
				Value []struct {
					Name string `yaml:"name"`
				} `yaml:"value"`
			} `yaml:"servers"`
		} `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(b, &project))
	var names []string
	for _, s := range project.Config.Servers.Value {
		names = append(names, s.Name)
	}
	require.NotEmpty(t, names)
	return names
}

const typeDeployment = "kubernetes:apps/v1:Deployment"

// recorder is a mock resource monitor that keeps what the program registers,
// in the shape the engine hands a policy pack.
type recorder struct {
	previous map[string]any // the stack's outputs of its last run (StackReference to itself)
	stack    string
	mu       sync.Mutex
	res      []policyx.AnalyzerResource
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if args.TypeToken == testenv.StackReferenceType {
		return testenv.StackReference(args, r.previous)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res = append(r.res, policyx.AnalyzerResource{
		Type:       args.TypeToken,
		Name:       args.Name,
		URN:        fmt.Sprintf("urn:pulumi:%s::%s::%s::%s", r.stack, spec.Namespace, args.TypeToken, args.Name),
		Properties: resource.FromResourcePropertyMap(args.Inputs),
	})
	return args.Name + "-id", args.Inputs.Copy(), nil // outputs = inputs, as for a create
}

func (r *recorder) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

// programRun is the real program (components.Run, what main.go runs) of one
// stack under mocks, with the config the engine would give it.
type programRun struct {
	resources []policyx.AnalyzerResource
	config    map[string]string // namespaced keys, as ctx.GetConfig sees them
}

func runProgram(t *testing.T, stack string) programRun {
	t.Helper()
	dir := projectRoot(t)
	raw, err := spec.MergedConfig(dir, stack)
	require.NoError(t, err)
	withPrebuiltImage(t, raw)
	cfg := map[string]string{}
	for k, v := range raw {
		cfg[spec.Namespace+":"+k] = v
	}
	rec := &recorder{stack: stack}
	err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := components.Run(ctx, dir)
		return err
	}, pulumi.WithMocks(spec.Namespace, stack, rec), func(info *pulumi.RunInfo) {
		info.Config = maps.Clone(cfg)
		info.DryRun = true // a preview: the pack runs there first (and the preflight only warns)
	})
	require.NoError(t, err)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return programRun{resources: slices.Clone(rec.res), config: cfg}
}

// withPrebuiltImage points a cluster stack at a prebuilt nasd reference
// (image loader "none"), so that running the program neither builds the nasd
// image nor loads it into a cluster: the rules do not look at the image.
func withPrebuiltImage(t *testing.T, raw map[string]string) {
	t.Helper()
	c, ok := raw[spec.KeyCluster]
	if !ok {
		return
	}
	var cluster map[string]any
	require.NoError(t, json.Unmarshal([]byte(c), &cluster))
	if _, ok := cluster["imageLoader"]; !ok {
		return
	}
	cluster["imageLoader"] = "none"
	cluster["image"] = "nasd:policy-test"
	b, err := json.Marshal(cluster)
	require.NoError(t, err)
	raw[spec.KeyCluster] = string(b)
}

// stackConfig is what the pack reads from the config the engine passes it.
func (p programRun) stackConfig() stackConfig {
	return readStackConfig(func(k string) (string, bool) { v, ok := p.config[k]; return v, ok })
}

// find returns the registered resource of a type and name.
func (p programRun) find(t *testing.T, typ, name string) policyx.AnalyzerResource {
	t.Helper()
	for _, r := range p.resources {
		if r.Type == typ && r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s %q registered", typ, name)
	return policyx.AnalyzerResource{}
}

// replaced is the stack's resources with one resource's properties changed.
func (p programRun) replaced(t *testing.T, typ, name string, edit func(property.Map) property.Map) []policyx.AnalyzerResource {
	t.Helper()
	out := slices.Clone(p.resources)
	found := false
	for i, r := range out {
		if r.Type == typ && r.Name == name {
			out[i].Properties = edit(r.Properties)
			found = true
		}
	}
	require.True(t, found, "no %s %q registered", typ, name)
	return out
}

// unknown marks a value as not known yet (a computed output at preview).
var unknown = property.New(property.Computed)

// val turns plain Go test data into a property value.
func val(v any) property.Value {
	switch v := v.(type) {
	case property.Value:
		return v
	case nil:
		return property.Value{}
	case string:
		return property.New(v)
	case bool:
		return property.New(v)
	case int:
		return property.New(float64(v))
	case float64:
		return property.New(v)
	case []string:
		vs := make([]property.Value, len(v))
		for i, s := range v {
			vs[i] = property.New(s)
		}
		return property.New(vs)
	case map[string]any:
		m := map[string]property.Value{}
		for k, e := range v {
			m[k] = val(e)
		}
		return property.New(m)
	}
	panic(fmt.Sprintf("val: unsupported %T", v))
}

// set returns m with the value at path (map keys and array indexes) replaced.
func set(path string, v any) func(property.Map) property.Map {
	return func(m property.Map) property.Map {
		var segs []property.PathSegment
		for _, s := range splitPath(path) {
			var i int
			if _, err := fmt.Sscanf(s, "%d", &i); err == nil && fmt.Sprint(i) == s {
				segs = append(segs, property.NewSegment(i))
			} else {
				segs = append(segs, property.NewSegment(s))
			}
		}
		out, err := property.PathFromSegments(segs...).Set(property.New(m), val(v))
		if err != nil {
			panic(fmt.Sprintf("set %s: %v", path, err))
		}
		return out.AsMap()
	}
}

// splitPath splits on "." except inside [brackets], so label keys such as
// [app.kubernetes.io/name] stay whole.
func splitPath(p string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == '.' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

// edits chains several edits.
func edits(fs ...func(property.Map) property.Map) func(property.Map) property.Map {
	return func(m property.Map) property.Map {
		for _, f := range fs {
			m = f(m)
		}
		return m
	}
}

// messages are the messages of findings.
func messages(fs []finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.msg
	}
	return out
}

// requireFinding asserts that exactly the wanted outcome happened: no finding
// when want is "", else one whose message contains want.
func requireFinding(t *testing.T, fs []finding, want string) {
	t.Helper()
	if want == "" {
		require.Empty(t, messages(fs))
		return
	}
	for _, f := range fs {
		if strings.Contains(f.msg, want) {
			return
		}
	}
	t.Fatalf("no finding contains %q; got:\n%s", want, strings.Join(messages(fs), "\n"))
}
