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
// `pulumi up --stack dev` onto that node. The guest's / is the host's,
// mounted read-only but for the test's own directory: whatever the node
// writes elsewhere fails in the guest instead of changing the host.
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
	res, err := kernellab.Boot(kernellab.Guest{
		Dir:          dir,
		Command:      args,
		Env:          p.Env,
		MemoryMB:     4096,
		Timeout:      55 * time.Minute,
		ReadOnlyHost: true,
	})
	require.NoError(t, err)
	t.Logf("guest: booted in %s, ran %s in all (whole test %s), exit %d", res.BootTime.Round(time.Millisecond),
		res.Elapsed.Round(time.Second), time.Since(start).Round(time.Second), res.ExitCode)
	require.True(t, res.HostWriteRefused, "the guest could write to the host's / (it must be read-only there, but for %s)", dir)
	require.Equal(t, 0, res.ExitCode, "a realnode test failed inside the guest (its output is above, prefixed guest|)")
}
