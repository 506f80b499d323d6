//go:build e2e

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tools/parity"
)

// serverNames are the servers of the repository's Pulumi.yaml, the project
// every e2e test copies.
func serverNames(t *testing.T) []string {
	t.Helper()
	cfg, err := spec.MergedConfig(repoRoot, "dev")
	require.NoError(t, err)
	c, err := spec.Load(func(k string) (string, bool) { v, ok := cfg[k]; return v, ok })
	require.NoError(t, err)
	var names []string
	for _, s := range c.Servers {
		names = append(names, s.Name)
	}
	return names
}

// devPlacement is Pulumi.dev.yaml's cluster config, the expected values.
func devPlacement(t *testing.T) *spec.Cluster {
	t.Helper()
	cfg, err := spec.MergedConfig(repoRoot, "dev")
	require.NoError(t, err)
	var c spec.Cluster
	require.NoError(t, json.Unmarshal([]byte(cfg[spec.KeyCluster]), &c))
	return &c
}

// The dev stack through its whole life on a real API server: preview, up,
// the objects as the cluster has them, outputs, an idempotent second up, destroy.
func TestDevStackLifecycle(t *testing.T) {
	p := newProject(t)
	p.initStack("dev")
	// No minikube here: kwok never pulls images, so the built image is used unloaded.
	p.pulumi("config", "set", "--stack", "dev", "--path", "nas-topology:cluster.imageLoader", "none")
	placement := devPlacement(t)
	servers := serverNames(t)

	// Against the real API server, with the policy pack.
	out := p.pulumi("preview", "--stack", "dev", "--policy-pack", "policy")
	assert.Contains(t, out, "to create")
	assert.Contains(t, out, "nas-topology@v0.1.0")

	p.pulumi("up", "--stack", "dev", "--yes", "--skip-preview")
	t.Cleanup(func() {
		// Leave the shared cluster clean even when an assertion failed midway.
		if t.Failed() {
			_, _ = p.pulumiErr("destroy", "--stack", "dev", "--yes", "--skip-preview")
		}
	})

	var deploys, svcs, pvs, pvcs, secrets k8sList
	kubectlJSON(t, &deploys, "get", "deployments", "-n", "nas-system")
	kubectlJSON(t, &secrets, "get", "secrets", "-n", "nas-system", "-l", "app.kubernetes.io/part-of=nas-topology")
	kubectlJSON(t, &svcs, "get", "services", "-n", "nas-system")
	kubectlJSON(t, &pvs, "get", "pv", "-l", "app.kubernetes.io/part-of=nas-topology")
	kubectlJSON(t, &pvcs, "get", "pvc", "-n", "nas-apps")

	require.Len(t, deploys.Items, len(servers))
	for _, d := range deploys.Items {
		name := field(d, "metadata", "name").(string)
		containers := field(d, "spec", "template", "spec", "containers").([]any)
		assert.Regexp(t, `^nas-topology\.invalid/nasd:sha-[0-9a-f]{12}$`, containers[0].(map[string]any)["image"], "%s runs the built image", name)
		available := false
		for _, c := range field(d, "status", "conditions").([]any) {
			cond := c.(map[string]any)
			if cond["type"] == "Available" && cond["status"] == "True" {
				available = true
			}
		}
		assert.True(t, available, "Deployment %s is not Available", name)
	}

	// One handle key Secret per server, 32 bytes; the second up below must
	// leave them alone although every run of the program draws a new key.
	require.Len(t, secrets.Items, len(servers))
	keys := map[string]string{}
	for _, s := range secrets.Items {
		name := field(s, "metadata", "name").(string)
		key, err := base64.StdEncoding.DecodeString(field(s, "data", "handle.key").(string))
		require.NoError(t, err, name)
		assert.Len(t, key, 32, name)
		keys[name] = string(key)
	}
	for _, srv := range servers {
		assert.Contains(t, keys, srv+"-handle-key")
	}

	require.Len(t, svcs.Items, len(servers))
	for _, s := range svcs.Items {
		name := field(s, "metadata", "name").(string)
		want := placement.Servers[name]
		assert.Equal(t, want.ClusterIP, field(s, "spec", "clusterIP"), "Service %s clusterIP", name)
		ports := field(s, "spec", "ports").([]any)
		require.Len(t, ports, 2)
		assert.EqualValues(t, want.NodePort, ports[0].(map[string]any)["nodePort"], "Service %s nodePort", name)
		assert.EqualValues(t, want.PortmapperNodePort, ports[1].(map[string]any)["nodePort"], "Service %s portmapper nodePort", name)
	}

	require.Len(t, pvs.Items, len(servers))
	for _, pv := range pvs.Items {
		name := field(pv, "metadata", "name").(string)
		assert.Equal(t, placement.Servers[name].ClusterIP, field(pv, "spec", "nfs", "server"), "PV %s nfs.server", name)
		assert.Equal(t, "Bound", field(pv, "status", "phase"), "PV %s", name)
	}

	require.Len(t, pvcs.Items, len(servers))
	for _, pvc := range pvcs.Items {
		name := field(pvc, "metadata", "name").(string)
		assert.Equal(t, "Bound", field(pvc, "status", "phase"), "PVC %s", name)
		assert.Equal(t, name, field(pvc, "spec", "volumeName"), "PVC %s volumeName", name)
	}

	var outputs struct {
		Target           string                    `json:"target"`
		VolumeSpecDigest string                    `json:"volumeSpecDigest"`
		Servers          map[string]map[string]any `json:"servers"`
	}
	require.NoError(t, json.Unmarshal([]byte(p.pulumi("stack", "output", "--stack", "dev", "--json")), &outputs))
	assert.Equal(t, "cluster", outputs.Target)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, outputs.VolumeSpecDigest)
	require.Len(t, outputs.Servers, len(servers))
	for name, o := range outputs.Servers {
		assert.Equal(t, placement.Servers[name].ClusterIP, o["nfsAddress"], name)
		assert.EqualValues(t, placement.Servers[name].NodePort, o["nodePort"], name)
		assert.Equal(t, "nas-apps/"+name, o["pvcName"], name)
		assert.Contains(t, o["mountCommand"], placement.Servers[name].ClusterIP+":/exports/", name)
		assert.Contains(t, o["externalMountCommand"], fmt.Sprintf("port=%d,mountport=%d <node-ip>:/exports/", placement.Servers[name].NodePort, placement.Servers[name].NodePort), name)
		assert.EqualValues(t, placement.Servers[name].PortmapperNodePort, o["portmapperNodePort"], name)
	}

	// A shared PV field edited in Pulumi.yaml: the deployed dev stack plans to
	// change that PV, and so does a preview of production.
	sharedChangeIsPlannedByBothStacks(t, p)

	// Idempotent: a second up finds nothing to do, and keeps the handle keys.
	p.pulumi("up", "--stack", "dev", "--yes", "--skip-preview", "--expect-no-changes")
	var after k8sList
	kubectlJSON(t, &after, "get", "secrets", "-n", "nas-system", "-l", "app.kubernetes.io/part-of=nas-topology")
	for _, s := range after.Items {
		name := field(s, "metadata", "name").(string)
		key, _ := base64.StdEncoding.DecodeString(field(s, "data", "handle.key").(string))
		assert.Equal(t, keys[name], string(key), "%s: the handle key must never be rotated by an up", name)
	}

	// A change of every shared field, applied: in place, replaced (delete
	// before replace: the names are fixed) or nasd's only, as the README
	// says. (A new nasNamespace moves the handle key Secrets: new keys.)
	everySharedFieldOnDev(t, p)
	// A replacement waits for the pods that use the claim, and says so.
	replacementWaitsForThePods(t, p)
	p.pulumi("up", "--stack", "dev", "--yes", "--skip-preview", "--expect-no-changes")

	p.pulumi("destroy", "--stack", "dev", "--yes", "--skip-preview")
	waitGone(t, "pv", "-l", "app.kubernetes.io/part-of=nas-topology")
	waitGone(t, "deployments", "-n", "nas-system")
	waitGone(t, "pvc", "-n", "nas-apps")
	for _, ns := range []string{"nas-system", "nas-apps"} {
		out, err := kubectl(t, "get", "namespace", ns)
		assert.Error(t, err, "namespace %s still exists after destroy: %s", ns, out)
	}
}

// waitGone waits until `kubectl get ARGS` lists nothing.
func waitGone(t *testing.T, args ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var l k8sList
		b, err := exec.Command("kubectl", append([]string{"--context", localContext, "-o", "json", "get"}, args...)...).Output()
		if err == nil && json.Unmarshal(b, &l) == nil && len(l.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			names := []string{}
			for _, i := range l.Items {
				names = append(names, fmt.Sprint(field(i, "metadata", "name")))
			}
			sort.Strings(names)
			t.Fatalf("kubectl get %s still lists %s", strings.Join(args, " "), strings.Join(names, ", "))
		}
		time.Sleep(time.Second)
	}
}

// sharedChangeIsPlannedByBothStacks edits nas-output-1's capacity in
// Pulumi.yaml, checks both previews plan exactly that, and restores the file.
func sharedChangeIsPlannedByBothStacks(t *testing.T, dev *project) {
	t.Helper()
	const pv = "nas-output-1"
	ocp := newProject(t)
	ocp.offline()
	ocp.pulumi("stack", "init", "ocp")
	before, err := parity.FromPreview(bytes.NewReader(ocp.previewJSON("ocp")))
	require.NoError(t, err)

	edit := func(s string) string {
		return strings.Replace(s, "exportPath: /exports/output-1\n        capacity: 1Ti", "exportPath: /exports/output-1\n        capacity: 3Ti", 1)
	}
	dev.editFile("Pulumi.yaml", edit)
	ocp.editFile("Pulumi.yaml", edit)
	defer dev.editFile("Pulumi.yaml", func(s string) string {
		return strings.Replace(s, "capacity: 3Ti", "capacity: 1Ti", 1)
	})

	// dev: the deployed PV is to be updated (or replaced) with the new capacity.
	devPlan, err := parity.ReadPreview(bytes.NewReader(dev.previewJSON("dev")))
	require.NoError(t, err)
	changed := map[string]string{}
	for _, s := range devPlan.Steps {
		if s.Op != "same" && s.Type() != "" && !strings.HasPrefix(s.Type(), "pulumi:") {
			changed[s.Type()+"::"+s.Name()] = s.Op
			if s.Type() == parity.TypePV {
				assert.Equal(t, "3Ti", field(s.NewState.Inputs, "spec", "capacity", "storage"))
			}
		}
	}
	assert.Equal(t, "replace", changed[parity.TypePV+"::"+pv], "dev must plan to replace PV %s (a static PVC cannot grow): %v", pv, changed)
	for k := range changed {
		assert.True(t, strings.HasSuffix(k, "::"+pv), "dev plans an unrelated change: %s (%v)", k, changed)
	}

	// ocp: the planned PV carries the new capacity; nothing else moved.
	after, err := parity.FromPreview(bytes.NewReader(ocp.previewJSON("ocp")))
	require.NoError(t, err)
	diffs := parity.Compare(before, after) // "dev" = before, "ocp" = after here
	var fields []string
	for _, d := range diffs {
		fields = append(fields, d.Object+" "+d.Field)
	}
	assert.ElementsMatch(t, []string{
		"PersistentVolume/" + pv + " spec.capacity.storage",
		"PersistentVolumeClaim/nas-apps/" + pv + " spec.resources.requests.storage",
	}, fields)
}

// waitBound waits until the PVC nas-apps/name and its PV are Bound.
func waitBound(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pv, pvc map[string]any
		kubectlJSON(t, &pv, "get", "pv", name)
		kubectlJSON(t, &pvc, "get", "pvc", "-n", "nas-apps", name)
		if field(pv, "status", "phase") == "Bound" && field(pvc, "status", "phase") == "Bound" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PV/PVC %s not Bound: %v / %v", name, field(pv, "status", "phase"), field(pvc, "status", "phase"))
		}
		time.Sleep(time.Second)
	}
}
