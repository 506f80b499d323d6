package sync

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// nfsWrite writes a file through the NFS client in small WRITE calls, the way
// applications on the cluster write results.
func nfsWrite(t testing.TB, v *nfsc.Target, p string, data []byte) {
	t.Helper()
	_ = v.Remove(p) // OpenFile does not truncate
	f, err := v.OpenFile(p, 0o644)
	if err != nil {
		t.Fatalf("nfs create %s: %v", p, err)
	}
	for off := 0; off < len(data); off += 32 << 10 {
		if _, err := f.Write(data[off:min(off+32<<10, len(data))]); err != nil {
			t.Fatalf("nfs write %s: %v", p, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// nfsRead reads a file through the NFS client (a fresh lookup every time).
func nfsRead(v *nfsc.Target, p string) ([]byte, error) {
	f, err := v.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func nfsHas(v *nfsc.Target, p string, want []byte) func() error {
	return func() error {
		got, err := nfsRead(v, p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s over NFS: %d bytes, want %d", p, len(got), len(want))
		}
		return nil
	}
}

// TestOutputThroughNFSClient: an application writes and deletes through a
// real NFS client (go-nfs-client against nasd's NFS stack); Windows edits
// with plain file operations.
func TestOutputThroughNFSClient(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	srv := nfstest.Start(t, nfstest.Options{Dir: h.nfs})
	h.run()
	v := nfstest.Mount(t, srv.Addr, "/")

	result := bigContent(1 << 20)
	if _, err := v.Mkdir("run1", 0o755); err != nil {
		t.Fatal(err)
	}
	nfsWrite(t, v, "run1/result.bin", result)
	nfsWrite(t, v, "bad:name.txt", []byte("linux only"))
	eventually(t, "NFS write on Windows", func() error {
		return sameContent(filepath.Join(h.nfs, "run1/result.bin"), filepath.Join(h.win, "run1/result.bin"))
	})

	write(t, h.win, "run1/notes.txt", "from the tester")
	eventually(t, "Windows file over NFS", nfsHas(v, "run1/notes.txt", []byte("from the tester")))
	write(t, h.win, "run1/notes.txt", "edited")
	eventually(t, "Windows edit over NFS", nfsHas(v, "run1/notes.txt", []byte("edited")))

	if err := v.Remove("run1/result.bin"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(h.win, "run1/notes.txt"))
	eventually(t, "deletions both ways", func() error {
		if err := treeIs(h.win, "run1/")(); err != nil {
			return err
		}
		if _, err := nfsRead(v, "run1/notes.txt"); err == nil {
			return fmt.Errorf("notes.txt still readable over NFS")
		}
		return nil
	})
	if _, err := nfsRead(v, "bad:name.txt"); err != nil {
		t.Fatalf("skipped name lost on NFS: %v", err)
	}
	if n := h.metric("nasd_sync_skipped_names"); n != 1 {
		t.Fatalf("skipped names = %v", n)
	}
}

// TestNFSClientEditsReachWindows: an application edits through a real NFS
// client (go-nfs-client against nasd's NFS stack): a file in nested new
// directories, an in-place edit that keeps the size (only the mtime tells),
// a file rename, a directory rename, a recursive delete (of everything: held
// until an operator confirms). Each reaches the Windows directory while the
// engine runs.
func TestNFSClientEditsReachWindows(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	srv := nfstest.Start(t, nfstest.Options{Dir: h.nfs})
	h.run()
	v := nfstest.Mount(t, srv.Addr, "/")

	for _, d := range []string{"a", "a/b"} {
		if _, err := v.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nfsWrite(t, v, "a/b/c.txt", []byte("version 1"))
	eventually(t, "nested create", treeIs(h.win, "a/ a/b/ a/b/c.txt=version 1"))

	f, err := v.OpenFile("a/b/c.txt", 0o644) // no truncation: written in place
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("VERSION 2")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "in-place edit, same size", treeIs(h.win, "a/ a/b/ a/b/c.txt=VERSION 2"))

	if err := v.Rename("a/b/c.txt", "a/b/d.txt"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "file rename", treeIs(h.win, "a/ a/b/ a/b/d.txt=VERSION 2"))
	if err := v.Rename("a", "z"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "directory rename", treeIs(h.win, "z/ z/b/ z/b/d.txt=VERSION 2"))
	if err := v.RemoveAll("z"); err != nil {
		t.Fatal(err)
	}
	// The export went from synced files to none in one round: root safety
	// holds the deletions until an operator confirms, here over NFS.
	eventually(t, "emptied export reported", func() error {
		if h.metric("nasd_sync_halted", "side", "nfs") != 1 {
			return errors.New("not halted")
		}
		return nil
	})
	if got := tree(h.win); got != "z/ z/b/ z/b/d.txt=VERSION 2" {
		t.Fatalf("windows after the export was emptied: %s", got)
	}
	// The engine removes the marker as soon as it sees it, maybe before
	// the client's close (its COMMIT then answers STALE): only its
	// creation matters.
	if f, err := v.OpenFile(scan.ResumeName, 0o644); err != nil {
		t.Fatalf("nfs create %s: %v", scan.ResumeName, err)
	} else {
		_ = f.Close()
	}
	eventually(t, "recursive delete", treeIs(h.win, ""))
	if got := tree(h.nfs); got != "" {
		t.Fatalf("export after the delete: %s", got)
	}
}

var nasdBuild struct {
	once gosync.Once
	path string
	err  error
}

// nasdBinary builds nasd once per test run.
func nasdBinary(t testing.TB) string {
	t.Helper()
	nasdBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "nassync-nasd-")
		if err != nil {
			nasdBuild.err = err
			return
		}
		nasdBuild.path = filepath.Join(dir, "nasd")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", nasdBuild.path,
			"github.com/nas-topology/nas-topology/nasimage/cmd/nasd").CombinedOutput()
		if err != nil {
			nasdBuild.err = fmt.Errorf("building nasd: %v\n%s", err, out)
		}
	})
	if nasdBuild.err != nil {
		t.Fatal(nasdBuild.err)
	}
	return nasdBuild.path
}

// nasdProc is nasd running as a child process.
type nasdProc struct {
	cmd        *exec.Cmd
	nfs, http  string
	mu         gosync.Mutex
	logs       bytes.Buffer
	exited     chan error
	readyAfter time.Duration
}

func (p *nasdProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func startNasd(t testing.TB, export, state, windows string, extra ...string) *nasdProc {
	t.Helper()
	args := append([]string{"serve", "--export", export, "--state", state, "--windows-dir", windows,
		"--listen", "127.0.0.1:0", "--portmap-listen", "", "--http-listen", "127.0.0.1:0", "--advertise-port", "0",
		"--log-level", "debug",
		// These tests are about the sync and handles, and call as AUTH_NULL
		// (or root): no credential checks (TestCredentials* cover them).
		"--options", "rw,sync,insecure_squash"}, extra...)
	cmd := exec.Command(nasdBinary(t), args...)
	stderr, _ := cmd.StderrPipe()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nasdProc{cmd: cmd, exited: make(chan error, 1)}
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.Write(append(sc.Bytes(), '\n'))
			p.mu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "serving" {
				serving <- line
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("nasd log:\n%s", p.log())
		}
	})
	select {
	case line := <-serving:
		p.nfs, p.http = line["nfs"].(string), line["http"].(string)
	case err := <-p.exited:
		t.Fatalf("nasd exited: %v\n%s", err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("nasd not serving\n%s", p.log())
	}
	eventually(t, "nasd ready", func() error {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
	p.readyAfter = time.Since(start)
	return p
}

func (p *nasdProc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("nasd exit: %v\n%s", err, p.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("nasd did not stop on SIGTERM\n%s", p.log())
	}
}

// TestNasdServesAndSyncs runs the real nasd binary with the sync flags: the
// initial sync gates /readyz, Windows changes show up over NFS without a
// restart (the old design needed one for inputs), /metrics carries the sync
// metrics, and SIGTERM flushes.
func TestNasdServesAndSyncs(t *testing.T) {
	base := t.TempDir()
	win, export, state := filepath.Join(base, "windows"), filepath.Join(base, "export"), filepath.Join(base, "state")
	for _, d := range []string{win, export, state} {
		os.MkdirAll(d, 0o755)
	}
	write(t, win, "testdata/input1.csv", "a,b\n1,2\n")
	p := startNasd(t, export, state, win, "--role", "input", "--exclude", "*.bak")
	v := nfstest.Mount(t, p.nfs, "/")
	if err := nfsHas(v, "testdata/input1.csv", []byte("a,b\n1,2\n"))(); err != nil {
		t.Fatalf("initial sync not done when ready: %v", err)
	}
	write(t, win, "testdata/input2.csv", "new")
	write(t, win, "testdata/old.bak", "excluded")
	eventually(t, "new Windows file over NFS", nfsHas(v, "testdata/input2.csv", []byte("new")))
	if _, err := nfsRead(v, "testdata/old.bak"); err == nil {
		t.Fatal("excluded file synced")
	}
	// The file is visible once renamed into place; the round that copied it
	// counts it a moment later.
	eventually(t, "/metrics", func() error {
		resp, err := http.Get("http://" + p.http + "/metrics")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`nasd_sync_files_copied_total{direction="windows_to_nfs"} 2`, "nasd_sync_last_success_timestamp_seconds", "nasd_sync_pending_actions 0"} {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("/metrics lacks %q", want)
			}
		}
		return nil
	})
	write(t, win, "testdata/last.csv", "written right before SIGTERM")
	p.stop(t)
	if b, err := os.ReadFile(filepath.Join(export, "testdata/last.csv")); err != nil || string(b) != "written right before SIGTERM" {
		t.Fatalf("not flushed on SIGTERM: %q %v", b, err)
	}
}

// TestQuietPeriodWaitsForWrites: a file an application writes slowly through
// NFS (many WRITE calls, each an open/write/close in go-nfs) is copied to
// Windows only once the writes stop: Windows never sees a partial file.
func TestQuietPeriodWaitsForWrites(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.QuietPeriod = 400 * time.Millisecond
	h := newHarness(t, cfg)
	srv := nfstest.Start(t, nfstest.Options{Dir: h.nfs})
	h.run()
	v := nfstest.Mount(t, srv.Addr, "/")

	data := bigContent(40 << 12)
	f, err := v.OpenFile("slow.bin", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	partial := make(chan int64, 1)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Stat(filepath.Join(h.win, "slow.bin")); err == nil && fi.Size() != int64(len(data)) {
				partial <- fi.Size()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for off := 0; off < len(data); off += 4 << 10 {
		if _, err := f.Write(data[off : off+4<<10]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close()
	eventually(t, "slow file on Windows", func() error {
		return sameContent(filepath.Join(h.nfs, "slow.bin"), filepath.Join(h.win, "slow.bin"))
	})
	close(stop)
	select {
	case n := <-partial:
		t.Fatalf("Windows saw a partial file (%d of %d bytes)", n, len(data))
	default:
	}
}

// TestNasdReadyzReportsHaltedSync: the real nasd names the halt on /readyz
// (still 200: the export keeps serving) and fails /syncz with the reason
// while the Windows root is in doubt, and recovers when it is back.
func TestNasdReadyzReportsHaltedSync(t *testing.T) {
	base := t.TempDir()
	win, export, state := filepath.Join(base, "windows"), filepath.Join(base, "export"), filepath.Join(base, "state")
	for _, d := range []string{win, export, state} {
		os.MkdirAll(d, 0o755)
	}
	write(t, win, "input.csv", "a,b\n")
	p := startNasd(t, export, state, win, "--role", "input", "--rescan-interval", "50ms")
	endpoint := func(path string, wantCode int, wantText string) func() error {
		return func() error {
			resp, err := http.Get("http://" + p.http + path)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantCode || !strings.Contains(string(body), wantText) {
				return fmt.Errorf("%s %d %q", path, resp.StatusCode, body)
			}
			return nil
		}
	}
	readyz := func(wantCode int, wantText string) func() error {
		return func() error {
			if err := endpoint("/readyz", 200, wantText)(); err != nil {
				return err
			}
			return endpoint("/syncz", wantCode, "")()
		}
	}
	eventually(t, "ready", readyz(200, "ready"))
	marker, err := os.ReadFile(filepath.Join(win, scan.MarkerName))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(win, scan.MarkerName))
	os.Remove(filepath.Join(win, "input.csv"))
	eventually(t, "/readyz reports the halt", readyz(503, "warning: sync: halted: windows root in doubt: marker .nasd-sync-root missing"))
	if _, err := os.Stat(filepath.Join(export, "input.csv")); err != nil {
		t.Fatalf("deleted on the export while halted: %v", err)
	}
	// The marker back, the root is found empty: still no deletion.
	os.WriteFile(filepath.Join(win, scan.MarkerName), marker, 0o644)
	eventually(t, "/readyz reports the emptied root", readyz(503, "warning: sync: halted: windows root emptied"))
	if _, err := os.Stat(filepath.Join(export, "input.csv")); err != nil {
		t.Fatalf("deleted on the export while held: %v", err)
	}
	// The operator confirms.
	write(t, win, scan.ResumeName, "")
	eventually(t, "ready again", readyz(200, "ready"))
	eventually(t, "the deletion propagated", func() error {
		if _, err := os.Stat(filepath.Join(export, "input.csv")); err == nil {
			return errors.New("input.csv still on the export")
		}
		return nil
	})
	p.stop(t)
}
