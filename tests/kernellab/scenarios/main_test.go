//go:build kernellab

// Package scenarios are the kernel lab's tests. They run inside the guest
// (the host's TestKernelLab boots it), as ordinary Go tests against the node
// that package node builds: the kernel NFS client on every PV, nasd pods,
// the 9p Windows share, and knfsd beside them as the reference.
package scenarios

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

var lab *node.Node

func TestMain(m *testing.M) {
	if name := os.Getenv(appEnv); name != "" {
		os.Exit(runApp(name))
	}
	if os.Getenv("LAB_GUEST") != "1" {
		fmt.Println("scenarios: these tests run inside the kernel lab's guest: make lab")
		os.Exit(2)
	}
	os.MkdirAll("/tmp/apphome", 0o777)
	os.Chmod("/tmp/apphome", 0o777)
	cfg, err := node.Load(os.Getenv("LAB_PROJECT"))
	if err != nil {
		fmt.Println("scenarios:", err)
		os.Exit(1)
	}
	lab, err = node.Setup(cfg, os.Getenv("LAB_NASD"))
	if err != nil {
		fmt.Println("scenarios:", err)
		dumpLogs()
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		dumpLogs()
	}
	os.Exit(code)
}

func dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(node.LogsDir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		s := string(b)
		if len(s) > 20000 {
			s = "...\n" + s[len(s)-20000:]
		}
		fmt.Printf("==== %s\n%s\n", l, s)
	}
}

// target is one NFS mount a scenario runs against: a nasd PV or its knfsd twin.
type target struct {
	name   string // "nasd" or "knfsd"
	server spec.Server
	dir    string
}

// targets are the mounts of every server with the given roles, nasd's and
// knfsd's.
func targets(roles ...spec.Role) []target {
	var out []target
	for _, s := range lab.Servers {
		for _, r := range roles {
			if s.Role == r {
				out = append(out, target{"nasd", s, node.MountPoint(s)}, target{"knfsd", s, node.KnfsdMountPoint(s)})
			}
		}
	}
	return out
}

// writable are the targets apps write to: every server that is not read-only.
func writable() []target {
	var out []target
	for _, t := range targets(spec.RoleInput, spec.RoleOutput) {
		if !t.server.ReadOnly {
			out = append(out, t)
		}
	}
	return out
}

// workdir makes a fresh directory for one test on a target, owned by the app.
func workdir(t testing.TB, tg target) string {
	t.Helper()
	dir := filepath.Join(tg.dir, "lab-"+strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
	sh(t, tg.dir, "rm -rf "+quote(dir)+" && mkdir -p "+quote(dir))
	// The node's disk and the Windows share (tmpfs) are small: a scenario
	// leaves nothing behind.
	t.Cleanup(func() { shErr(tg.dir, "chmod -R u+w "+quote(dir)+"; rm -rf "+quote(dir)) })
	return dir
}

// sh runs a shell script as the app's uid in dir and returns its output.
func sh(t testing.TB, dir, script string) string {
	t.Helper()
	out, err := shErr(dir, script)
	if err != nil {
		t.Fatalf("in %s: %s\n%v\n%s", dir, script, err, out)
	}
	return out
}

func shErr(dir, script string) (string, error) {
	return shAs(node.AppUID, node.AppGID, "", dir, script)
}

// shAs runs a shell script in dir as uid:gid with the supplementary
// groups (comma-separated; none if empty) and returns its output.
func shAs(uid, gid int, groups, dir, script string) (string, error) {
	ids := []string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups"}
	if groups != "" {
		ids[2] = "--groups=" + groups
	}
	cmd := exec.Command("setpriv", append(ids, "sh", "-ec", script)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME=/tmp/apphome", "GIT_AUTHOR_NAME=lab", "GIT_AUTHOR_EMAIL=lab@example.invalid",
		"GIT_COMMITTER_NAME=lab", "GIT_COMMITTER_EMAIL=lab@example.invalid")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func dropCaches(t testing.TB) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		t.Fatal(err)
	}
}
