package rpc

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
)

// dataPathConn is a front door on the nfsfs handler (with its data path)
// and a connection that discards replies, for measuring one call from its
// decoded record to its written reply.
func dataPathConn(tb testing.TB) (*conn, []byte) {
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1<<20), 0o644); err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	h, err := nfsfs.NewHandler(dir, nfsfs.DefaultOptions(), key)
	if err != nil {
		tb.Fatal(err)
	}
	s := NewServer(Config{Handler: h, Handles: h, Data: h, Export: Export{Path: "/"}})
	tb.Cleanup(s.backends.close)
	fh := h.ToHandle(h.Filesystem(), []string{"f"})
	c := &conn{s: s, nc: &streamConn{}, allowed: true, slots: make(chan struct{}, maxConnCalls), bigReads: make(chan struct{}, maxBigReads), jobs: make(chan nfsJob)}
	c.takeover = newTakeoverTimer(c)
	tb.Cleanup(func() { close(c.jobs) })
	return c, fh
}

// nfsRecord is an NFSv3 call record (AUTH_NULL) with args.
func nfsRecord(proc uint32, args []byte) []byte {
	w := xdrWriter{}
	for _, v := range []uint32{7, 0, 2, progNFS, 3, proc, 0, 0, 0, 0} {
		w.uint32(v)
	}
	return append(w.buf, args...)
}

// call runs one call through dispatch as the connection's reader does,
// with the record in a recycled buffer, and waits for its reply.
func (c *conn) benchCall(tb testing.TB, rec []byte) {
	buf := c.s.recs.small.Get().(*[]byte)
	r := (*buf)[:len(rec)]
	copy(r, rec)
	call, err := ParseCall(r)
	if err != nil {
		tb.Fatal(err)
	}
	if !c.dispatch(call, r, buf) {
		c.s.recs.put(buf)
	}
	c.inflight.Wait()
}

func fhArgs(fh []byte, more ...uint32) []byte {
	w := xdrWriter{}
	w.opaque(fh)
	for _, v := range more {
		w.uint32(v)
	}
	return w.buf
}

// BenchmarkDataPathGetattr and BenchmarkDataPathRead (run with -benchmem):
// a GETATTR, and a 64 KiB READ of a cached file, from the decoded record
// to the written reply, front door checks included.
func BenchmarkDataPathGetattr(b *testing.B) {
	c, fh := dataPathConn(b)
	rec := nfsRecord(nfsProcGetattr, fhArgs(fh))
	c.benchCall(b, rec)
	b.ReportAllocs()
	for b.Loop() {
		c.benchCall(b, rec)
	}
}

func BenchmarkDataPathRead(b *testing.B) {
	c, fh := dataPathConn(b)
	rec := nfsRecord(nfsProcRead, fhArgs(fh, 0, 4096, 64<<10))
	c.benchCall(b, rec)
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	for b.Loop() {
		c.benchCall(b, rec)
	}
}

// BenchmarkDataPathGetattrDir is GETATTR of a directory (never cached:
// answered by path).
func BenchmarkDataPathGetattrDir(b *testing.B) {
	c, _ := dataPathConn(b)
	h := c.s.cfg.Data.(*nfsfs.Handler)
	rec := nfsRecord(nfsProcGetattr, fhArgs(h.ToHandle(h.Filesystem(), []string{})))
	c.benchCall(b, rec)
	b.ReportAllocs()
	for b.Loop() {
		c.benchCall(b, rec)
	}
}

// TestDataPathAllocs: at steady state a READ or a GETATTR of a file in use
// allocates nothing, from its record to its reply (what
// BenchmarkDataPathRead and BenchmarkDataPathGetattr report with
// -benchmem).
//
// In this order: the READ puts the file in use (the open-file cache); a
// GETATTR of a file not in use is answered by path, and allocates.
func TestDataPathAllocs(t *testing.T) {
	c, fh := dataPathConn(t)
	for _, call := range []struct {
		name string
		rec  []byte
	}{
		{"READ", nfsRecord(nfsProcRead, fhArgs(fh, 0, 0, 64<<10))},
		{"GETATTR", nfsRecord(nfsProcGetattr, fhArgs(fh))},
	} {
		c.benchCall(t, call.rec)
		if n := testing.AllocsPerRun(200, func() { c.benchCall(t, call.rec) }); n != 0 {
			t.Errorf("%s: %.1f allocations per call", call.name, n)
		}
	}
}
