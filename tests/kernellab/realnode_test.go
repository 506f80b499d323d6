//go:build kernellab

package kernellab_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tests/kernellab"
	"github.com/nas-topology/nas-topology/tests/kernellab/labnode"
)

// TestRealNode boots the guest with a real Kubernetes node in it and runs
// the realnode tests there (LAB_RUN narrows them): the program's real
// `pulumi up --stack dev` onto that node. Afterwards the host's filesystem
// must be as before: the guest's / is the host's.
func TestRealNode(t *testing.T) {
	start := time.Now()
	project, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir, err := os.MkdirTemp("/var/tmp", "kernellab-node-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))

	p, err := labnode.Prepare(project, dir)
	require.NoError(t, err)
	args := []string{p.Tests, "-test.v", "-test.timeout=50m"}
	if run := os.Getenv("LAB_RUN"); run != "" {
		args = append(args, "-test.run="+run)
	}
	marker := filepath.Join(dir, "marker")
	require.NoError(t, os.WriteFile(marker, nil, 0o644))
	time.Sleep(1100 * time.Millisecond) // mtimes after the marker are strictly newer
	res, err := kernellab.Boot(kernellab.Guest{
		Dir:      dir,
		Command:  args,
		Env:      p.Env,
		MemoryMB: 4096,
		Timeout:  55 * time.Minute,
	})
	require.NoError(t, err)
	t.Logf("guest: booted in %s, ran %s in all (whole test %s), exit %d", res.BootTime.Round(time.Millisecond),
		res.Elapsed.Round(time.Second), time.Since(start).Round(time.Second), res.ExitCode)
	changed, err := labnode.HostChanges(marker)
	require.NoError(t, err)
	require.Empty(t, changed, "the guest wrote to the host's filesystem (its / is the host's)")
	require.Equal(t, 0, res.ExitCode, "a realnode test failed inside the guest (its output is above, prefixed guest|)")
}
