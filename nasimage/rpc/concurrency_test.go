package rpc_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fattr"
	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
	"github.com/nas-topology/nas-topology/nasimage/rpc"
)

// watchedData is the handler's data path with its GETATTRs and READs
// counted while they run, once armed: each waits until wait calls are
// inside at once (or 200 ms have passed), so calls answered one at a time
// show as a peak of 1.
type watchedData struct {
	*nfsfs.Handler
	wait  int
	armed bool

	mu      sync.Mutex
	in, max int
	big     int // READs of more than rpc.SmallRead bytes inside now
	maxBig  int
}

func (w *watchedData) enter(big bool) func() {
	w.mu.Lock()
	if !w.armed {
		w.mu.Unlock()
		return func() {}
	}
	w.in++
	w.max = max(w.max, w.in)
	if big {
		w.big++
		w.maxBig = max(w.maxBig, w.big)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for w.in < w.wait && time.Now().Before(deadline) {
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
		w.mu.Lock()
	}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		w.in--
		if big {
			w.big--
		}
		w.mu.Unlock()
	}
}

func (w *watchedData) Attr(fh []byte, a *fattr.Attr) error {
	defer w.enter(false)()
	return w.Handler.Attr(fh, a)
}

func (w *watchedData) ReadAt(fh []byte, buf []byte, off uint64, a *fattr.Attr) (int, bool, error) {
	defer w.enter(len(buf) > rpc.SmallRead)()
	return w.Handler.ReadAt(fh, buf, off, a)
}

func watched(t *testing.T, wait int) (*watchedData, *nfstest.Raw, []byte) {
	w := &watchedData{wait: wait}
	srv := nfstest.Start(t, nfstest.Options{WrapData: func(h *nfsfs.Handler) rpc.DataPath {
		w.Handler = h
		return w
	}})
	if err := os.WriteFile(filepath.Join(srv.Dir, "big"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, fh := c.Lookup(t, root, "big")
	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
	return w, c, fh
}

// pipeline sends calls in one write, as a client with them all in flight
// does, and reads every reply.
func pipeline(t *testing.T, c *nfstest.Raw, calls [][]byte) {
	var batch []byte
	for _, call := range calls {
		batch = binary.BigEndian.AppendUint32(batch, uint32(len(call))|1<<31)
		batch = append(batch, call...)
	}
	go c.Conn.Write(batch)
	for range calls {
		rep, err := c.Read()
		if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 0 {
			t.Fatalf("pipelined call: %+v %v", rep, err)
		}
	}
}

// TestQueuedCallsRunConcurrently: calls a client has in flight together
// are served together, not one after another by the connection's reader
// (a REMOVE waiting for the disk held up every call behind it: unlinks at
// depth 32 ran at depth 1).
func TestQueuedCallsRunConcurrently(t *testing.T) {
	const n = 8
	w, c, fh := watched(t, n)
	var calls [][]byte
	for i := range n {
		calls = append(calls, nfstest.Call(uint32(100+i), 2, progNFS, 3, 1, X{}.Opaque(fh)))
	}
	pipeline(t, c, calls)
	w.mu.Lock() // the replies come over a socket: no happens-before the race detector sees
	defer w.mu.Unlock()
	if w.max < n {
		t.Fatalf("%d pipelined GETATTRs: at most %d were served at once", n, w.max)
	}
}

// TestLargeReadsBounded: a client with more 1 MiB READs in flight than
// rpc.MaxBigReads gets them all answered, with at most MaxBigReads buffers
// in use at once (each holds rtmax bytes).
func TestLargeReadsBounded(t *testing.T) {
	n := rpc.MaxConnCalls
	w, c, fh := watched(t, rpc.MaxBigReads)
	var calls [][]byte
	for i := range n {
		calls = append(calls, nfstest.Call(uint32(200+i), 2, progNFS, 3, 6, X{}.Opaque(fh).U64(uint64(i%4)<<20).U32(1<<20)))
	}
	pipeline(t, c, calls)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxBig > rpc.MaxBigReads {
		t.Fatalf("%d large READs ran at once, more than MaxBigReads (%d)", w.maxBig, rpc.MaxBigReads)
	}
	if w.maxBig < rpc.MaxBigReads {
		t.Fatalf("at most %d large READs ran at once: the %d in flight were not served together", w.maxBig, rpc.MaxBigReads)
	}
}

// stallingData is the handler's data path with its READs held, once
// armed, until release is closed: a call stuck on a slow disk.
type stallingData struct {
	*nfsfs.Handler
	armed   chan struct{} // closed by the test to arm
	entered chan struct{} // closed when a READ is held
	release chan struct{}
	once    sync.Once
}

func (d *stallingData) ReadAt(fh []byte, buf []byte, off uint64, a *fattr.Attr) (int, bool, error) {
	select {
	case <-d.armed:
		d.once.Do(func() { close(d.entered) })
		<-d.release
	default:
	}
	return d.Handler.ReadAt(fh, buf, off, a)
}

// TestSlowCallDoesNotHoldUpOthers: a call the connection's reader serves
// itself (alone in flight: a client waiting for each answer) that then
// waits on the disk does not stop the reader's work. The calls the client
// sends meanwhile, from other applications on the same mount, are read
// and answered before it.
func TestSlowCallDoesNotHoldUpOthers(t *testing.T) {
	d := &stallingData{armed: make(chan struct{}), entered: make(chan struct{}), release: make(chan struct{})}
	srv := nfstest.Start(t, nfstest.Options{WrapData: func(h *nfsfs.Handler) rpc.DataPath {
		d.Handler = h
		return d
	}})
	if err := os.WriteFile(filepath.Join(srv.Dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, fh := c.Lookup(t, root, "f")
	close(d.armed)
	defer func() {
		select {
		case <-d.release:
		default:
			close(d.release)
		}
	}()
	if err := c.Send(nfstest.Call(700, 2, progNFS, 3, 6, X{}.Opaque(fh).U64(0).U32(4))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the READ never reached the data path")
	}
	if err := c.Send(nfstest.Call(701, 2, progNFS, 3, 1, X{}.Opaque(fh))); err != nil {
		t.Fatal(err)
	}
	rep, err := c.Read()
	if err != nil {
		t.Fatalf("GETATTR sent behind a held READ got no answer: %v", err)
	}
	if rep.XID != 701 || rep.AcceptStat != 0 || rep.Words[0] != 0 {
		t.Fatalf("first answer: %+v, want the GETATTR's (xid 701), OK", rep)
	}
	close(d.release)
	if rep, err = c.Read(); err != nil || rep.XID != 700 || rep.Words[0] != 0 {
		t.Fatalf("the READ, once released: %+v %v", rep, err)
	}
	// The connection goes on serving, one call at a time and pipelined.
	if st := c.Getattr(t, fh); st != 0 {
		t.Fatalf("GETATTR after: status %d", st)
	}
	pipeline(t, c, [][]byte{
		nfstest.Call(702, 2, progNFS, 3, 1, X{}.Opaque(fh)),
		nfstest.Call(703, 2, progNFS, 3, 6, X{}.Opaque(fh).U64(0).U32(4)),
	})
}
