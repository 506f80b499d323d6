//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// make stacks with the real CLI: the committed stack files stay byte for
// byte (stack init used to add encryptionsalt and turn true into "true"), dev
// is the selected stack (it used to be ocp: a bare `pulumi up` went to
// production), and ARGS reach pulumi.
func TestMakeStacksKeepsTheStackFilesAndSelectsDev(t *testing.T) {
	p := newProject(t)
	p.offline()
	files := map[string]string{}
	for _, f := range []string{"Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.ocp.yaml"} {
		b, err := os.ReadFile(filepath.Join(p.dir, f))
		require.NoError(t, err)
		files[f] = string(b)
	}
	for range 2 { // the second run finds the stacks
		_, stderr, err := p.run("make", "-s", "stacks")
		require.NoError(t, err, stderr)
		for f, want := range files {
			b, err := os.ReadFile(filepath.Join(p.dir, f))
			require.NoError(t, err)
			assert.Equal(t, want, string(b), "make stacks rewrote %s", f)
		}
		assert.Equal(t, "dev", strings.TrimSpace(p.pulumi("stack", "--show-name")))
	}
	conf, err := os.ReadFile(filepath.Join(p.dir, ".pulumi-state/config/Pulumi.dev.yaml"))
	require.NoError(t, err)
	assert.Contains(t, string(conf), "\nencryptionsalt: v1:", "the salt is kept in the state directory")

	stdout, stderr, err := p.run("make", "-s", "preview-ocp", "ARGS=--json --non-interactive")
	require.NoError(t, err, stderr)
	assert.True(t, json.Valid([]byte(stdout)), "ARGS=--json reached pulumi preview:\n%s", stdout)
	// The program is compiled ahead of pulumi, and says so (on stderr).
	assert.Contains(t, stderr, "make: compiling the program")
	assert.Regexp(t, `make: program compiled in \d+ s`, stderr)
}
