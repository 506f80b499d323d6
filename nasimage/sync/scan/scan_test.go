package scan

import (
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
