package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tests/testenv"
)

// checkoutCopy copies the repository's tracked and untracked (not ignored)
// files to a temp directory: what a fresh clone holds, with this change.
func checkoutCopy(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	dir := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if strings.HasPrefix(f, "nasimage/testdata/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the working copy
		}
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
		st, err := os.Stat(filepath.Join(root, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, st.Mode().Perm()))
	}
	return dir
}

// freshPATH is a PATH with make, a shell, coreutils and go, and optionally a
// fake pulumi: a machine before ../shared/toolchain/env.sh is sourced.
func freshPATH(t *testing.T, withPulumi bool) string {
	t.Helper()
	bin := t.TempDir()
	for _, tool := range []string{"make", "bash", "sh", "go", "cat", "grep", "cp", "mv", "mkdir", "rm", "env", "uname"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s on PATH", tool)
		}
		require.NoError(t, os.Symlink(p, filepath.Join(bin, tool)))
	}
	if withPulumi {
		require.NoError(t, os.WriteFile(filepath.Join(bin, "pulumi"), []byte("#!/bin/sh\necho \"fake pulumi $*\"\n"), 0o755))
	}
	return bin
}

// make runs a make target in dir with the given PATH; returns stderr.
func runMake(t *testing.T, dir, path string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(path, "make"), append([]string{"-s"}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir(), "GOPROXY=off", "GOFLAGS=-buildvcs=false",
		"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"), "KUBECONFIG=" + filepath.Join(dir, "none.kubeconfig")}
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// ourLines are the lines of make's stderr that are not make's own trailer.
func ourLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "make: *** ") {
			out = append(out, l)
		}
	}
	return out
}

// On a fresh machine the main job's first failure is one sentence naming
// the missing piece and the fix (it was "pulumi: command not found").
func TestMakeUpOnAFreshMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/preflight in a copy (-short)")
	}
	dir := checkoutCopy(t)
	t.Run("no pulumi", func(t *testing.T) {
		_, stderr, err := runMake(t, dir, freshPATH(t, false), "up")
		require.Error(t, err)
		lines := ourLines(stderr)
		require.Len(t, lines, 1, "one sentence:\n%s", stderr)
		assert.Contains(t, lines[0], "the pulumi CLI (pulumi) is not on PATH: install Pulumi")
		assert.Contains(t, lines[0], "../shared/toolchain/env.sh")
	})
	t.Run("pulumi but no minikube", func(t *testing.T) {
		stdout, stderr, err := runMake(t, dir, freshPATH(t, true), "up") // no minikube on this PATH
		require.Error(t, err)
		lines := ourLines(stderr)
		require.Len(t, lines, 1, "one sentence:\n%s", stderr)
		assert.Contains(t, lines[0], `image loader "minikube" needs minikube on PATH`)
		assert.Contains(t, lines[0], "install minikube")
		assert.Contains(t, lines[0], "`make up-lab`", "points to the main job without Minikube")
		assert.NotContains(t, stdout, "fake pulumi up", "nothing reaches pulumi")
	})
}

// make up passes ARGS to pulumi (it could pass no flag at all).
func TestMakeUpPassesArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/preflight in a copy (-short)")
	}
	dir := checkoutCopy(t)
	path := freshPATH(t, true)
	// A machine with what the dev stack needs: minikube and its context.
	require.NoError(t, os.WriteFile(filepath.Join(path, "minikube"), []byte("#!/bin/sh\n"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "none.kubeconfig"), []byte("contexts:\n- name: minikube\n"), 0o644))
	stdout, stderr, err := runMake(t, dir, path, "up", "ARGS=--yes --skip-preview")
	require.NoError(t, err, stderr)
	assert.Contains(t, stdout, "fake pulumi up --stack dev --config-file .pulumi-state/config/Pulumi.dev.yaml --yes --skip-preview")
	assert.Contains(t, stdout, "fake pulumi stack select dev", "dev is the selected stack")
}
