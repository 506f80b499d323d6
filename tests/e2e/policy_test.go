//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The policy pack on the real program: both stacks pass; drift between what
// the program renders and Pulumi.yaml fails preview with the rule's message.
func TestPolicyPackOnTheRealProgram(t *testing.T) {
	p := newProject(t)
	p.offline()
	for _, stack := range []string{"ocp", "dev"} {
		p.pulumi("stack", "init", stack)
		out := p.pulumi("preview", "--stack", stack, "--policy-pack", "policy")
		assert.Contains(t, out, "nas-topology@v0.1.0", "the pack ran on %s", stack)
		assert.NotContains(t, out, "mandatory", stack)
	}

	// A deliberately broken config: the shared spec the pack checks against
	// (an edited copy of Pulumi.yaml) says timeo=900 while the program renders
	// the committed timeo=600. The program's own guard cannot see this; the pack must.
	drift := t.TempDir()
	b, err := os.ReadFile(filepath.Join(p.dir, "Pulumi.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(b), "timeo=600")
	require.NoError(t, os.WriteFile(filepath.Join(drift, "Pulumi.yaml"), []byte(strings.Replace(string(b), "timeo=600", "timeo=900", 1)), 0o644))
	p.env = append(p.env, "NAS_PROJECT_DIR="+drift)
	out, err := p.pulumiErr("preview", "--stack", "ocp", "--policy-pack", "policy")
	require.Error(t, err, "preview must fail on a policy violation:\n%s", out)
	assert.Contains(t, out, "nas-pv-matches-shared-spec")
	assert.Contains(t, out, `"timeo=900"`)
	assert.Contains(t, out, "mandatory")
}
