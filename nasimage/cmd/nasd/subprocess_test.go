package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// nasdBin is the real nasd binary, built once for the subprocess tests.
var nasdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nasd-bin")
	if err != nil {
		panic(err)
	}
	nasdBin = filepath.Join(dir, "nasd")
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", nasdBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building nasd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// nasdProc is a running nasd subprocess.
type nasdProc struct {
	cmd                *exec.Cmd
	nfs, portmap, http string
	exited             chan error
	logs               *bytes.Buffer
}

// startNasd starts the binary with loopback listeners on free ports and
// waits for its "serving" log line.
func startNasd(t *testing.T, export, state string, extra ...string) *nasdProc {
	t.Helper()
	return startNasdVia(t, nil, export, state, extra...)
}

// startNasdVia is startNasd with the binary run through a wrapper command
// (e.g. prlimit).
func startNasdVia(t *testing.T, wrapper []string, export, state string, extra ...string) *nasdProc {
	t.Helper()
	args := append([]string{"serve", "--export", export, "--state", state, "--listen", "127.0.0.1:0",
		"--portmap-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--advertise-port", "0",
		"--shutdown-grace", "10s"}, extra...)
	bin := nasdBin
	if len(wrapper) > 0 {
		bin = wrapper[0]
		args = append(append(slices.Clone(wrapper[1:]), nasdBin), args...)
	}
	cmd := exec.Command(bin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nasdProc{cmd: cmd, exited: make(chan error, 1), logs: &bytes.Buffer{}}
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logs.Write(append(sc.Bytes(), '\n'))
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "serving" {
				serving <- line
			}
		}
		io.Copy(io.Discard, stderr)
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	select {
	case line := <-serving:
		p.nfs, p.portmap, p.http = line["nfs"].(string), line["portmap"].(string), line["http"].(string)
		return p
	case err := <-p.exited:
		t.Fatalf("nasd exited: %v\n%s", err, p.logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("nasd did not start\n%s", p.logs)
	}
	return nil
}

// stop sends SIGTERM and returns the exit error.
func (p *nasdProc) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("nasd did not exit after SIGTERM\n%s", p.logs)
	}
	return nil
}

// TestSubprocessRestartKeepsHandles: the real binary, stopped with SIGTERM
// (exit 0) and started again on the same export and state directory,
// accepts the handles clients took before.
func TestSubprocessRestartKeepsHandles(t *testing.T) {
	export, state := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(export, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(export, "a", "b", "f.txt"), []byte("payload"), 0o644)

	p := startNasd(t, export, state)
	c := nfstest.DialRaw(t, p.nfs, "")
	root := c.Mnt(t, "/")
	_, a := c.Lookup(t, root, "a")
	_, b := c.Lookup(t, a, "b")
	_, f := c.Lookup(t, b, "f.txt")
	if err := p.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v (want 0)\n%s", err, p.logs)
	}

	p2 := startNasd(t, export, state)
	c2 := nfstest.DialRaw(t, p2.nfs, "")
	for name, fh := range map[string][]byte{"root": root, "a": a, "b": b, "f.txt": f} {
		if st := c2.Getattr(t, fh); st != 0 {
			t.Errorf("%s after restart: GETATTR status %d", name, st)
		}
	}
	// And a real client keeps working through the new process.
	nfstest.RequireTool(t, "nfs-cat")
	if out := nfstest.MustRun(t, 20*time.Second, "nfs-cat", nfstest.LibnfsURL(p2.nfs, "/a/b/f.txt")); out != "payload" {
		t.Fatalf("nfs-cat after restart: %q", out)
	}
	if err := p2.stop(t); err != nil {
		t.Fatalf("second exit: %v", err)
	}
}

// TestLibnfsDefaultBehaviour: libnfs with no port options asks the
// portmapper on port 111 (ours) and traverses exports (MOUNT EXPORT). The
// export path is not "/" (libnfs splits nfs://host/file into an empty
// export, which its export traversal refuses, against any server).
//
// Port 111 is the host's to give: the test runs in a network namespace of
// its own (whatever holds 111 on the host, rpcbind say, is left alone), and
// only where none can be made on the host's loopback, skipping with the
// holder's name when 111 is taken there.
func TestLibnfsDefaultBehaviour(t *testing.T) {
	nfstest.RequireTool(t, "nfs-ls")
	handled, inside, why := inOwnNetns(t, "^TestLibnfsDefaultBehaviour$")
	if handled && !inside {
		return // it ran, and passed, in its namespace
	}
	if !handled {
		if holder := portHolder(111); holder != "" {
			t.Skipf("port 111 is held by %s and no network namespace of our own can be made (%v): stop it, or allow unprivileged user namespaces", holder, why)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:111")
	if err != nil {
		t.Fatalf("port 111 is needed for libnfs's default portmapper lookup and is not allowed (%v)", err)
	}
	l.Close()
	export := t.TempDir()
	os.WriteFile(filepath.Join(export, "hello.txt"), []byte("hi"), 0o644)
	p := startNasd(t, export, t.TempDir(), "--portmap-listen", "127.0.0.1:111", "--export-path", "/exports/input1",
		"--options", "rw,sync,no_root_squash") // libnfs calls as this process's uid, root
	if p.portmap != "127.0.0.1:111" {
		t.Fatalf("portmapper on %s", p.portmap)
	}
	out := nfstest.MustRun(t, 20*time.Second, "nfs-ls", "nfs://127.0.0.1/exports/input1")
	if !strings.Contains(out, "hello.txt") {
		t.Fatalf("nfs-ls nfs://127.0.0.1/exports/input1: %s", out)
	}
	if out := nfstest.MustRun(t, 20*time.Second, "nfs-cat", "nfs://127.0.0.1/exports/input1/hello.txt"); out != "hi" {
		t.Fatalf("nfs-cat: %q", out)
	}
	src := filepath.Join(t.TempDir(), "up")
	os.WriteFile(src, bytes.Repeat([]byte("z"), 100000), 0o644)
	nfstest.MustRun(t, 20*time.Second, "nfs-cp", src, "nfs://127.0.0.1/exports/input1/up")
	if b, _ := os.ReadFile(filepath.Join(export, "up")); len(b) != 100000 {
		t.Fatalf("nfs-cp via the portmapper: %d bytes on the server", len(b))
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestIdleRSS: the real binary, after serving a client, idles under 20 MiB.
func TestIdleRSS(t *testing.T) {
	export := t.TempDir()
	for i := range 100 {
		os.WriteFile(filepath.Join(export, fmt.Sprintf("f%d", i)), bytes.Repeat([]byte("x"), 10000), 0o644)
	}
	p := startNasd(t, export, t.TempDir())
	v := nfstest.Mount(t, p.nfs, "/")
	if _, err := v.ReadDirPlus("."); err != nil {
		t.Fatal(err)
	}
	resp, err := httpGet("http://" + p.http + "/metrics")
	if err != nil || !strings.Contains(resp, "nasd_rpc_requests_total") {
		t.Fatalf("/metrics: %v", err)
	}
	time.Sleep(time.Second)
	rss := vmRSS(t, p.cmd.Process.Pid)
	t.Logf("nasd idle VmRSS: %d KiB (%.1f MiB)", rss, float64(rss)/1024)
	if rss >= 20<<10 {
		t.Fatalf("idle RSS %d KiB, want < 20 MiB", rss)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
