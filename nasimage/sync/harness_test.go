package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// harness runs an Engine on two temp directories. The Windows side is
// changed with plain file operations and not watched (as on a 9p share,
// whose changes fire no events); the NFS side is watched.
type harness struct {
	t        *testing.T
	win, nfs string
	state    string
	cfg      Config
	reg      *prometheus.Registry
	eng      *Engine
	cancel   context.CancelFunc
	done     chan error
}

func testConfig(t *testing.T, role reconcile.Role) Config {
	base := t.TempDir()
	cfg := Config{
		WindowsDir:     filepath.Join(base, "windows"),
		NFSDir:         filepath.Join(base, "export"),
		StateDir:       filepath.Join(base, "state"),
		Role:           role,
		RescanInterval: 50 * time.Millisecond,
		QuietPeriod:    50 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, d := range []string{cfg.WindowsDir, cfg.NFSDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newHarness builds an engine without running it: tests call rounds directly
// or start it with run.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, win: cfg.WindowsDir, nfs: cfg.NFSDir, state: cfg.StateDir, cfg: cfg}
	h.reg = prometheus.NewRegistry()
	cfg.Registerer = h.reg
	eng, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	return h
}

// run starts the engine and waits until it is ready.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	ready := make(chan struct{})
	go func() { h.done <- h.eng.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-h.done:
		h.t.Fatalf("engine stopped before ready: %v", err)
	case <-time.After(20 * time.Second):
		h.t.Fatal("engine not ready after 20 s")
	}
	h.t.Cleanup(func() { h.stop() })
}

// stop cancels the engine and waits for its flush.
func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("engine did not stop")
		return nil
	}
}

// restart stops the engine and starts a new one on the same directories.
func (h *harness) restart() {
	h.t.Helper()
	if err := h.stop(); err != nil {
		h.t.Fatal(err)
	}
	*h = *newHarness(h.t, h.cfg)
	h.run()
}

func (h *harness) round() {
	h.t.Helper()
	if !h.eng.opened {
		if err := h.eng.open(); err != nil {
			h.t.Fatal(err)
		}
	}
	if _, err := h.eng.round(context.Background(), false, false); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) metric(name string, labels ...string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i*2+1 < len(labels) && (lp.GetName() != labels[2*i] || lp.GetValue() != labels[2*i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree lists root as "path=content" (dirs as "path/"), temp files included.
func tree(root string) string {
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == scan.MarkerName || rel == scan.JournalName {
			return nil // the engine's root marker, the identity journal
		}
		switch {
		case d.IsDir():
			out = append(out, rel+"/")
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+"->"+target)
		default:
			b, _ := os.ReadFile(p)
			if len(b) > 64 {
				b = []byte(fmt.Sprintf("<%d bytes>", len(b)))
			}
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	return strings.Join(out, " ")
}

// eventually polls cond until it returns nil or 15 s pass.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func treeIs(root, want string) func() error {
	return func() error {
		if got := tree(root); got != want {
			return fmt.Errorf("tree of %s\n got: %s\nwant: %s", filepath.Base(root), got, want)
		}
		return nil
	}
}

func sameContent(a, b string) error {
	x, err := os.ReadFile(a)
	if err != nil {
		return err
	}
	y, err := os.ReadFile(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(x, y) {
		return errors.New("contents differ")
	}
	return nil
}
