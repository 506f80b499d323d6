package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nas-topology/nas-topology/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// projectDir holds the committed Pulumi.yaml and stack files: a pristine
// copy (tests/testenv), so a developer's `pulumi config set` never changes
// what the tests expect.
func projectDir(t testing.TB) string { return testenv.ProjectDir(t) }

// committedServer is a server of Pulumi.yaml as plain YAML.
type committedServer struct {
	Name        string                           `yaml:"name"`
	Role        string                           `yaml:"role"`
	FSID        int                              `yaml:"fsid"`
	ExportPath  string                           `yaml:"exportPath"`
	Capacity    string                           `yaml:"capacity"`
	AccessModes []string                         `yaml:"accessModes"`
	ReadOnly    bool                             `yaml:"readOnly"`
	VolumeName  string                           `yaml:"volumeName"`
	Claim       struct{ Namespace, Name string } `yaml:"claim"`
	Labels      map[string]string                `yaml:"labels"`
}

type clusterPlacement struct {
	ClusterIP          string `yaml:"clusterIP"`
	NodePort           int    `yaml:"nodePort"`
	PortmapperNodePort int    `yaml:"portmapperNodePort"`
}

// committedConfig is the committed configuration read as plain YAML, not
// through components/spec: the tests' expectations come from the files, not
// from the code under test.
type committedConfig struct {
	NasNamespace     string
	StorageClassName string
	ReclaimPolicy    string
	MountOptions     []string
	Labels           map[string]string
	Servers          []committedServer
	Cluster          struct {
		WindowsRoot     string                      `yaml:"windowsRoot"`
		ExportSizeLimit string                      `yaml:"exportSizeLimit"`
		Servers         map[string]clusterPlacement `yaml:"servers"`
	}
	External struct {
		Addresses map[string]string `yaml:"addresses"`
	}
}

func committedIn(t testing.TB, dir string) committedConfig {
	t.Helper()
	read := func(file string, out any) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, out))
	}
	var project struct {
		Config struct {
			NasNamespace     struct{ Value string }            `yaml:"nasNamespace"`
			StorageClassName struct{ Value string }            `yaml:"storageClassName"`
			ReclaimPolicy    struct{ Value string }            `yaml:"reclaimPolicy"`
			MountOptions     struct{ Value []string }          `yaml:"mountOptions"`
			Labels           struct{ Value map[string]string } `yaml:"labels"`
			Servers          struct{ Value []committedServer } `yaml:"servers"`
		} `yaml:"config"`
	}
	read("Pulumi.yaml", &project)
	c := committedConfig{
		NasNamespace:     project.Config.NasNamespace.Value,
		StorageClassName: project.Config.StorageClassName.Value,
		ReclaimPolicy:    project.Config.ReclaimPolicy.Value,
		MountOptions:     project.Config.MountOptions.Value,
		Labels:           project.Config.Labels.Value,
		Servers:          project.Config.Servers.Value,
	}
	var dev struct {
		Config struct {
			Cluster yaml.Node `yaml:"nas-topology:cluster"`
		} `yaml:"config"`
	}
	read("Pulumi.dev.yaml", &dev)
	require.NoError(t, dev.Config.Cluster.Decode(&c.Cluster))
	var ocp struct {
		Config struct {
			External yaml.Node `yaml:"nas-topology:external"`
		} `yaml:"config"`
	}
	read("Pulumi.ocp.yaml", &ocp)
	require.NoError(t, ocp.Config.External.Decode(&c.External))
	require.NotEmpty(t, c.Servers)
	return c
}

// committed is the configuration the tests run with.
func committed(t testing.TB) committedConfig { return committedIn(t, projectDir(t)) }

func (c committedConfig) names() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.Name)
	}
	return out
}

func (c committedConfig) server(name string) committedServer {
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	panic("no server " + name)
}

// ofRole is the first server of a role.
func (c committedConfig) ofRole(t testing.TB, role string) committedServer {
	t.Helper()
	for _, s := range c.Servers {
		if s.Role == role {
			return s
		}
	}
	t.Fatalf("no %s server in Pulumi.yaml", role)
	return committedServer{}
}

// claimNamespaces are the namespaces of the claims, each once.
func (c committedConfig) claimNamespaces() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range c.Servers {
		if !seen[s.Claim.Namespace] {
			seen[s.Claim.Namespace] = true
			out = append(out, s.Claim.Namespace)
		}
	}
	return out
}
