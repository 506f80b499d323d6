package scan

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestExcludes(t *testing.T) {
	ex, err := NewExcludes(append(DefaultExcludes, "*.bak", "build/*", "data?.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		"Thumbs.db": true, "sub/THUMBS.DB": true, "desktop.ini": true, "~$Report.docx": true, ".~lock.x.odt#": true,
		"old.BAK": true, "build/out.o": true, "build/deep/out.o": false, "data1.csv": true, "data10.csv": false,
		"report.docx": false, "thumbs.db.txt": false,
	} {
		if got := ex.Match(rel, filepath.Base(rel)); got != want {
			t.Errorf("Match(%q) = %v, want %v", rel, got, want)
		}
	}
	if _, err := NewExcludes([]string{"[bad"}); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

func TestScan(t *testing.T) {
	root := t.TempDir()
	mt := time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for p, data := range map[string]string{"a.txt": "aaa", "d/b.bin": "b", "d/e/Thumbs.db": "x", "d/" + TempPrefix + "1" + TempSuffix: "partial"} {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(data), 0o640)
		os.Chtimes(full, mt, mt)
	}
	os.Symlink("a.txt", filepath.Join(root, "link"))
	ex, _ := NewExcludes(DefaultExcludes)
	res, err := Scan(root, ex, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := reconcile.Tree{
		"a.txt":   {Kind: reconcile.File, Mode: 0o640, Size: 3, ModTime: mt.UnixNano()},
		"d":       {Kind: reconcile.Dir},
		"d/b.bin": {Kind: reconcile.File, Mode: 0o640, Size: 1, ModTime: mt.UnixNano()},
		"d/e":     {Kind: reconcile.Dir},
		"link":    {Kind: reconcile.Symlink, Target: "a.txt"},
	}
	if len(res.Tree) != len(want) {
		t.Fatalf("tree %v", res.Tree)
	}
	for p, e := range want {
		if res.Tree[p] != e {
			t.Errorf("%s: %+v, want %+v", p, res.Tree[p], e)
		}
		if st, err := Stat(root, p); err != nil || st != e {
			t.Errorf("Stat(%s) = %+v %v, want %+v", p, st, err, e)
		}
	}
	if !slices.Equal(res.Temps, []string{"d/" + TempPrefix + "1" + TempSuffix}) {
		t.Fatalf("temps %v", res.Temps)
	}
	if st, err := Stat(root, "missing"); err != nil || st.Kind != reconcile.Absent {
		t.Fatalf("Stat(missing) = %+v %v", st, err)
	}
	if _, err := Scan(filepath.Join(root, "nope"), ex, 0); err == nil {
		t.Fatal("scan of a missing root succeeded")
	}
}

// An unreadable directory is reported, not read as empty (which would look
// like every file in it was deleted).
func TestScanUnreadableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory; the engine's permission test covers root")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "locked"), 0o755)
	os.WriteFile(filepath.Join(root, "locked", "f"), nil, 0o644)
	os.Chmod(filepath.Join(root, "locked"), 0)
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "locked"), 0o755) })
	res, err := Scan(root, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Unreadable["locked"]; !ok {
		t.Fatalf("unreadable not reported: %+v", res)
	}
}

// TestUnchanged: the cheap rescan must find every kind of change a full scan
// would plan on (content, mode, kind, symlink target, new, deleted, a path
// only the other side holds), with and without the previous walk, and must
// fall back to lookups when the walk's order differs.
func TestUnchanged(t *testing.T) {
	mt := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	build := func(t *testing.T) (string, reconcile.Ancestor) {
		root := t.TempDir()
		for _, p := range []string{"a.txt", "d/b.bin", "d/e/c.txt", "d/e/f/g.txt", "Thumbs.db"} {
			full := filepath.Join(root, p)
			os.MkdirAll(filepath.Dir(full), 0o755)
			os.WriteFile(full, []byte("data"), 0o644)
			os.Chtimes(full, mt, mt)
		}
		os.Symlink("a.txt", filepath.Join(root, "link"))
		res, err := Scan(root, mustExcludes(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		anc := reconcile.Ancestor{"nfs-only.txt": {NFS: reconcile.Entry{Kind: reconcile.File, Size: 1}}}
		for p, e := range res.Tree {
			anc[p] = reconcile.Pair{Windows: e, NFS: reconcile.Entry{Kind: e.Kind}}
		}
		return root, anc
	}
	changes := map[string]func(root string, anc reconcile.Ancestor){
		"content": func(root string, _ reconcile.Ancestor) {
			os.WriteFile(filepath.Join(root, "d/e/f/g.txt"), []byte("DATA"), 0o644) // same size, new mtime
		},
		"mtime only": func(root string, _ reconcile.Ancestor) {
			os.Chtimes(filepath.Join(root, "d/b.bin"), mt, mt.Add(time.Nanosecond))
		},
		"mode": func(root string, _ reconcile.Ancestor) { os.Chmod(filepath.Join(root, "a.txt"), 0o600) },
		"new file": func(root string, _ reconcile.Ancestor) {
			os.WriteFile(filepath.Join(root, "d/e/new.txt"), nil, 0o644)
		},
		"new dir": func(root string, _ reconcile.Ancestor) { os.Mkdir(filepath.Join(root, "z"), 0o755) },
		"deleted file": func(root string, _ reconcile.Ancestor) {
			os.Remove(filepath.Join(root, "d/e/f/g.txt"))
		},
		"deleted dir": func(root string, _ reconcile.Ancestor) { os.RemoveAll(filepath.Join(root, "d/e")) },
		"file became dir": func(root string, _ reconcile.Ancestor) {
			os.Remove(filepath.Join(root, "a.txt"))
			os.Mkdir(filepath.Join(root, "a.txt"), 0o755)
		},
		"symlink target": func(root string, _ reconcile.Ancestor) {
			os.Remove(filepath.Join(root, "link"))
			os.Symlink("d", filepath.Join(root, "link"))
		},
		"ancestor gained a path": func(_ string, anc reconcile.Ancestor) {
			anc["d/lost.txt"] = reconcile.Pair{Windows: reconcile.Entry{Kind: reconcile.File}}
		},
	}
	for _, withPrev := range []bool{false, true} {
		for name, change := range changes {
			t.Run(fmt.Sprintf("%s/prev=%v", name, withPrev), func(t *testing.T) {
				root, anc := build(t)
				ex := mustExcludes(t)
				var prev *Walk
				same, walk, err := Unchanged(root, ex, anc, reconcile.Windows, nil)
				if err != nil || !same || walk == nil || len(walk.ents) != 8 {
					t.Fatalf("unchanged tree: same=%v walk=%v err=%v", same, walk, err)
				}
				if withPrev {
					prev = walk
					if same, w2, _ := Unchanged(root, ex, anc, reconcile.Windows, prev); !same || w2 != prev {
						t.Fatalf("in step with prev: same=%v, walk reused=%v", same, w2 == prev)
					}
				}
				change(root, anc)
				if same, walk, err := Unchanged(root, ex, anc, reconcile.Windows, prev); err != nil || same || walk != nil {
					t.Fatalf("after %s: same=%v walk=%v err=%v", name, same, walk, err)
				}
			})
		}
	}

	t.Run("walk out of step", func(t *testing.T) {
		root, anc := build(t)
		ex := mustExcludes(t)
		_, walk, _ := Unchanged(root, ex, anc, reconcile.Windows, nil)
		// The same entries in another order (as a directory listed in a new
		// order gives): still unchanged, through lookups, and a new walk.
		n := len(walk.ents)
		var w2 *Walk
		for _, order := range [][]int{
			{7, 6, 5, 4, 3, 2, 1, 0}, // out of step from the first entry
			{0, 1, 2, 3, 4, 5, 7, 6}, // in step for six entries
		} {
			other := &Walk{ancLen: walk.ancLen}
			for _, i := range order[:n] {
				other.add(string(walk.path(i)), walk.ents[i].e)
			}
			var same bool
			var err error
			same, w2, err = Unchanged(root, ex, anc, reconcile.Windows, other)
			if err != nil || !same || w2 == other || !slices.Equal(w2.paths, walk.paths) || !slices.Equal(w2.ents, walk.ents) {
				t.Fatalf("order %v: same=%v new walk=%v err=%v", order, same, w2 != other, err)
			}
		}
		// A stale walk (an entry the ancestor no longer says) is never
		// trusted over the disk: a walk is only valid with its ancestor, but
		// a changed file still differs from the walk's entry.
		os.WriteFile(filepath.Join(root, "a.txt"), []byte("changed!"), 0o644)
		if same, _, _ := Unchanged(root, ex, anc, reconcile.Windows, w2); same {
			t.Fatal("a changed file passed as unchanged")
		}
	})

	t.Run("missing root", func(t *testing.T) {
		if _, _, err := Unchanged(filepath.Join(t.TempDir(), "nope"), nil, reconcile.Ancestor{}, reconcile.NFS, nil); err == nil {
			t.Fatal("no error for a missing root")
		}
	})
}

func mustExcludes(t *testing.T) *Excludes {
	ex, err := NewExcludes(DefaultExcludes)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// TestUnchangedAgreesWithScan is a differential test: over random trees and
// random changes (or none), Unchanged (with and without the last walk) says
// "unchanged" exactly when a full Scan gives the ancestor's tree.
func TestUnchangedAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	ex := mustExcludes(t)
	mt := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	names := []string{"a", "b", "c.txt", "Thumbs.db"}
	randPath := func() string {
		p := names[rng.IntN(len(names))]
		for rng.IntN(3) == 0 {
			p += "/" + names[rng.IntN(len(names))]
		}
		return p
	}
	mutations := []func(root string){
		func(root string) { // write a file (creates parents; may replace nothing or fail on a dir)
			p := filepath.Join(root, randPath())
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(names[rng.IntN(len(names))]), 0o644)
			os.Chtimes(p, mt, mt)
		},
		func(root string) { os.RemoveAll(filepath.Join(root, randPath())) },
		func(root string) { os.MkdirAll(filepath.Join(root, randPath()), 0o755) },
		func(root string) { os.Chmod(filepath.Join(root, randPath()), 0o600) },
		func(root string) { os.Chtimes(filepath.Join(root, randPath()), mt, mt.Add(time.Second)) },
		func(root string) {
			p := filepath.Join(root, randPath())
			os.RemoveAll(p)
			os.Symlink(names[rng.IntN(len(names))], p)
		},
	}
	changed := 0
	for i := range 300 {
		root := t.TempDir()
		for range 1 + rng.IntN(12) {
			mutations[0](root)
		}
		base, err := Scan(root, ex, 0)
		if err != nil {
			t.Fatal(err)
		}
		anc := reconcile.Ancestor{}
		for p, e := range base.Tree {
			anc[p] = reconcile.Pair{NFS: e}
		}
		_, walk, _ := Unchanged(root, ex, anc, reconcile.NFS, nil)
		for range rng.IntN(3) {
			mutations[rng.IntN(len(mutations))](root)
		}
		now, err := Scan(root, ex, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := maps.Equal(now.Tree, anc.Tree(reconcile.NFS))
		if !want {
			changed++
		}
		for _, prev := range []*Walk{nil, walk} {
			if got, _, err := Unchanged(root, ex, anc, reconcile.NFS, prev); err != nil || got != want {
				t.Fatalf("case %d (prev %v): Unchanged = %v %v, full scan says unchanged = %v\nbefore %v\nafter  %v",
					i, prev != nil, got, err, want, base.Tree, now.Tree)
			}
		}
	}
	if changed < 60 || changed > 270 {
		t.Fatalf("%d of 300 cases changed: the mutations do not test both answers", changed)
	}
}
