package nfsfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFromHandle100k resolves handles with 100,000 files known to the
// index: the lookup is a map access plus one lstat, whatever the number of
// files (go-nfs's stock CachingHandler scans its whole cache instead).
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
