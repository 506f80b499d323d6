package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

func setup(t *testing.T) (*Applier, string, string) {
	t.Helper()
	w, n := t.TempDir(), t.TempDir()
	return &Applier{Windows: w, NFS: n}, w, n
}

func stat(t *testing.T, root, rel string) reconcile.Entry {
	t.Helper()
	e, err := scan.Stat(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCopySetsModeAndMtimeAndRecordsPair(t *testing.T) {
	ap, w, n := setup(t)
	os.WriteFile(filepath.Join(w, "f"), []byte("data"), 0o640)
	mt := time.Date(2024, 2, 3, 4, 5, 6, 7, time.UTC)
	os.Chtimes(filepath.Join(w, "f"), mt, mt)
	src := stat(t, w, "f")
	out, err := ap.Apply(context.Background(), reconcile.Action{Op: reconcile.Copy, Path: "f", To: reconcile.NFS, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	dst := stat(t, n, "f")
	if dst != src || out.Pair != (reconcile.Pair{Windows: src, NFS: dst}) || out.Bytes != 4 {
		t.Fatalf("dst %+v src %+v out %+v", dst, src, out)
	}
}

func TestStalePlansAreRefused(t *testing.T) {
	ap, w, n := setup(t)
	os.WriteFile(filepath.Join(w, "f"), []byte("v1"), 0o644)
	planned := stat(t, w, "f")
	os.WriteFile(filepath.Join(w, "f"), []byte("v2 longer"), 0o644)
	_, err := ap.Apply(context.Background(), reconcile.Action{Op: reconcile.Copy, Path: "f", To: reconcile.NFS, Source: planned})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("copy of a changed source: %v", err)
	}
	// The destination changed since the scan: neither replaced nor removed.
	os.WriteFile(filepath.Join(n, "g"), []byte("theirs"), 0o644)
	_, err = ap.Apply(context.Background(), reconcile.Action{Op: reconcile.Remove, Path: "g", To: reconcile.NFS,
		Dest: reconcile.Entry{Kind: reconcile.File, Size: 1}})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("remove of a changed destination: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(n, "g")); string(b) != "theirs" {
		t.Fatal("destination touched")
	}
	if _, err := os.Stat(filepath.Join(n, "f")); !os.IsNotExist(err) {
		t.Fatal("stale copy left a file")
	}
	if left, _ := filepath.Glob(filepath.Join(n, scan.TempPrefix+"*")); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestRenameRefusesToOverwrite(t *testing.T) {
	ap, w, _ := setup(t)
	os.WriteFile(filepath.Join(w, "a"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(w, "a.conflict"), []byte("old"), 0o644)
	_, err := ap.Apply(context.Background(), reconcile.Action{Op: reconcile.Rename, Path: "a", NewPath: "a.conflict",
		To: reconcile.Windows, Dest: stat(t, w, "a")})
	if err == nil {
		t.Fatal("rename over an existing file")
	}
}

func TestMkdirSymlinkRemove(t *testing.T) {
	ap, w, n := setup(t)
	os.Mkdir(filepath.Join(n, "d"), 0o755)
	os.Symlink("target", filepath.Join(n, "l"))
	ctx := context.Background()
	if _, err := ap.Apply(ctx, reconcile.Action{Op: reconcile.Mkdir, Path: "d", To: reconcile.Windows, Source: stat(t, n, "d")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Apply(ctx, reconcile.Action{Op: reconcile.Copy, Path: "l", To: reconcile.Windows, Source: stat(t, n, "l")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(w, "l")); got != "target" {
		t.Fatalf("symlink %q", got)
	}
	if _, err := ap.Apply(ctx, reconcile.Action{Op: reconcile.Remove, Path: "d", To: reconcile.Windows, Dest: stat(t, w, "d")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(w, "d")); !os.IsNotExist(err) {
		t.Fatal("dir not removed")
	}
}
