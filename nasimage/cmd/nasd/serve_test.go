package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// startInProcess runs serve() in this process with loopback listeners.
// stop (SIGTERM) cancels serve and returns its result; it may be called
// more than once.
func startInProcess(t *testing.T, args ...string) (l listening, stop func() error) {
	t.Helper()
	base := []string{"--export", t.TempDir(), "--state", t.TempDir(), "--listen", "127.0.0.1:0",
		"--portmap-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--advertise-port", "0",
		"--shutdown-grace", "5s", "--log-level", "warn"}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, append(base, args...), io.Discard, func(l listening) { started <- l }) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				result = errors.New("serve did not return within 15s of cancel")
			}
		})
		return result
	}
	select {
	case l = <-started:
		t.Cleanup(func() { stop() })
		return l, stop
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	panic("unreachable")
}

func httpStatus(t *testing.T, addr net.Addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fakeWorker stands in for the sync engine.
type fakeWorker struct {
	becomeReady     chan struct{}
	nfsAddr         atomic.Value // string
	stopped         chan struct{}
	nfsDownAtCancel atomic.Bool
}

func (w *fakeWorker) Run(ctx context.Context, ready func()) error {
	select {
	case <-w.becomeReady:
		ready()
	case <-ctx.Done():
	}
	<-ctx.Done()
	// By the time workers are cancelled, NFS no longer accepts connections.
	if a, ok := w.nfsAddr.Load().(string); ok {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			w.nfsDownAtCancel.Store(true)
		} else {
			c.Close()
		}
	}
	time.Sleep(100 * time.Millisecond) // "flush"
	close(w.stopped)
	return nil
}

// TestWorkerSeam: /readyz waits for every worker's ready(); on shutdown
// NFS stops first, then workers are cancelled and awaited; serve returns nil.
func TestWorkerSeam(t *testing.T) {
	w := &fakeWorker{becomeReady: make(chan struct{}), stopped: make(chan struct{})}
	var gotEnv Env
	saved := extensions
	t.Cleanup(func() { extensions = saved })
	extensions = nil
	var flagValue string
	registerExtension(extension{
		name: "fake-sync",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&flagValue, "fake-windows-dir", "", "test flag added by an extension")
		},
		worker: func(env Env) (Worker, error) { gotEnv = env; return w, nil },
	})
	l, stop := startInProcess(t, "--fake-windows-dir", "C:/x", "--role", "input")
	w.nfsAddr.Store(l.nfs.String())
	if flagValue != "C:/x" || gotEnv.Role != "input" || gotEnv.Registerer == nil || gotEnv.Logger == nil {
		t.Fatalf("extension flag %q, env %+v", flagValue, gotEnv)
	}
	if code, body := httpStatus(t, l.http, "/readyz"); code != 503 || !strings.Contains(body, "fake-sync") {
		t.Fatalf("/readyz before the worker is ready: %d %q", code, body)
	}
	if code, _ := httpStatus(t, l.http, "/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	close(w.becomeReady)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := httpStatus(t, l.http, "/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never became 200 after ready()")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil { // SIGTERM
		t.Fatalf("serve returned %v", err)
	}
	select {
	case <-w.stopped:
	default:
		t.Fatal("serve returned before the worker's Run did")
	}
	if !w.nfsDownAtCancel.Load() {
		t.Fatal("workers were cancelled while NFS still accepted connections")
	}
}

// TestNoWorkersReadyWhenListening: without workers /readyz is 200 as soon
// as NFS listens.
func TestNoWorkersReadyWhenListening(t *testing.T) {
	saved := extensions
	t.Cleanup(func() { extensions = saved })
	extensions = nil
	l, _ := startInProcess(t, "--options", "rw,sync,no_root_squash") // the client is root
	if code, _ := httpStatus(t, l.http, "/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	v := nfstest.Mount(t, l.nfs.String(), "/")
	if _, err := v.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	_, body := httpStatus(t, l.http, "/metrics")
	for _, want := range []string{`nasd_rpc_requests_total{procedure="MKDIR",program="nfs",status="OK"} 1`,
		`nasd_rpc_requests_total{procedure="MNT",program="mount",status="OK"} 1`, "nasd_rpc_connections ", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestBackupRoleIsReadOnly: --role backup forces a read-only export even
// with rw options.
// TestExportCreatedInEmptyDir: a new pod's emptyDir is empty; nasd makes the
// export directory in it instead of exiting.
func TestExportCreatedInEmptyDir(t *testing.T) {
	export := filepath.Join(t.TempDir(), "export")
	startInProcess(t, "--export", export)
	st, err := os.Stat(export)
	if err != nil || !st.IsDir() {
		t.Fatalf("export directory not made: %v", err)
	}
}

func TestBackupRoleIsReadOnly(t *testing.T) {
	l, _ := startInProcess(t, "--role", "backup", "--options", "rw")
	v := nfstest.Mount(t, l.nfs.String(), "/")
	if _, err := v.Mkdir("d", 0o755); err == nil {
		t.Fatal("mkdir on the backup export succeeded")
	}
}

func TestFlagErrorsAndEnv(t *testing.T) {
	var stderr strings.Builder
	if code := run(context.Background(), []string{"serve", "--help"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "NASD_") {
		t.Fatalf("--help: exit %d, %q", code, stderr.String())
	}
	for _, args := range [][]string{
		{"serve", "--role", "bogus", "--export", t.TempDir(), "--state", t.TempDir()},
		{"serve"}, // no --export
		{"serve", "--export", t.TempDir(), "--options", "nohide"},
		{"serve", "--export", t.TempDir(), "--allow", "10.0.0.300/8"},
		{"bogus"},
	} {
		if code := run(context.Background(), args, io.Discard); code == 0 {
			t.Errorf("%v: exit 0, want an error", args)
		}
	}
	// Environment variables fill flags not given on the command line.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	t.Setenv("NASD_EXPORT", dir)
	t.Setenv("NASD_ROLE", "backup")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan listening, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--state", t.TempDir(), "--listen", "127.0.0.1:0", "--portmap-listen", "",
			"--http-listen", ""}, io.Discard, func(l listening) { started <- l })
	}()
	l := <-started
	v := nfstest.Mount(t, l.nfs.String(), "/")
	if _, _, err := v.Lookup("f"); err != nil {
		t.Fatalf("NASD_EXPORT not used: %v", err)
	}
	if _, err := v.Mkdir("d", 0o755); err == nil {
		t.Fatal("NASD_ROLE=backup not applied")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestHandleKeyFile: --handle-key-file (NASD_HANDLE_KEY_FILE) supplies the
// handle secret: a short file is a startup error naming the flag, and two
// servers with different state directories but the same key file give the
// same handles for the same unchanged tree (as after a pod replacement).
func TestHandleKeyFile(t *testing.T) {
	keyDir := t.TempDir()
	short := filepath.Join(keyDir, "short")
	os.WriteFile(short, []byte("too short"), 0o600)
	var stderr strings.Builder
	err := serve(context.Background(), []string{"--export", t.TempDir(), "--state", t.TempDir(), "--handle-key-file", short,
		"--listen", "127.0.0.1:0", "--portmap-listen", "", "--http-listen", ""}, &stderr, nil)
	if err == nil || !strings.Contains(err.Error(), "--handle-key-file") {
		t.Fatalf("short key file: %v, want an error naming --handle-key-file", err)
	}
	if err := serve(context.Background(), []string{"--export", t.TempDir(), "--handle-key-file", filepath.Join(keyDir, "missing"),
		"--listen", "127.0.0.1:0", "--portmap-listen", "", "--http-listen", ""}, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--handle-key-file") {
		t.Fatalf("missing key file: %v", err)
	}

	key := filepath.Join(keyDir, "handle.key")
	os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef-from-a-secret"), 0o600)
	handles := func(export string, env bool) (root, f []byte) {
		args := []string{"--export", export}
		if env {
			t.Setenv("NASD_HANDLE_KEY_FILE", key)
		} else {
			args = append(args, "--handle-key-file", key)
		}
		state := t.TempDir()
		l, stop := startInProcess(t, append(args, "--state", state)...)
		defer stop()
		c := nfstest.DialRaw(t, l.nfs.String(), "")
		root = c.Mnt(t, "/")
		_, f = c.Lookup(t, root, "f.txt")
		if _, err := os.Stat(filepath.Join(state, "handle.key")); err == nil {
			t.Error("handle.key generated in the state directory despite the key file")
		}
		return root, f
	}
	tree := func() string {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "f.txt"), []byte("same"), 0o644)
		mt := time.Unix(1700000000, 0)
		os.Chtimes(filepath.Join(d, "f.txt"), mt, mt)
		return d
	}
	r1, f1 := handles(tree(), false)
	r2, f2 := handles(tree(), true)
	if !bytes.Equal(r1, r2) || !bytes.Equal(f1, f2) || f1 == nil {
		t.Fatalf("same key file, same tree: handles differ (root %x/%x, file %x/%x)", r1, r2, f1, f2)
	}
}

// fillingWorker stands in for the sync engine's initial sync: it writes a
// file into the export and only then calls ready.
type fillingWorker struct {
	export string
	fill   chan struct{}
}

func (w *fillingWorker) Run(ctx context.Context, ready func()) error {
	select {
	case <-w.fill:
		if err := os.WriteFile(filepath.Join(w.export, "copied-late"), []byte("x"), 0o644); err != nil {
			return err
		}
		ready()
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

// TestCallsHeldUntilWorkersReady: a client that reaches nasd before its
// workers are ready (not through the Service, which waits for /readyz) is
// told JUKEBOX (try later), not NOENT or STALE for files the initial sync
// has yet to copy; NULL and MOUNT answer; once ready, the file is there.
func TestCallsHeldUntilWorkersReady(t *testing.T) {
	w := &fillingWorker{fill: make(chan struct{})}
	saved := extensions
	t.Cleanup(func() { extensions = saved })
	extensions = nil
	registerExtension(extension{
		name:   "fake-sync",
		worker: func(env Env) (Worker, error) { w.export = env.ExportDir; return w, nil },
	})
	l, _ := startInProcess(t, "--options", "rw,insecure_squash")
	c := nfstest.DialRaw(t, l.nfs.String(), "")
	if rep, err := c.Call(100003, 3, 0, nil); err != nil || rep.AcceptStat != 0 {
		t.Fatalf("NULL while held: %+v %v", rep, err)
	}
	root := c.Mnt(t, "/")
	const jukebox = 10008
	if st := c.Getattr(t, root); st != jukebox {
		t.Fatalf("GETATTR of the root before the workers are ready: status %d, want JUKEBOX", st)
	}
	if st, _ := c.Lookup(t, root, "copied-late"); st != jukebox {
		t.Fatalf("LOOKUP of a file the initial sync has yet to copy: status %d, want JUKEBOX", st)
	}
	close(w.fill)
	// Whoever sees Ready (the Service, a test) is let in at once.
	deadline := time.Now().Add(5 * time.Second)
	for code, _ := httpStatus(t, l.http, "/readyz"); code != 200; code, _ = httpStatus(t, l.http, "/readyz") {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never became 200")
		}
		time.Sleep(time.Millisecond)
	}
	st, fh := c.Lookup(t, root, "copied-late")
	if st != 0 {
		t.Fatalf("LOOKUP once /readyz says 200: status %d", st)
	}
	if st := c.Getattr(t, fh); st != 0 {
		t.Fatalf("GETATTR of the copied file once ready: status %d", st)
	}
}
