//go:build e2e

// Package e2e drives the real pulumi CLI, the real Kubernetes provider plugin
// and a real API server (../shared/toolchain: etcd, kube-apiserver,
// controller-manager, scheduler, kwok) against throwaway copies of this
// project. Run it with `make e2e`, which builds the toolchain and starts the
// cluster; it needs KUBECONFIG (context nas-local) and pulumi/kubectl on PATH.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// localContext is the kube context `cluster up` writes.
const localContext = "nas-local"

var repoRoot = func() string {
	dir, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return dir
}()

func TestMain(m *testing.M) {
	for _, tool := range []string{"pulumi", "kubectl", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is not on PATH: run the suite with `make e2e` (it sources ../shared/toolchain/env.sh)\n", tool)
			os.Exit(1)
		}
	}
	if os.Getenv("KUBECONFIG") == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBECONFIG is not set: run the suite with `make e2e` (it starts the local cluster)")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// project is a copy of the repository with its own file backend.
type project struct {
	t     *testing.T
	dir   string
	state string
	env   []string
}

// newProject copies the tracked files (and untracked, not ignored ones) of the
// repository: the program is built from the copy, exactly as committed.
func newProject(t *testing.T) *project {
	t.Helper()
	root := t.TempDir()
	p := &project{t: t, dir: filepath.Join(root, "project"), state: filepath.Join(root, "state")}
	require.NoError(t, os.MkdirAll(p.dir, 0o755))
	require.NoError(t, os.MkdirAll(p.state, 0o755))
	files, err := exec.Command("git", "-C", repoRoot, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err)
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		src := filepath.Join(repoRoot, f)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		dst := filepath.Join(p.dir, f)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, b, info.Mode().Perm()))
	}
	p.env = append(os.Environ(),
		"PULUMI_BACKEND_URL=file://"+p.state,
		"PULUMI_CONFIG_PASSPHRASE=e2e",
	)
	p.usePrebuiltProgram()
	return p
}

var (
	programOnce sync.Once
	programBin  string
	programErr  error
)

// usePrebuiltProgram builds the program once per test run (from a copy of the
// repository) and points the copy's Pulumi.yaml at the binary through the
// language host's `binary` runtime option. Without it every pulumi command
// compiles the program again (~30 s of both cores), which starves the
// simulated node's heartbeats on a 2-core machine. The langhost's own
// `go build` path is still exercised by the parity and policy tests.
func (p *project) usePrebuiltProgram() {
	p.t.Helper()
	programOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nas-e2e-program-")
		if err != nil {
			programErr = err
			return
		}
		programBin = filepath.Join(dir, "nas-topology")
		build := exec.Command("go", "build", "-o", programBin, ".")
		build.Dir = p.dir
		out, err := build.CombinedOutput()
		if err != nil {
			programErr = fmt.Errorf("go build of the program: %v\n%s", err, out)
		}
	})
	require.NoError(p.t, programErr)
	p.editFile("Pulumi.yaml", func(s string) string {
		return strings.Replace(s, "\nruntime: go\n", "\nruntime:\n  name: go\n  options:\n    binary: "+programBin+"\n", 1)
	})
}

// offline makes the commands of this project see no cluster at all, like an
// operator's laptop planning production.
func (p *project) offline() {
	p.env = append(p.env, "KUBECONFIG="+filepath.Join(p.dir, "no-cluster.kubeconfig"))
}

// pulumi runs the CLI in the project and fails the test on error.
func (p *project) pulumi(args ...string) string {
	p.t.Helper()
	out, err := p.pulumiErr(args...)
	require.NoError(p.t, err, "pulumi %s:\n%s", strings.Join(args, " "), out)
	return out
}

// pulumiErr runs the CLI and returns its combined output.
func (p *project) pulumiErr(args ...string) (string, error) {
	p.t.Helper()
	stdout, stderr, err := p.run("pulumi", append(args, "--non-interactive")...)
	return stdout + stderr, err
}

// previewJSON runs `pulumi preview --json` and returns stdout alone.
func (p *project) previewJSON(stack string, extra ...string) []byte {
	p.t.Helper()
	stdout, stderr, err := p.run("pulumi", append([]string{"preview", "--stack", stack, "--json", "--non-interactive"}, extra...)...)
	require.NoError(p.t, err, "pulumi preview --stack %s --json:\n%s\n%s", stack, stderr, stdout)
	return []byte(stdout)
}

func (p *project) run(name string, args ...string) (string, string, error) {
	p.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	p.t.Logf("%s %s (%.1fs)", name, strings.Join(args, " "), time.Since(start).Seconds())
	return stdout.String(), stderr.String(), err
}

// initStack creates a stack pointed at the local cluster.
func (p *project) initStack(stack string) {
	p.t.Helper()
	p.pulumi("stack", "init", stack)
	p.pulumi("config", "set", "--stack", stack, "nas-topology:kubeContext", localContext)
}

// editFile rewrites a file of the project copy.
func (p *project) editFile(name string, edit func(string) string) {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	b, err := os.ReadFile(path)
	require.NoError(p.t, err)
	changed := edit(string(b))
	require.NotEqual(p.t, string(b), changed, "edit of %s changed nothing", name)
	require.NoError(p.t, os.WriteFile(path, []byte(changed), 0o644))
}

// kubectl runs kubectl against the local cluster.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("kubectl", append([]string{"--context", localContext}, args...)...).CombinedOutput()
	return string(out), err
}

// kubectlJSON decodes `kubectl get ... -o json` into out.
func kubectlJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	b, err := exec.Command("kubectl", append([]string{"--context", localContext, "-o", "json"}, args...)...).Output()
	require.NoError(t, err, "kubectl %v", args)
	require.NoError(t, json.Unmarshal(b, out))
}

// k8sList is the part of a kubectl list we read.
type k8sList struct {
	Items []map[string]any `json:"items"`
}

// field reads a nested field of a decoded object: field(o, "spec", "clusterIP").
func field(o map[string]any, path ...string) any {
	var v any = o
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
