package nfsfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// BenchmarkFromHandle100k resolves handles with 100,000 files known to the
// index: the lookup is a map access plus one lgetxattr (the file's
// identity, checked), whatever the number of files (go-nfs's stock
// CachingHandler scans its whole cache instead).
func BenchmarkFromHandle100k(b *testing.B) {
	dir := b.TempDir()
	var paths [][]string
	for d := range 100 {
		os.Mkdir(filepath.Join(dir, fmt.Sprintf("d%03d", d)), 0o755)
		for f := range 1000 {
			p := []string{fmt.Sprintf("d%03d", d), fmt.Sprintf("f%04d", f)}
			if err := os.WriteFile(filepath.Join(dir, p[0], p[1]), nil, 0o644); err != nil {
				b.Fatal(err)
			}
			paths = append(paths, p)
		}
	}
	h, err := NewHandler(dir, DefaultOptions(), bytes.Repeat([]byte{1}, 32))
	if err != nil {
		b.Fatal(err)
	}
	handles := make([][]byte, len(paths))
	for i, p := range paths {
		handles[i] = h.ToHandle(h.fs, p)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, _, err := h.FromHandle(handles[i%len(handles)]); err != nil {
			b.Fatal(err)
		}
		i += 7919
	}
}

func TestIndexWalksAreSpaced(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), nil, 0o644)
	x := newHandleIndex(dir)
	if _, ok := x.lookup(derivedID(t, dir, "a")); !ok || x.walks != 1 {
		t.Fatalf("first miss should walk and find a (walks %d)", x.walks)
	}
	gone := fileid.New()
	x.lastWalk = time.Time{}
	x.lookup(gone) // walks, finds nothing: interval doubles
	if x.walkEvery != 2*minWalkInterval {
		t.Fatalf("interval after a fruitless walk: %v", x.walkEvery)
	}
	walks := x.walks
	for range 100 {
		x.lookup(gone)
	}
	if x.walks != walks {
		t.Fatalf("repeated misses walked %d more times", x.walks-walks)
	}
	os.WriteFile(filepath.Join(dir, "b"), nil, 0o644)
	x.lastWalk = time.Time{}
	if _, ok := x.lookup(derivedID(t, dir, "b")); !ok || x.walkEvery != minWalkInterval {
		t.Fatalf("a fruitful walk resets the interval: %v", x.walkEvery)
	}
}

// derivedID is the identity a file put in the export behind nasd's back
// gets on first sight.
func derivedID(t *testing.T, dir, rel string) fileid.ID {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return fileid.Derived(rel, fi, "")
}
