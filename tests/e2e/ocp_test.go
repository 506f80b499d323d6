//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tools/parity"
)

// fixture: production's PVs/PVCs as plain manifests, kept equal to the ocp
// stack's rendering by tests/fixture_test.go.
var fixture = filepath.Join(repoRoot, "tests/e2e/testdata/production-volumes.yaml")

// uids returns the UIDs of the NAS PVs and PVCs, by "kind/name".
func uids(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var pvs, pvcs k8sList
	kubectlJSON(t, &pvs, "get", "pv", "-l", "app.kubernetes.io/part-of=nas-topology")
	kubectlJSON(t, &pvcs, "get", "pvc", "-n", "nas-apps")
	for kind, l := range map[string]k8sList{"pv": pvs, "pvc": pvcs} {
		for _, o := range l.Items {
			out[kind+"/"+field(o, "metadata", "name").(string)] = field(o, "metadata", "uid").(string)
		}
	}
	return out
}

func requireAllBound(t *testing.T) {
	t.Helper()
	out, err := kubectl(t, "wait", "pvc", "--all", "-n", "nas-apps", "--for=jsonpath={.status.phase}=Bound", "--timeout=60s")
	require.NoError(t, err, out)
}

// Production's volumes exist before Pulumi: the ocp stack adopts them without
// replacing anything, shows drift, refuses replacements, and a destroy leaves
// every volume in place.
func TestOCPAdoptsProtectsAndReportsDrift(t *testing.T) {
	// Production as it is: created by hand, bound.
	out, err := kubectl(t, "create", "namespace", "nas-apps")
	require.NoError(t, err, out)
	out, err = kubectl(t, "create", "-f", fixture)
	require.NoError(t, err, out)
	t.Cleanup(func() {
		_, _ = kubectl(t, "delete", "-f", fixture, "--wait=false")
		_, _ = kubectl(t, "delete", "namespace", "nas-apps", "--wait=false")
		waitGone(t, "pv", "-l", "app.kubernetes.io/part-of=nas-topology")
	})
	requireAllBound(t)
	before := uids(t)
	volumes := 2 * len(serverNames(t)) // a PV and a PVC per server
	require.Len(t, before, volumes)

	p := newProject(t)
	p.initStack("ocp")
	// The preview says how many volumes it imports and creates: without
	// adopt it would create all of them (it used to say only "+23 to
	// create"), and says how to adopt them instead.
	out = p.pulumi("preview", "--stack", "ocp")
	assert.Contains(t, out, fmt.Sprintf("external: 0 PVs/PVCs to import, %d to create (external.adopt is false)", volumes))
	assert.Contains(t, out, "set external.adopt: true to import them instead")
	p.pulumi("config", "set", "--stack", "ocp", "--path", "nas-topology:external.adopt", "true")
	out = p.pulumi("preview", "--stack", "ocp")
	assert.Contains(t, out, fmt.Sprintf("external: %d PVs/PVCs to import (external.adopt: true), 0 to create", volumes))

	// The plan: import every PV and PVC; create or replace none of them.
	plan, err := parity.ReadPreview(bytes.NewReader(p.previewJSON("ocp")))
	require.NoError(t, err)
	ops := map[string]int{}
	for _, s := range plan.Steps {
		if s.Type() == parity.TypePV || s.Type() == parity.TypePVC {
			ops[s.Op]++
		}
	}
	// Adoption imports every volume; the in-place updates that may follow only
	// take server-side-apply ownership and add the patchForce annotation.
	assert.Equal(t, volumes, ops["import"], "every production volume is adopted: %v", ops)
	for _, op := range []string{"create", "replace", "create-replacement", "delete-replaced", "delete"} {
		assert.Zero(t, ops[op], "no production volume may be %sd: %v", op, ops)
	}
	t.Logf("adoption plan for the %d volumes: %v", volumes, ops)

	p.pulumi("up", "--stack", "ocp", "--yes", "--skip-preview")
	requireAllBound(t)
	assert.Equal(t, before, uids(t), "adoption keeps the very same objects")

	// Matching production: no drift, nothing to do.
	p.pulumi("preview", "--stack", "ocp", "--refresh", "--expect-no-changes")
	report, code := driftReport(t, p)
	assert.Equal(t, 0, code, report)

	// Someone changes a mount option on a live PV: exactly that is reported.
	out, err = kubectl(t, "patch", "pv", "nas-input-1", "--type=json",
		`-p=[{"op":"replace","path":"/spec/mountOptions/4","value":"timeo=300"}]`)
	require.NoError(t, err, out)
	report, code = driftReport(t, p)
	assert.Equal(t, 1, code, report)
	assert.Contains(t, report, "drift: 1 field(s) of production differ")
	assert.Contains(t, report, "PersistentVolume/nas-input-1 spec.mountOptions")
	assert.Contains(t, report, `"timeo=300"`)
	assert.Contains(t, report, `"timeo=600"`)
	// up puts the definition back in place (mount options are mutable), the claim stays bound.
	p.pulumi("up", "--stack", "ocp", "--yes", "--skip-preview", "--refresh")
	requireAllBound(t)
	assert.Equal(t, before, uids(t), "fixing drift replaced nothing")
	live, err := kubectl(t, "get", "pv", "nas-input-1", "-o", "jsonpath={.spec.mountOptions}")
	require.NoError(t, err)
	assert.Contains(t, live, "timeo=600")

	// A change of every shared field: in place where Kubernetes allows it,
	// refused at preview with the migration path where it does not.
	everySharedFieldOnProduction(t, p)

	// destroy: refused while protected; once unprotected, the stack lets go of
	// the volumes but they stay (retainOnDelete), bound, the same objects.
	out, err = p.pulumiErr("destroy", "--stack", "ocp", "--yes", "--skip-preview")
	require.Error(t, err, "destroy of protected production volumes must fail:\n%s", out)
	assert.Contains(t, out, "protect")
	p.pulumi("state", "unprotect", "--stack", "ocp", "--all", "--yes")
	p.pulumi("destroy", "--stack", "ocp", "--yes", "--skip-preview")
	requireAllBound(t)
	assert.Equal(t, before, uids(t), "destroy leaves every production PV and PVC in the cluster")
}

// driftReport runs the drift check users run (make drift) in the project copy.
func driftReport(t *testing.T, p *project) (string, int) {
	t.Helper()
	plan := p.previewJSON("ocp", "--refresh")
	cmd := exec.Command("go", "run", "./tools/parity/cmd/driftreport")
	cmd.Dir = repoRoot
	cmd.Stdin = bytes.NewReader(plan)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}
