package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzRecord feeds arbitrary bytes to the front door as a client stream:
// record reassembly, call decoding and every procedure answered by the
// front door itself (portmapper, MOUNT, NFS checks). NFS calls never reach
// go-nfs here: every handle is refused.
func FuzzRecord(f *testing.F) {
	// rec is a single-fragment record of a call with AUTH_NULL.
	rec := func(prog, vers, proc uint32, args ...uint32) []byte {
		w := xdrWriter{}
		for _, v := range append([]uint32{1, 0, 2, prog, vers, proc, 0, 0, 0, 0}, args...) {
			w.uint32(v)
		}
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(w.buf))|lastFragment), w.buf...)
	}
	f.Add(rec(progNFS, 3, 0))
	f.Add(rec(progPortmap, 2, 3, progNFS, 3, 6, 0))
	f.Add(rec(progPortmap, 4, 3, progNFS, 3, 3, 0x74637000, 0, 0))
	f.Add(rec(progMount, 3, 1, 1, 0x2f000000))
	f.Add(rec(progMount, 3, 5))
	f.Add(rec(progNFS, 3, 1, 4, 1))
	f.Add(append(rec(progNFS, 4, 0), rec(123, 1, 1)...))
	f.Add([]byte{0, 0, 0, 4, 1, 2, 3, 4, 0x80, 0, 0, 4, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})

	s := NewServer(Config{Handles: refuseAll{}, MaxRecord: 1 << 16, Export: Export{Path: "/"}})
	defer s.backends.close()
	recs := newRecBufs(1 << 16)
	f.Fuzz(func(t *testing.T, data []byte) {
		// The record layer alone.
		r := bytes.NewReader(data)
		for {
			rec, err := ReadRecord(r, 1<<16)
			if err != nil {
				break
			}
			if len(rec) > 1<<16 {
				t.Fatalf("record of %d bytes beyond the limit", len(rec))
			}
			_, _ = ParseCall(rec)
		}
		// The recycling reader the connection uses reads the same records.
		r1, r2 := bytes.NewReader(data), bytes.NewReader(data)
		for {
			a, e1 := ReadRecord(r1, 1<<16)
			b, buf, e2 := recs.read(r2, nil)
			if (e1 == nil) != (e2 == nil) || !bytes.Equal(a, b) {
				t.Fatalf("ReadRecord %d bytes, %v; recBufs.read %d bytes, %v", len(a), e1, len(b), e2)
			}
			recs.put(buf)
			if e1 != nil {
				break
			}
		}
		// The whole connection loop.
		c := &conn{s: s, nc: &streamConn{r: bytes.NewReader(data)}, allowed: true, bigReads: make(chan struct{}, maxBigReads)}
		s.connWG.Add(1)
		c.serve()
	})
}

type refuseAll struct{}

func (refuseAll) MountHandle([]string) ([]byte, error) { return make([]byte, 44), nil }
func (refuseAll) Check([]byte) error                   { return errors.New("refused") }

// streamConn is a net.Conn reading from a buffer and discarding writes.
type streamConn struct{ r io.Reader }

func (c *streamConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *streamConn) Close() error                { return nil }
func (c *streamConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2049}
}
func (c *streamConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 900}
}
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }
