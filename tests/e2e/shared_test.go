//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// outcome is what the README ("What a shared change does") says `pulumi up`
// does with a change of one shared field.
type outcome string

const (
	inPlace  outcome = "updated in place"             // same PV/PVC objects, new value
	replaced outcome = "replaced"                     // dev: new PV/PVC; ocp: refused at preview with the migration path
	workload outcome = "nasd only"                    // dev: the Deployment; the PV/PVC are not touched (ocp: no change)
	invalid  outcome = "refused by the configuration" // both: preview fails naming the field
)

// sharedCase is one shared field of Pulumi.yaml and a change of it.
type sharedCase struct {
	field    string // the config key, servers[].<key> for a server's
	dev, ocp outcome
	// edit changes the field in the config: the shared keys' values, and the
	// value of the changed server (srv) in servers.
	edit func(c *sharedConfig)
	// message is in the error of an invalid change.
	message string
}

// sharedConfig is Pulumi.yaml's config block while a case edits it.
type sharedConfig struct {
	t      *testing.T
	root   *yaml.Node
	server string
}

// sharedCases covers every key of Pulumi.yaml's config and every field of a
// server (TestEverySharedFieldHasACase). The server a case changes is
// changedServer's.
func sharedCases() []sharedCase {
	return []sharedCase{
		{field: spec.KeyNasNamespace, dev: workload, ocp: workload,
			edit: func(c *sharedConfig) { c.set(c.value(spec.KeyNasNamespace), "nas-system-2") }},
		{field: spec.KeyStorageClassName, dev: replaced, ocp: replaced,
			edit: func(c *sharedConfig) { c.set(c.value(spec.KeyStorageClassName), "nas-static-2") }},
		{field: spec.KeyReclaimPolicy, dev: invalid, ocp: invalid, message: "reclaimPolicy",
			edit: func(c *sharedConfig) { c.set(c.value(spec.KeyReclaimPolicy), "Delete") }},
		{field: spec.KeyMountOptions, dev: inPlace, ocp: inPlace,
			edit: func(c *sharedConfig) {
				opts := c.value(spec.KeyMountOptions)
				for _, o := range opts.Content {
					if strings.HasPrefix(o.Value, "timeo=") {
						o.Value = "timeo=300"
					}
				}
			}},
		{field: spec.KeyLabels, dev: inPlace, ocp: inPlace,
			edit: func(c *sharedConfig) { c.setKey(c.value(spec.KeyLabels), "team", "storage") }},
		{field: "servers[].name", dev: invalid, ocp: invalid, message: "-renamed: is missing",
			// A rename is a new server: it needs a placement in every stack
			// file (README, Adding a server), which this change lacks.
			edit: func(c *sharedConfig) { c.set(c.field("name"), c.server+"-renamed") }},
		{field: "servers[].role", dev: workload, ocp: workload,
			edit: func(c *sharedConfig) { c.set(c.field("role"), string(spec.RoleInput)) }},
		{field: "servers[].fsid", dev: workload, ocp: workload,
			edit: func(c *sharedConfig) { c.set(c.field("fsid"), "1000") }},
		{field: "servers[].exportPath", dev: replaced, ocp: replaced,
			edit: func(c *sharedConfig) { c.set(c.field("exportPath"), "/exports/"+c.server+"-moved") }},
		{field: "servers[].capacity", dev: replaced, ocp: replaced,
			edit: func(c *sharedConfig) { c.set(c.field("capacity"), "3Ti") }},
		{field: "servers[].accessModes", dev: replaced, ocp: replaced,
			edit: func(c *sharedConfig) {
				c.field("accessModes").Content = append(c.field("accessModes").Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "ReadWriteOnce"})
			}},
		{field: "servers[].readOnly", dev: replaced, ocp: replaced,
			// A read-only export takes ReadOnlyMany only (validation).
			edit: func(c *sharedConfig) {
				c.setKey(c.serverNode(), "readOnly", "true")
				modes := c.field("accessModes")
				modes.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Value: "ReadOnlyMany"}}
			}},
		{field: "servers[].volumeName", dev: replaced, ocp: replaced,
			edit: func(c *sharedConfig) { c.set(c.field("volumeName"), c.server+"-v2") }},
		{field: "servers[].claim", dev: replaced, ocp: replaced,
			edit: func(c *sharedConfig) { c.setKey(c.field("claim"), "name", c.server+"-claim-2") }},
		{field: "servers[].labels", dev: inPlace, ocp: inPlace,
			edit: func(c *sharedConfig) { c.setKey(c.field("labels"), "tier", "gold") }},
	}
}

// changedServer is the server the cases change: the first output server of
// the config (writable, so readOnly can change).
func changedServer(t *testing.T) string {
	t.Helper()
	for _, s := range loadConfig(t, repoRoot, "dev").Servers {
		if s.Role == spec.RoleOutput {
			return s.Name
		}
	}
	t.Fatal("no output server in Pulumi.yaml")
	return ""
}

// loadConfig is the validated config of a stack of the project in dir.
func loadConfig(t *testing.T, dir, stack string) *spec.Config {
	t.Helper()
	raw, err := spec.MergedConfig(dir, stack)
	require.NoError(t, err)
	cfg, err := spec.Load(func(k string) (string, bool) { v, ok := raw[k]; return v, ok })
	require.NoError(t, err)
	return cfg
}

// Every key of Pulumi.yaml's config and every field of a server has a case:
// a new shared field cannot go untested.
func TestEverySharedFieldHasACase(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range sharedCases() {
		covered[c.field] = true
	}
	for _, k := range spec.SharedKeys {
		if k != spec.KeyServers {
			assert.True(t, covered[k], "no e2e case changes %s", k)
		}
	}
	for i, typ := 0, reflect.TypeFor[spec.Server](); i < typ.NumField(); i++ {
		key := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		assert.True(t, covered["servers[]."+key], "no e2e case changes servers[].%s", key)
	}
}

func (c *sharedConfig) value(key string) *yaml.Node {
	c.t.Helper()
	cfg := mapValue(c.root.Content[0], "config")
	require.NotNil(c.t, cfg, "Pulumi.yaml has no config")
	entry := mapValue(cfg, key)
	require.NotNil(c.t, entry, "Pulumi.yaml config has no %s", key)
	v := mapValue(entry, "value")
	require.NotNil(c.t, v, "Pulumi.yaml config %s has no value", key)
	return v
}

func (c *sharedConfig) serverNode() *yaml.Node {
	c.t.Helper()
	for _, s := range c.value(spec.KeyServers).Content {
		if n := mapValue(s, "name"); n != nil && n.Value == c.server {
			return s
		}
	}
	c.t.Fatalf("no server %s in Pulumi.yaml", c.server)
	return nil
}

func (c *sharedConfig) field(key string) *yaml.Node {
	c.t.Helper()
	v := mapValue(c.serverNode(), key)
	require.NotNil(c.t, v, "server %s has no %s", c.server, key)
	return v
}

func (c *sharedConfig) set(n *yaml.Node, value string) {
	n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "", value, 0
}

// setKey sets key in mapping m, adding it when missing.
func (c *sharedConfig) setKey(m *yaml.Node, key, value string) {
	if v := mapValue(m, key); v != nil {
		c.set(v, value)
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// applyCase edits the project's Pulumi.yaml as the case says and returns a
// function that restores it.
func (p *project) applyCase(c sharedCase, server string) (restore func()) {
	p.t.Helper()
	path := filepath.Join(p.dir, "Pulumi.yaml")
	before, err := os.ReadFile(path)
	require.NoError(p.t, err)
	var root yaml.Node
	require.NoError(p.t, yaml.Unmarshal(before, &root))
	c.edit(&sharedConfig{t: p.t, root: &root, server: server})
	after, err := yaml.Marshal(&root)
	require.NoError(p.t, err)
	require.NoError(p.t, os.WriteFile(path, after, 0o644))
	return func() { require.NoError(p.t, os.WriteFile(path, before, 0o644)) }
}

// liveVolume is a server's PV and PVC as the cluster has them.
type liveVolume struct {
	pv, pvc map[string]any
}

func getVolume(t *testing.T, v components.Volume) liveVolume {
	t.Helper()
	var l liveVolume
	kubectlJSON(t, &l.pv, "get", "pv", v.Name)
	kubectlJSON(t, &l.pvc, "get", "pvc", "-n", v.Claim.Namespace, v.Claim.Name)
	return l
}

func (l liveVolume) uids() string {
	return field(l.pv, "metadata", "uid").(string) + "/" + field(l.pvc, "metadata", "uid").(string)
}

// requireMatches checks every field of the live PV and PVC against the
// definition rendered from the project's config.
func requireMatches(t *testing.T, what string, v components.Volume, nfsServer string, l liveVolume) {
	t.Helper()
	strs := func(x any) []string {
		var out []string
		for _, e := range x.([]any) {
			out = append(out, e.(string))
		}
		return out
	}
	pv, pvc := l.pv, l.pvc
	assert.Equal(t, nfsServer, field(pv, "spec", "nfs", "server"), "%s: PV nfs.server", what)
	assert.Equal(t, v.ExportPath, field(pv, "spec", "nfs", "path"), "%s: PV nfs.path", what)
	assert.Equal(t, v.ReadOnly, field(pv, "spec", "nfs", "readOnly") == true, "%s: PV nfs.readOnly", what)
	assert.Equal(t, v.Capacity, field(pv, "spec", "capacity", "storage"), "%s: PV capacity", what)
	assert.Equal(t, v.AccessModes, strs(field(pv, "spec", "accessModes")), "%s: PV accessModes", what)
	assert.Equal(t, v.MountOptions, strs(field(pv, "spec", "mountOptions")), "%s: PV mountOptions", what)
	assert.Equal(t, v.StorageClassName, field(pv, "spec", "storageClassName"), "%s: PV storageClassName", what)
	assert.Equal(t, v.ReclaimPolicy, field(pv, "spec", "persistentVolumeReclaimPolicy"), "%s: PV reclaimPolicy", what)
	assert.Equal(t, v.Claim.Namespace, field(pv, "spec", "claimRef", "namespace"), "%s: PV claimRef", what)
	assert.Equal(t, v.Claim.Name, field(pv, "spec", "claimRef", "name"), "%s: PV claimRef", what)
	assert.Equal(t, v.Name, field(pvc, "spec", "volumeName"), "%s: PVC volumeName", what)
	assert.Equal(t, v.Capacity, field(pvc, "spec", "resources", "requests", "storage"), "%s: PVC request", what)
	assert.Equal(t, v.AccessModes, strs(field(pvc, "spec", "accessModes")), "%s: PVC accessModes", what)
	assert.Equal(t, v.StorageClassName, field(pvc, "spec", "storageClassName"), "%s: PVC storageClassName", what)
	for k, want := range v.Labels {
		assert.Equal(t, want, field(pv, "metadata", "labels", k), "%s: PV label %s", what, k)
		assert.Equal(t, want, field(pvc, "metadata", "labels", k), "%s: PVC label %s", what, k)
	}
}

// volumeOf is the rendered volume of a server in the project's config.
func volumeOf(t *testing.T, cfg *spec.Config, server string) components.Volume {
	t.Helper()
	for _, s := range cfg.Servers {
		if s.Name == server {
			return components.VolumeFor(cfg.Shared, s)
		}
	}
	t.Fatalf("no server %s", server)
	return components.Volume{}
}

// waitVolumeBound waits until the PVC and the PV of v are Bound.
func waitVolumeBound(t *testing.T, v components.Volume) {
	t.Helper()
	out, err := kubectl(t, "wait", "pvc", "-n", v.Claim.Namespace, v.Claim.Name, "--for=jsonpath={.status.phase}=Bound", "--timeout=60s")
	require.NoError(t, err, out)
	out, err = kubectl(t, "wait", "pv", v.Name, "--for=jsonpath={.status.phase}=Bound", "--timeout=60s")
	require.NoError(t, err, out)
}

// deploymentArgs is the nasd command line of a server's Deployment.
func deploymentArgs(t *testing.T, namespace, server string) []string {
	t.Helper()
	var d map[string]any
	kubectlJSON(t, &d, "get", "deployment", "-n", namespace, server)
	var out []string
	for _, a := range field(d, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

// replaceMessage is the dev warning of a replacement (components/placement.go).
const replaceMessage = "Deleting the claim waits until no pod mounts it"

// everySharedFieldOnDev applies each case to the deployed dev stack with
// `pulumi up`, checks the README's outcome on the live objects, and restores
// the definition (another up) before the next case.
func everySharedFieldOnDev(t *testing.T, p *project) {
	server := changedServer(t)
	base := loadConfig(t, p.dir, "dev")
	orig := volumeOf(t, base, server)
	addr := base.Cluster.Servers[server].ClusterIP
	for _, c := range sharedCases() {
		t.Run("dev/"+c.field, func(t *testing.T) {
			before := getVolume(t, orig)
			restore := p.applyCase(c, server)
			defer func() {
				restore()
				p.pulumi("up", "--stack", "dev", "--yes", "--skip-preview")
				waitVolumeBound(t, orig)
				requireMatches(t, "restored", orig, addr, getVolume(t, orig))
			}()
			if c.dev == invalid {
				out, err := p.pulumiErr("preview", "--stack", "dev")
				require.Error(t, err, out)
				assert.Contains(t, out, c.message)
				return
			}
			cfg := loadConfig(t, p.dir, "dev")
			want := volumeOf(t, cfg, server)
			out := p.pulumi("up", "--stack", "dev", "--yes", "--skip-preview")
			waitVolumeBound(t, want)
			after := getVolume(t, want)
			requireMatches(t, c.field, want, addr, after)
			switch c.dev {
			case replaced:
				assert.NotEqual(t, before.uids(), after.uids(), "%s: a new PV and PVC", c.field)
				assert.Contains(t, out, replaceMessage)
				assert.Contains(t, out, server+": ")
			case inPlace:
				assert.Equal(t, before.uids(), after.uids(), "%s: the same PV and PVC, changed in place", c.field)
				assert.NotContains(t, out, replaceMessage)
			case workload:
				assert.Equal(t, before.uids(), after.uids(), "%s: the PV and PVC are not touched", c.field)
				args := deploymentArgs(t, cfg.NasNamespace, server)
				for _, s := range cfg.Servers {
					if s.Name == server {
						assert.Contains(t, args, "--fsid="+strconv.Itoa(*s.FSID))
						assert.Contains(t, args, "--role="+string(s.Role))
					}
				}
			}
		})
	}
}

// everySharedFieldOnProduction runs each case against the adopted ocp
// stack: a change Kubernetes can make is applied in place (same objects,
// still Bound); one it cannot is refused at preview with the migration path
// and leaves production alone; nasd's fields change nothing.
func everySharedFieldOnProduction(t *testing.T, p *project) {
	server := changedServer(t)
	base := loadConfig(t, p.dir, "ocp")
	orig := volumeOf(t, base, server)
	addr := base.External.Addresses[server]
	for _, c := range sharedCases() {
		t.Run("ocp/"+c.field, func(t *testing.T) {
			all := uids(t)
			restore := p.applyCase(c, server)
			switch c.ocp {
			case invalid:
				defer restore()
				out, err := p.pulumiErr("preview", "--stack", "ocp")
				require.Error(t, err, out)
				assert.Contains(t, out, c.message)
			case replaced:
				defer restore()
				out, err := p.pulumiErr("preview", "--stack", "ocp")
				require.Error(t, err, out)
				assert.Contains(t, out, "refusing to replace production volumes")
				assert.Contains(t, out, server+": ")
				assert.Contains(t, out, components.MigrationSteps)
				out, err = p.pulumiErr("up", "--stack", "ocp", "--yes", "--skip-preview")
				require.Error(t, err, "up --skip-preview is refused the same way:\n%s", out)
				assert.Contains(t, out, "refusing to replace production volumes")
				assert.Equal(t, all, uids(t), "nothing in production changed")
				requireMatches(t, c.field+" (refused)", orig, addr, getVolume(t, orig))
			case workload:
				defer restore()
				p.pulumi("preview", "--stack", "ocp", "--expect-no-changes")
			case inPlace:
				want := volumeOf(t, loadConfig(t, p.dir, "ocp"), server)
				p.pulumi("up", "--stack", "ocp", "--yes", "--skip-preview")
				requireAllBound(t)
				assert.Equal(t, all, uids(t), "%s: the same objects, changed in place", c.field)
				requireMatches(t, c.field, want, addr, getVolume(t, want))
				restore()
				p.pulumi("up", "--stack", "ocp", "--yes", "--skip-preview")
				requireMatches(t, "restored", orig, addr, getVolume(t, orig))
			}
		})
	}
}

// replacementWaitsForThePods: an app pod uses the claim when a change
// replaces it. Kubernetes keeps the claim (Terminating) while the pod runs,
// so `pulumi up` waits, having said why; once the app is stopped the
// replacement completes and the new claim binds.
func replacementWaitsForThePods(t *testing.T, p *project) {
	server := changedServer(t)
	orig := volumeOf(t, loadConfig(t, p.dir, "dev"), server)
	pod := filepath.Join(t.TempDir(), "app.yaml")
	require.NoError(t, os.WriteFile(pod, []byte(`apiVersion: v1
kind: Pod
metadata: {name: app-using-the-claim, namespace: `+orig.Claim.Namespace+`}
spec:
  containers: [{name: app, image: app.invalid/app, volumeMounts: [{name: data, mountPath: /data}]}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: `+orig.Claim.Name+`}}]
`), 0o644))
	out, err := kubectl(t, "create", "-f", pod)
	require.NoError(t, err, out)
	out, err = kubectl(t, "wait", "-f", pod, "--for=condition=Ready", "--timeout=60s")
	require.NoError(t, err, out)

	var exportPath sharedCase
	for _, c := range sharedCases() {
		if c.field == "servers[].exportPath" {
			exportPath = c
		}
	}
	restore := p.applyCase(exportPath, server)
	log := filepath.Join(t.TempDir(), "up.log")
	f, err := os.Create(log)
	require.NoError(t, err)
	up := exec.Command("pulumi", "up", "--stack", "dev", "--yes", "--skip-preview", "--non-interactive")
	up.Dir, up.Env, up.Stdout, up.Stderr = p.dir, p.env, f, f
	require.NoError(t, up.Start())
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()

	// The claim is being deleted and stays: the pod still uses it.
	deadline := time.Now().Add(120 * time.Second)
	for {
		var pvc map[string]any
		kubectlJSON(t, &pvc, "get", "pvc", "-n", orig.Claim.Namespace, orig.Claim.Name)
		if field(pvc, "metadata", "deletionTimestamp") != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the claim was never deleted")
		time.Sleep(time.Second)
	}
	select {
	case err := <-done:
		b, _ := os.ReadFile(log)
		t.Fatalf("up finished (%v) while a pod still used the claim:\n%s", err, b)
	case <-time.After(10 * time.Second):
	}
	var pvc map[string]any
	kubectlJSON(t, &pvc, "get", "pvc", "-n", orig.Claim.Namespace, orig.Claim.Name)
	assert.Contains(t, field(pvc, "metadata", "finalizers"), "kubernetes.io/pvc-protection", "the claim is held by its pod")

	// The app stops: the replacement goes on.
	t.Logf("up waits for the claim while its pod runs (%s since up started)", time.Since(started).Round(time.Second))
	out, err = kubectl(t, "delete", "-f", pod, "--grace-period=0", "--force")
	require.NoError(t, err, out)
	select {
	case err := <-done:
		b, _ := os.ReadFile(log)
		require.NoError(t, err, "%s", b)
		assert.Contains(t, string(b), replaceMessage)
		t.Logf("up finished %s after it started", time.Since(started).Round(time.Second))
	case <-time.After(5 * time.Minute):
		_ = up.Process.Kill()
		t.Fatal("up did not finish after the pod was gone")
	}
	want := volumeOf(t, loadConfig(t, p.dir, "dev"), server)
	waitVolumeBound(t, want)
	restore()
	p.pulumi("up", "--stack", "dev", "--yes", "--skip-preview")
	waitVolumeBound(t, orig)
}
