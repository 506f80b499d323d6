//go:build kernellab

package kernellab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKernelLab builds nasd and the scenario tests, boots the guest once and
// runs every scenario in it (LAB_RUN narrows them, as -run does, LAB_SKIP
// leaves some out, as -skip does; LAB_BENCH adds benchmarks, as -bench does).
func TestKernelLab(t *testing.T) {
	project, err := filepath.Abs("../..")
	require.NoError(t, err)
	// Not under /tmp: the guest mounts its own tmpfs there.
	dir, err := os.MkdirTemp("/var/tmp", "kernellab-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The guest's apps run the scenario binary as a non-root uid.
	require.NoError(t, os.Chmod(dir, 0o755))

	nasd := filepath.Join(dir, "nasd")
	build(t, project, "go", "build", "-trimpath", "-o", nasd, "./nasimage/cmd/nasd")
	scenarios := filepath.Join(dir, "scenarios.test")
	build(t, project, "go", "test", "-c", "-tags", "kernellab", "-o", scenarios, "./tests/kernellab/scenarios")

	args := []string{scenarios, "-test.v", "-test.timeout=40m"}
	if run := os.Getenv("LAB_RUN"); run != "" {
		args = append(args, "-test.run="+run)
	}
	if count := os.Getenv("LAB_COUNT"); count != "" {
		args = append(args, "-test.count="+count)
	}
	if skip := os.Getenv("LAB_SKIP"); skip != "" {
		args = append(args, "-test.skip="+skip)
		t.Logf("LAB_SKIP: the scenarios matching %q are not run", skip)
	}
	if bench := os.Getenv("LAB_BENCH"); bench != "" {
		args = append(args, "-test.bench="+bench, "-test.benchtime="+envOr("LAB_BENCHTIME", "50x"))
	}
	res, err := Boot(Guest{
		Dir:     dir,
		Command: args,
		Env:     map[string]string{"LAB_GUEST": "1", "LAB_PROJECT": project, "LAB_NASD": nasd, "LAB_NASD_LOG": os.Getenv("LAB_NASD_LOG")},
		Timeout: 45 * time.Minute,
	})
	require.NoError(t, err)
	t.Logf("guest: booted in %s, ran %s in all, exit %d", res.BootTime.Round(time.Millisecond), res.Elapsed.Round(time.Second), res.ExitCode)
	require.Equal(t, 0, res.ExitCode, "a scenario failed inside the guest (its output is above, prefixed guest|)")
}

func build(t *testing.T, dir string, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(argv, " "), out)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
