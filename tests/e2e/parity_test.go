//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The check users run: `make parity` (tools/parity/preview.sh) on the real
// previews of both stacks, with no cluster.
func TestParityOfTheRealPreviews(t *testing.T) {
	cmd := exec.Command(filepath.Join(repoRoot, "tools/parity/preview.sh"))
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "parity: OK: 7 PersistentVolumes and 7 PersistentVolumeClaims")
}

// When the planned volumes do differ, paritycheck fails and names the field.
func TestParityCheckShowsAReadableDiff(t *testing.T) {
	p := newProject(t)
	p.offline()
	dir := t.TempDir()
	for _, stack := range []string{"dev", "ocp"} {
		p.pulumi("stack", "init", stack)
		plan := p.previewJSON(stack)
		if stack == "ocp" {
			// What drift would look like: production planned with another mount option.
			require.True(t, bytes.Contains(plan, []byte(`"timeo=600"`)))
			plan = bytes.Replace(plan, []byte(`"timeo=600"`), []byte(`"timeo=300"`), 1)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, stack+".json"), plan, 0o644))
	}
	cmd := exec.Command("go", "run", "./tools/parity/cmd/paritycheck", filepath.Join(dir, "dev.json"), filepath.Join(dir, "ocp.json"))
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out)
	assert.Contains(t, string(out), "parity: FAILED: 1 field(s) differ")
	assert.Contains(t, string(out), "spec.mountOptions")
	assert.True(t, strings.Contains(string(out), `"timeo=300"`) && strings.Contains(string(out), `"timeo=600"`), "%s", out)
}
