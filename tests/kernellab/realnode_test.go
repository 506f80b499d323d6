//go:build kernellab

package kernellab_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tests/kernellab"
	"github.com/nas-topology/nas-topology/tests/kernellab/kube"
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

	p := PrepareNode(t, project, dir)
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
	changed := HostChanges(t, marker)
	require.Empty(t, changed, "the guest wrote to the host's filesystem (its / is the host's)")
	require.Equal(t, 0, res.ExitCode, "a realnode test failed inside the guest (its output is above, prefixed guest|)")
}

// NodeGuest is what a node guest needs from the host: the test binary and
// its environment.
type NodeGuest struct {
	Tests string
	Env   map[string]string
}

// PrepareNode builds, on the host, what the guest's node runs: the realnode
// tests, the program, the pause and busybox images, a copy of the project
// whose dev stack points at the node (kube context, the containerd image
// loader; the committed stack files are not touched), and the nasd image in
// the program's own cache (so the first `pulumi up` finds it built).
func PrepareNode(t *testing.T, project, dir string) NodeGuest {
	t.Helper()
	g := NodeGuest{Tests: filepath.Join(dir, "realnode.test")}
	build(t, project, "go", "test", "-c", "-tags", "kernellab", "-o", g.Tests, "./tests/kernellab/realnode")
	program := filepath.Join(dir, "nas-topology")
	build(t, project, "go", "build", "-o", program, ".")
	pause := filepath.Join(dir, "pause")
	build(t, project, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "./tests/kernellab/kube/pause")

	images := filepath.Join(dir, "images")
	require.NoError(t, os.MkdirAll(images, 0o755))
	require.NoError(t, kube.WriteImage(filepath.Join(images, "pause.tar"), kube.PauseImage,
		[]kube.ImageFile{{Path: "pause", From: pause}}, []string{"/pause"}))
	busybox, err := exec.LookPath("busybox")
	require.NoError(t, err, "apt-get install busybox-static (make lab-deps)")
	list, err := exec.Command(busybox, "--list").Output()
	require.NoError(t, err)
	require.NoError(t, kube.WriteImage(filepath.Join(images, "busybox.tar"), kube.BusyboxImage,
		kube.BusyboxFiles(busybox, strings.Fields(string(list))), []string{"/bin/sh"}))

	copyDir := filepath.Join(dir, "project")
	copyProject(t, project, copyDir)
	edit(t, filepath.Join(copyDir, "Pulumi.yaml"), "\nruntime: go\n", "\nruntime:\n  name: go\n  options:\n    binary: "+program+"\n")
	edit(t, filepath.Join(copyDir, "Pulumi.dev.yaml"), "kubeContext: minikube", "kubeContext: "+kube.Context)
	edit(t, filepath.Join(copyDir, "Pulumi.dev.yaml"), "imageLoader: minikube", "imageLoader: containerd")
	// The image the program builds, in its cache (the same hash from any clone).
	build(t, copyDir, "go", "run", "./nasimage/cmd/nasd-image")

	goEnv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOROOT").Output()
	require.NoError(t, err)
	ge := strings.Fields(string(goEnv))
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	toolchain := filepath.Dir(kube.ToolchainBin)
	g.Env = map[string]string{
		"LAB_GUEST":   "1",
		"LAB_PROJECT": copyDir,
		"LAB_IMAGES":  images,
		// Overlays the guest puts over the host's caches it uses.
		"LAB_OVERLAYS":   strings.Join([]string{cache, ge[1], filepath.Join(toolchain, "pulumi-home")}, " "),
		"GOCACHE":        ge[0],
		"GOMODCACHE":     ge[1],
		"XDG_CACHE_HOME": cache,
		"GOPROXY":        "off",
		"GOTELEMETRY":    "off",
		"HOME":           "/run/lab/home",
		"GOFLAGS":        "-mod=readonly",
		"PATH":           kube.ToolchainBin + ":" + filepath.Join(ge[2], "bin") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PULUMI_HOME":    filepath.Join(toolchain, "pulumi-home"),
	}
	return g
}

func build(t *testing.T, dir string, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(argv, " "), out)
}

// copyProject copies the tracked (and untracked, not ignored) files.
func copyProject(t *testing.T, from, to string) {
	t.Helper()
	files, err := exec.Command("git", "-C", from, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err)
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		src := filepath.Join(from, f)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		dst := filepath.Join(to, f)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, b, info.Mode().Perm()))
	}
}

func edit(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(b), old, "%s", file)
	require.NoError(t, os.WriteFile(file, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644))
}

// hostWriters are the trees other processes on a shared build machine write
// to while the guest runs (Go caches and telemetry, work trees, temp dirs,
// other labs' UML kernels, other suites' kubectl and pulumi), and the
// kernel's own. The guest reaches the caches only through its overlays, and
// runs with its own HOME on tmpfs.
var hostWriters = []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/work",
	"/root/.cache", "/root/go", "/root/.config/go", "/root/.uml", "/root/.kube", filepath.Join(filepath.Dir(kube.ToolchainBin), "pulumi-home")}

// HostChanges lists the host's files changed after marker, outside hostWriters.
func HostChanges(t *testing.T, marker string) []string {
	t.Helper()
	args := []string{"/", "-xdev", "("}
	for i, d := range hostWriters {
		if i > 0 {
			args = append(args, "-o")
		}
		args = append(args, "-path", d)
	}
	args = append(args, ")", "-prune", "-o", "-newer", marker, "-print")
	out, err := exec.Command("find", args...).Output()
	require.NoError(t, err, "find %v", args)
	var changed []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		changed = append(changed, sc.Text())
	}
	return changed
}
