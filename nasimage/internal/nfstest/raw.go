package nfstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// Raw is a minimal ONC RPC client over one TCP connection, for calls
// ordinary clients never make.
type Raw struct {
	Conn net.Conn
	xid  uint32
}

// DialRaw connects to addr; from, if not empty, is the local IP to bind
// (any 127.0.0.0/8 address works on loopback).
func DialRaw(t testing.TB, addr, from string) *Raw {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Raw{Conn: c, xid: 0x1000}
}

// Reply is a decoded RPC reply.
type Reply struct {
	XID        uint32
	Denied     bool
	RejectStat uint32   // when Denied
	AcceptStat uint32   // when accepted
	Body       []byte   // results (accepted) or reject details
	Words      []uint32 // Body as XDR words
}

// Call builds a call with AUTH_NULL credentials. rpcvers is normally 2.
func Call(xid, rpcvers, prog, vers, proc uint32, args []byte) []byte {
	b := make([]byte, 0, 40+len(args))
	for _, v := range []uint32{xid, 0, rpcvers, prog, vers, proc, 0, 0, 0, 0} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return append(b, args...)
}

// CallAs sends a call with AUTH_UNIX credentials uid and gid and reads
// the reply.
func (r *Raw) CallAs(uid, gid, prog, vers, proc uint32, args []byte) (Reply, error) {
	return r.CallGroups(uid, gid, nil, prog, vers, proc, args)
}

// CallGroups is CallAs with supplementary groups.
func (r *Raw) CallGroups(uid, gid uint32, groups []uint32, prog, vers, proc uint32, args []byte) (Reply, error) {
	r.xid++
	cred := XDR{}.U32(0).String("nfstest").U32(uid, gid, uint32(len(groups))).U32(groups...)
	b := XDR{}.U32(r.xid, 0, 2, prog, vers, proc, 1).Opaque(cred).U32(0, 0)
	if err := r.Send(append(b, args...)); err != nil {
		return Reply{}, err
	}
	return r.Read()
}

// Call sends one call as a single-fragment record and reads the reply.
func (r *Raw) Call(prog, vers, proc uint32, args []byte) (Reply, error) {
	r.xid++
	if err := r.Send(Call(r.xid, 2, prog, vers, proc, args)); err != nil {
		return Reply{}, err
	}
	return r.Read()
}

// Send writes msg as one record.
func (r *Raw) Send(msg []byte) error {
	rec := binary.BigEndian.AppendUint32(nil, uint32(len(msg))|1<<31)
	_, err := r.Conn.Write(append(rec, msg...))
	return err
}

// Read reads one reply record.
func (r *Raw) Read() (Reply, error) {
	_ = r.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var rec []byte
	for {
		var h [4]byte
		if _, err := io.ReadFull(r.Conn, h[:]); err != nil {
			return Reply{}, err
		}
		n := binary.BigEndian.Uint32(h[:])
		frag := make([]byte, n&^(1<<31))
		if _, err := io.ReadFull(r.Conn, frag); err != nil {
			return Reply{}, err
		}
		rec = append(rec, frag...)
		if n&(1<<31) != 0 {
			break
		}
	}
	return ParseReply(rec)
}

// ParseReply decodes a reply record.
func ParseReply(rec []byte) (Reply, error) {
	w := func(i int) uint32 { return binary.BigEndian.Uint32(rec[4*i:]) }
	if len(rec) < 12 || w(1) != 1 {
		return Reply{}, errors.New("not a reply")
	}
	rp := Reply{XID: w(0)}
	var body []byte
	if w(2) == 1 {
		rp.Denied = true
		if len(rec) < 16 {
			return rp, errors.New("short denied reply")
		}
		rp.RejectStat = w(3)
		body = rec[16:]
	} else {
		if len(rec) < 24 {
			return rp, errors.New("short accepted reply")
		}
		vlen := int(w(4)+3) &^ 3
		off := 20 + vlen
		if len(rec) < off+4 {
			return rp, fmt.Errorf("short accepted reply")
		}
		rp.AcceptStat = binary.BigEndian.Uint32(rec[off:])
		body = rec[off+4:]
	}
	rp.Body = body
	for i := 0; i+4 <= len(body); i += 4 {
		rp.Words = append(rp.Words, binary.BigEndian.Uint32(body[i:]))
	}
	return rp, nil
}

// XDR builds XDR arguments.
type XDR []byte

// U32 appends a uint32.
func (x XDR) U32(v ...uint32) XDR {
	for _, u := range v {
		x = binary.BigEndian.AppendUint32(x, u)
	}
	return x
}

// U64 appends a uint64.
func (x XDR) U64(v uint64) XDR { return binary.BigEndian.AppendUint64(x, v) }

// Opaque appends a variable-length opaque with padding.
func (x XDR) Opaque(b []byte) XDR {
	x = x.U32(uint32(len(b)))
	x = append(x, b...)
	for len(x)%4 != 0 {
		x = append(x, 0)
	}
	return x
}

// String appends an XDR string.
func (x XDR) String(s string) XDR { return x.Opaque([]byte(s)) }

// Mnt mounts path with MOUNT v3 on r and returns the root handle.
func (r *Raw) Mnt(t testing.TB, path string) []byte {
	t.Helper()
	rep, err := r.Call(100005, 3, 1, XDR{}.String(path))
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) < 2 || rep.Words[0] != 0 {
		t.Fatalf("MNT %s: %+v %v", path, rep, err)
	}
	n := rep.Words[1]
	return append([]byte(nil), rep.Body[8:8+n]...)
}

// Lookup does an NFSv3 LOOKUP and returns the status and handle.
func (r *Raw) Lookup(t testing.TB, dir []byte, name string) (uint32, []byte) {
	t.Helper()
	rep, err := r.Call(100003, 3, 3, XDR{}.Opaque(dir).String(name))
	if err != nil || rep.AcceptStat != 0 {
		t.Fatalf("LOOKUP %s: %+v %v", name, rep, err)
	}
	if rep.Words[0] != 0 {
		return rep.Words[0], nil
	}
	n := rep.Words[1]
	return 0, append([]byte(nil), rep.Body[8:8+n]...)
}

// Getattr returns the NFS status of GETATTR on fh.
func (r *Raw) Getattr(t testing.TB, fh []byte) uint32 {
	t.Helper()
	rep, err := r.Call(100003, 3, 1, XDR{}.Opaque(fh))
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
		t.Fatalf("GETATTR: %+v %v", rep, err)
	}
	return rep.Words[0]
}

// GetattrAll sends GETATTR for every handle, pipelined in batches on this
// connection (the server answers them concurrently, in any order), and
// returns the status of each.
func (r *Raw) GetattrAll(t testing.TB, fhs [][]byte) []uint32 {
	t.Helper()
	const batch = 128
	status := make([]uint32, len(fhs))
	for start := 0; start < len(fhs); start += batch {
		end := min(start+batch, len(fhs))
		var buf []byte
		base := r.xid + 1
		for i := start; i < end; i++ {
			r.xid++
			call := Call(r.xid, 2, 100003, 3, 1, XDR{}.Opaque(fhs[i]))
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(call))|1<<31)
			buf = append(buf, call...)
		}
		errc := make(chan error, 1)
		go func() { _, err := r.Conn.Write(buf); errc <- err }()
		for range end - start {
			rep, err := r.Read()
			if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
				t.Fatalf("pipelined GETATTR: %+v %v", rep, err)
			}
			status[start+int(rep.XID-base)] = rep.Words[0]
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	return status
}

// skipWcc returns the offset after a wcc_data starting at off.
func skipWcc(b []byte, off int) int {
	if binary.BigEndian.Uint32(b[off:]) == 1 {
		off += 24
	}
	off += 4
	if binary.BigEndian.Uint32(b[off:]) == 1 {
		off += 84
	}
	return off + 4
}

// Write does an NFSv3 WRITE with the stability stable (0 UNSTABLE, 1
// DATA_SYNC, 2 FILE_SYNC) and returns the status, the stability the
// server answered (committed) and its write verifier.
func (r *Raw) Write(t testing.TB, fh []byte, off uint64, data []byte, stable uint32) (status, committed uint32, verf [8]byte) {
	t.Helper()
	rep, err := r.Call(100003, 3, 7, XDR{}.Opaque(fh).U64(off).U32(uint32(len(data)), stable).Opaque(data))
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
		t.Fatalf("WRITE: %+v %v", rep, err)
	}
	if rep.Words[0] != 0 {
		return rep.Words[0], 0, verf
	}
	o := skipWcc(rep.Body, 4)
	committed = binary.BigEndian.Uint32(rep.Body[o+4:])
	copy(verf[:], rep.Body[o+8:])
	return 0, committed, verf
}

// Commit does an NFSv3 COMMIT of the whole file and returns the status and
// the server's write verifier.
func (r *Raw) Commit(t testing.TB, fh []byte) (status uint32, verf [8]byte) {
	t.Helper()
	rep, err := r.Call(100003, 3, 21, XDR{}.Opaque(fh).U64(0).U32(0))
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
		t.Fatalf("COMMIT: %+v %v", rep, err)
	}
	if rep.Words[0] != 0 {
		return rep.Words[0], verf
	}
	copy(verf[:], rep.Body[skipWcc(rep.Body, 4):])
	return 0, verf
}

// Read3 does an NFSv3 READ and returns the status, the data and eof.
func (r *Raw) Read3(t testing.TB, fh []byte, off uint64, count uint32) (status uint32, data []byte, eof bool) {
	t.Helper()
	rep, err := r.Call(100003, 3, 6, XDR{}.Opaque(fh).U64(off).U32(count))
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
		t.Fatalf("READ: %+v %v", rep, err)
	}
	if rep.Words[0] != 0 {
		return rep.Words[0], nil, false
	}
	o := 8
	if rep.Words[1] == 1 {
		o += 84
	}
	eof = binary.BigEndian.Uint32(rep.Body[o+4:]) == 1
	n := binary.BigEndian.Uint32(rep.Body[o+8:])
	return 0, append([]byte(nil), rep.Body[o+12:o+12+int(n)]...), eof
}
