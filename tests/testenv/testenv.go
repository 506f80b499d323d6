// Package testenv gives tests the project's committed configuration.
//
// Unit tests assert what the committed Pulumi.yaml and stack files say.
// Reading them from the working copy made `make test` fail as soon as a
// developer followed the README (`pulumi config set --path
// nas-topology:external.adopt true --stack ocp`, another kubeContext, ...).
// ProjectDir therefore hands out a pristine copy: the files as git HEAD has
// them. $NAS_TEST_PROJECT_DIR overrides it with a directory used as is (the
// test that adds a server runs the suite against its edited copy this way).
// Outside a git checkout the working copy is used. The working copy's own
// files are checked too, by a test that only asks them to be valid.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// EnvProjectDir names a directory holding Pulumi.yaml and the stack files
// that tests use instead of the committed ones.
const EnvProjectDir = "NAS_TEST_PROJECT_DIR"

// ConfigFiles are the files that make up the project's configuration.
var ConfigFiles = []string{"Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.ocp.yaml"}

var used atomic.Bool // ProjectDir made the pristine copy

var pristine = sync.OnceValues(func() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := CommittedCopy(root)
	if err != nil {
		return root, fmt.Errorf("%w (using the working copy)", err)
	}
	return dir, nil
})

// CommittedCopy writes the ConfigFiles of the git checkout at root, as HEAD
// has them, to a new temp directory and returns it.
func CommittedCopy(root string) (string, error) {
	dir, err := os.MkdirTemp("", "nas-topology-config-")
	if err != nil {
		return "", err
	}
	for _, f := range ConfigFiles {
		cmd := exec.Command("git", "show", "HEAD:./"+f)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("git show HEAD:%s in %s: %w", f, root, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), out, 0o644); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// ProjectDir is a directory with the configuration tests use: see the
// package doc. Its Pulumi.yaml is not next to the program's source; tests
// that run the program pass it as the project directory.
func ProjectDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv(EnvProjectDir); dir != "" {
		return dir
	}
	used.Store(true)
	dir, err := pristine()
	if err != nil {
		if dir == "" {
			t.Fatal(err)
		}
		t.Log(err)
	}
	return dir
}

// RepoRoot is the directory of the project's go.mod and Pulumi.yaml: the
// first parent of the working directory holding both.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, e1 := os.Stat(filepath.Join(dir, "go.mod"))
		_, e2 := os.Stat(filepath.Join(dir, "Pulumi.yaml"))
		if e1 == nil && e2 == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no directory with go.mod and Pulumi.yaml above the working directory")
		}
		dir = parent
	}
}

// Main runs a package's tests and removes the pristine copy afterwards; call
// it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if !used.Load() {
		os.Exit(code)
	}
	if dir, err := pristine(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
