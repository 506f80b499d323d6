package rpc_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// BenchmarkGetattr is the per-call cost of the front door + handler for
// the cheapest NFS call, over loopback TCP.
func BenchmarkGetattr(b *testing.B) {
	srv := nfstest.Start(b, nfstest.Options{})
	os.WriteFile(filepath.Join(srv.Dir, "f"), nil, 0o644)
	c := nfstest.DialRaw(b, srv.Addr, "")
	root := c.Mnt(b, "/")
	_, fh := c.Lookup(b, root, "f")
	b.ResetTimer()
	for b.Loop() {
		if st := c.Getattr(b, fh); st != 0 {
			b.Fatal(st)
		}
	}
}
