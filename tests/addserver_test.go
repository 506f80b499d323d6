package tests

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/testenv"
)

// envNested marks the inner `go test` of TestAddingAServerAsTheREADMESays.
const envNested = "NAS_TEST_NESTED"

// The working copy's own files (what `pulumi up` will use, edits and all)
// must be valid, whatever they set: the other tests use the committed copy.
func TestWorkingCopyConfigIsValid(t *testing.T) {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	project, err := spec.ProjectConfig(root)
	require.NoError(t, err)
	for _, stack := range []string{"dev", "ocp"} {
		if _, err := os.Stat(filepath.Join(root, "Pulumi."+stack+".yaml")); err != nil {
			continue
		}
		raw, err := spec.MergedConfig(root, stack)
		require.NoError(t, err, stack)
		get := func(k string) (string, bool) { v, ok := raw[k]; return v, ok }
		require.NoError(t, spec.CheckSharedNotOverridden(project, get), stack)
		_, err = spec.Load(get)
		require.NoError(t, err, "Pulumi.%s.yaml of the working copy", stack)
	}
}

// README "Adding a server": append it to servers in Pulumi.yaml, give it a
// placement in every stack file, `make test`. Done here in a temp copy, then
// the unit tests of spec, the program and the policy pack run against it.
func TestAddingAServerAsTheREADMESays(t *testing.T) {
	if os.Getenv(envNested) != "" {
		t.Skip("inside the run this test started")
	}
	if testing.Short() {
		t.Skip("runs the unit tests again (-short)")
	}
	dir := t.TempDir()
	for _, f := range testenv.ConfigFiles {
		b, err := os.ReadFile(filepath.Join(projectDir(t), f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	cfg := committedIn(t, dir)
	name := fmt.Sprintf("nas-input-%d", len(cfg.Servers)+1)
	for slices.Contains(cfg.names(), name) {
		name += "x"
	}
	fsid := 0
	for _, s := range cfg.Servers {
		fsid = max(fsid, s.FSID)
	}

	// 1. Append it to servers in Pulumi.yaml with a new unique fsid, ...
	editYAML(t, filepath.Join(dir, "Pulumi.yaml"), []string{"config", "servers", "value"}, func(n *yaml.Node) {
		n.Content = append(n.Content, yamlNode(t, map[string]any{
			"name": name, "role": "input", "fsid": fsid + 1, "exportPath": "/exports/" + name,
			"capacity": "100Gi", "accessModes": []string{"ReadWriteMany"}, "volumeName": name,
			"claim":  map[string]string{"namespace": cfg.Servers[0].Claim.Namespace, "name": name},
			"labels": map[string]string{"nas-topology/role": "input"},
		}))
	})
	// 2. ... a placement in every stack file: a free clusterIP and two free
	// node ports in Pulumi.dev.yaml, an address in Pulumi.ocp.yaml.
	var ips []netip.Addr
	var ports []int
	for _, p := range cfg.Cluster.Servers {
		ips = append(ips, netip.MustParseAddr(p.ClusterIP))
		ports = append(ports, p.NodePort, p.PortmapperNodePort)
	}
	ip := slices.MaxFunc(ips, netip.Addr.Compare).Next()
	port := slices.Max(ports)
	editYAML(t, filepath.Join(dir, "Pulumi.dev.yaml"), []string{"config", "nas-topology:cluster", "servers"}, func(n *yaml.Node) {
		n.Content = append(n.Content, yamlNode(t, name), yamlNode(t, map[string]any{
			"clusterIP": ip.String(), "nodePort": port + 1, "portmapperNodePort": port + 2,
		}))
	})
	var addrs []netip.Addr
	for _, a := range cfg.External.Addresses {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	editYAML(t, filepath.Join(dir, "Pulumi.ocp.yaml"), []string{"config", "nas-topology:external", "addresses"}, func(n *yaml.Node) {
		n.Content = append(n.Content, yamlNode(t, name), yamlNode(t, slices.MaxFunc(addrs, netip.Addr.Compare).Next().String()))
	})
	require.Len(t, committedIn(t, dir).Servers, len(cfg.Servers)+1)

	// 3. make test: the unit tests, against the copy.
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	cmd := exec.Command("go", "test", "-count=1", "-v", "./components/...", "./tests/", "./policy/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), testenv.EnvProjectDir+"="+dir, envNested+"=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the unit tests fail with server %s added:\n%s", name, failures(string(out)))
	// They did see it: per-server subtests ran for the new server.
	for _, want := range []string{
		"--- PASS: TestVolumeFieldsMatchTheSharedConfig/dev/" + name,
		"--- PASS: TestVolumeFieldsMatchTheSharedConfig/ocp/" + name,
		"--- PASS: TestNasdMountsItsHandleKeyReadOnly/" + name,
		"--- PASS: TestDeploymentsMeetTheRestrictedPodSecurityStandard/" + name,
	} {
		require.Contains(t, string(out), want)
	}
}

// failures are the lines of a `go test -v` output that tell what failed.
func failures(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "=== ") && !strings.Contains(l, "--- PASS") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 200 {
		keep = keep[len(keep)-200:]
	}
	return strings.Join(keep, "\n")
}

// editYAML changes the node at a path of mapping keys in a YAML file, keeping
// the rest of the file (comments included) as it is.
func editYAML(t *testing.T, file string, keys []string, f func(*yaml.Node)) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(b, &doc))
	n := doc.Content[0]
	for _, k := range keys {
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		require.NotNil(t, next, "%s: no %s", file, strings.Join(keys, "."))
		n = next
	}
	f(n)
	out, err := yaml.Marshal(&doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, out, 0o644))
}

func yamlNode(t *testing.T, v any) *yaml.Node {
	t.Helper()
	var n yaml.Node
	require.NoError(t, n.Encode(v))
	return &n
}
