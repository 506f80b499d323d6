package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// waitReady polls /readyz until 200 (the initial sync is done).
func waitReady(t *testing.T, p *nasdProc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if body, err := httpGet("http://" + p.http + "/readyz"); err == nil && strings.HasPrefix(body, "ready") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30 s\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPodReplacementKeepsHandles: the real binary with the sync engine, as
// in a pod: a new pod has a new, empty export (emptyDir) and a new state
// directory, the sync engine copies the Windows tree into it again, and the
// handle key comes from a file (the Secret). Handles clients took in the
// old pod stay valid for what did not change on Windows; a file that
// changed meanwhile is STALE, not another file.
func TestPodReplacementKeepsHandles(t *testing.T) {
	windows := t.TempDir()
	for name, data := range map[string]string{"in/a.csv": "a", "in/deep/b.csv": "b", "top.txt": "top"} {
		p := filepath.Join(windows, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	key := filepath.Join(t.TempDir(), "handle.key")
	os.WriteFile(key, []byte("a Kubernetes Secret of at least 32 bytes"), 0o600)
	pod := func() (*nasdProc, *nfstest.Raw) {
		p := startNasd(t, t.TempDir(), t.TempDir(), "--windows-dir", windows, "--role", "input",
			"--handle-key-file", key, "--portmap-udp=false")
		waitReady(t, p)
		return p, nfstest.DialRaw(t, p.nfs, "")
	}

	p1, c := pod()
	root := c.Mnt(t, "/")
	handles := map[string][]byte{"root": root}
	_, handles["in"] = c.Lookup(t, root, "in")
	_, handles["deep"] = c.Lookup(t, handles["in"], "deep")
	_, handles["a.csv"] = c.Lookup(t, handles["in"], "a.csv")
	_, handles["b.csv"] = c.Lookup(t, handles["deep"], "b.csv")
	_, handles["top.txt"] = c.Lookup(t, root, "top.txt")
	for name, fh := range handles {
		if fh == nil {
			t.Fatalf("no handle for %s", name)
		}
	}
	if err := p1.stop(t); err != nil {
		t.Fatal(err)
	}

	// Meanwhile top.txt changes on Windows.
	os.WriteFile(filepath.Join(windows, "top.txt"), []byte("top, edited"), 0o644)
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(windows, "top.txt"), later, later)

	p2, c2 := pod()
	for name, fh := range handles {
		want := uint32(0)
		if name == "top.txt" {
			want = 70
		}
		if st := c2.Getattr(t, fh); st != want {
			t.Errorf("%s in the new pod: GETATTR %d, want %d", name, st, want)
		}
	}
	if err := p2.stop(t); err != nil {
		t.Fatal(err)
	}
}
