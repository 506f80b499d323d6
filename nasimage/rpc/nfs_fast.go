package rpc

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/access"
	"github.com/nas-topology/nas-topology/nasimage/fattr"
)

// DataPath serves the procedures that carry the load (READ, WRITE, COMMIT,
// GETATTR) in the front door, without go-nfs and its in-memory pipe: the
// arguments are decoded here, file data is read into pooled buffers and
// sent after the reply header in one writev. Errors with an NFSStatus()
// method select the status (else NFS3ERR_IO).
type DataPath interface {
	// Attr fills a with the attributes of the file fh names.
	Attr(fh []byte, a *fattr.Attr) error
	// ReadAt reads into buf at off; a gets the attributes after the read.
	ReadAt(fh []byte, buf []byte, off uint64, a *fattr.Attr) (n int, eof bool, err error)
	// WriteAt writes data at off, durable before it returns unless stable
	// is UNSTABLE (0), and returns the stability it answers (committed).
	WriteAt(fh []byte, data []byte, off uint64, stable uint32, pre, post *fattr.Attr) (committed uint32, err error)
	// Flush makes the file's written data durable (COMMIT).
	Flush(fh []byte, pre, post *fattr.Attr) error
}

// Lookuper is a DataPath that also answers LOOKUP.
type Lookuper interface {
	// Lookup returns the handle of name in the directory dir and fills a
	// with its attributes, da with the directory's (unless known: da
	// holds them already).
	Lookup(dir []byte, name string, a, da *fattr.Attr, known bool) ([]byte, error)
}

// Remover is a DataPath that also answers REMOVE.
type Remover interface {
	// Remove removes name from the directory dir; pre and post get the
	// directory's attributes before and after.
	Remove(dir []byte, name string, pre, post *fattr.Attr) error
}

const (
	nfsProcGetattr = 1
	nfsProcCreate  = 8
	nfsProcRemove  = 12
)

// fastProcs are the procedures a DataPath answers (ACCESS from Attr;
// LOOKUP, REMOVE, CREATE, SETATTR, READDIR and READDIRPLUS if it is a
// Lookuper, Remover, Creator, Setattrer and Lister).
func fastProcs(d DataPath) (procs [nfsProcCount]bool) {
	if d == nil {
		return procs
	}
	procs[nfsProcGetattr], procs[nfsProcRead], procs[nfsProcWrite], procs[nfsProcCommit] = true, true, true, true
	procs[nfsProcAccess] = true
	_, procs[nfsProcCreate] = d.(Creator)
	_, procs[nfsProcSetattr] = d.(Setattrer)
	_, procs[nfsProcLookup] = d.(Lookuper)
	_, procs[nfsProcRemove] = d.(Remover)
	_, procs[nfsProcReaddir] = d.(Lister)
	procs[nfsProcReaddirplus] = procs[nfsProcReaddir]
	return procs
}

// fastBuf is one call's reply: the header (record mark, RPC reply header,
// NFS result) and, for READ, the data buffer. Pooled per size class so a
// steady stream of calls allocates nothing.
type fastBuf struct {
	hdr  [320]byte
	data []byte
	pre  fattr.Attr
	post fattr.Attr
}

// Size classes of READ buffers: small reads do not hold 1 MiB each.
const smallRead = 64 << 10

var (
	smallBufs = sync.Pool{New: func() any { return &fastBuf{data: make([]byte, smallRead)} }}
	largeBufs = sync.Pool{New: func() any { return &fastBuf{data: make([]byte, MaxTransfer)} }}
)

func getBuf(n int) (*fastBuf, *sync.Pool) {
	p := &smallBufs
	if n > smallRead {
		p = &largeBufs
	}
	return p.Get().(*fastBuf), p
}

var zeroPad [4]byte

// replyHeader writes the record mark placeholder and the accepted SUCCESS
// RPC reply header into b and returns the offset where results start.
func replyHeader(b []byte, xid uint32) int {
	be := binary.BigEndian
	be.PutUint32(b[4:], xid)
	be.PutUint32(b[8:], msgReply)
	be.PutUint32(b[12:], replyAccepted)
	be.PutUint32(b[16:], 0) // verifier AUTH_NULL
	be.PutUint32(b[20:], 0)
	be.PutUint32(b[24:], acceptSuccess)
	return 28
}

// serveFast answers a call of a fastProcs procedure, already checked like
// every call (handle, export, type, ...). dir, if not nil, is a small
// buffer whose pre holds a LOOKUP's directory attributes.
func (s *Server) serveFast(c *conn, call Call, fh []byte, start time.Time, dir *fastBuf) {
	r := xdrReader{buf: call.Args}
	r.opaque(nfs3FHSize)
	var fb *fastBuf
	var pool *sync.Pool
	var status uint32
	var data []byte
	var n int
	switch call.Proc {
	case nfsProcGetattr:
		fb, pool = getBuf(0)
		if err := s.cfg.Data.Attr(fh, &fb.post); err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		binary.BigEndian.PutUint32(fb.hdr[n:], nfs3OK)
		fb.post.Put(fb.hdr[n+4:])
		n += 4 + fattr.Size
	case nfsProcRead:
		off, count := r.uint64(), r.uint32() // count is at most MaxTransfer (clampCounts)
		if count > smallRead {
			c.bigReads <- struct{}{}
			defer func() { <-c.bigReads }() // once the reply is sent and fb back in its pool
		}
		fb, pool = getBuf(int(count))
		got, eof, err := s.cfg.Data.ReadAt(fh, fb.data[:count], off, &fb.post)
		if err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		s.m.readBytes.Add(float64(got))
		data = fb.data[:got]
		n = replyHeader(fb.hdr[:], call.XID)
		be := binary.BigEndian
		be.PutUint32(fb.hdr[n:], nfs3OK)
		be.PutUint32(fb.hdr[n+4:], 1) // post_op_attr follows
		fb.post.Put(fb.hdr[n+8:])
		n += 8 + fattr.Size
		be.PutUint32(fb.hdr[n:], uint32(got))
		be.PutUint32(fb.hdr[n+4:], b2u(eof))
		be.PutUint32(fb.hdr[n+8:], uint32(got))
		n += 12
	case nfsProcWrite:
		off, count, stable := r.uint64(), r.uint32(), r.uint32()
		payload := r.opaque(len(call.Args))
		if int(count) < len(payload) {
			payload = payload[:count] // as go-nfs: the smaller of the two
		}
		fb, pool = getBuf(0)
		committed, err := s.cfg.Data.WriteAt(fh, payload, off, stable, &fb.pre, &fb.post)
		if err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		n = putWcc(fb, n, nfs3OK)
		binary.BigEndian.PutUint32(fb.hdr[n:], uint32(len(payload)))
		binary.BigEndian.PutUint32(fb.hdr[n+4:], committed)
		copy(fb.hdr[n+8:], s.verifier[:])
		n += 16
	case nfsProcLookup:
		name := string(r.opaque(nfsNameMax))
		fb, pool = dir, &smallBufs
		if fb == nil {
			fb, pool = getBuf(0)
		}
		obj, err := s.cfg.Data.(Lookuper).Lookup(fh, name, &fb.post, &fb.pre, dir != nil)
		if err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		be := binary.BigEndian
		be.PutUint32(fb.hdr[n:], nfs3OK)
		be.PutUint32(fb.hdr[n+4:], uint32(len(obj)))
		n += 8 + copy(fb.hdr[n+8:], obj)
		for n%4 != 0 {
			fb.hdr[n] = 0
			n++
		}
		be.PutUint32(fb.hdr[n:], 1)
		fb.post.Put(fb.hdr[n+4:])
		be.PutUint32(fb.hdr[n+88:], 1)
		fb.pre.Put(fb.hdr[n+92:])
		n += 2 * (4 + fattr.Size)
	case nfsProcRemove:
		name := string(r.opaque(nfsNameMax))
		fb, pool = getBuf(0)
		if err := s.cfg.Data.(Remover).Remove(fh, name, &fb.pre, &fb.post); err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		n = putWcc(fb, n, nfs3OK)
	case nfsProcAccess:
		req := r.uint32()
		fb, pool = getBuf(0)
		if err := s.cfg.Data.Attr(fh, &fb.post); err != nil {
			status = errStatus(err, nfs3ErrStale)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		be := binary.BigEndian
		be.PutUint32(fb.hdr[n:], nfs3OK)
		be.PutUint32(fb.hdr[n+4:], 1)
		fb.post.Put(fb.hdr[n+8:])
		n += 8 + fattr.Size
		be.PutUint32(fb.hdr[n:], s.granted(call, &fb.post, req))
		n += 4
	case nfsProcCreate:
		name := string(r.opaque(nfsNameMax))
		how := r.uint32() // UNCHECKED, GUARDED or EXCLUSIVE (checkNFSArgs)
		cred, ok, _ := unixCred(call.Cred)
		fb, pool = getBuf(0)
		var obj []byte
		var err error
		if how == 2 {
			var verf [8]byte
			be := binary.BigEndian
			be.PutUint32(verf[:], r.uint32())
			be.PutUint32(verf[4:], r.uint32())
			obj, err = s.cfg.Data.(Creator).CreateExclusive(fh, name, verf, cred.UID, cred.GID, ok, &fb.post, &fb.pre)
		} else {
			var sa fattr.Sattr
			readSattr(&r, &sa)
			obj, err = s.cfg.Data.(Creator).Create(fh, name, how == 1, &sa, cred.UID, cred.GID, ok, &fb.post, &fb.pre)
		}
		if err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		be := binary.BigEndian
		be.PutUint32(fb.hdr[n:], nfs3OK)
		be.PutUint32(fb.hdr[n+4:], 1) // post_op_fh3
		be.PutUint32(fb.hdr[n+8:], uint32(len(obj)))
		n += 12 + copy(fb.hdr[n+12:], obj)
		for n%4 != 0 {
			fb.hdr[n] = 0
			n++
		}
		be.PutUint32(fb.hdr[n:], 1)
		fb.post.Put(fb.hdr[n+4:])
		n += 4 + fattr.Size
		be.PutUint32(fb.hdr[n:], 0) // dir_wcc: no pre_op_attr (as go-nfs)
		be.PutUint32(fb.hdr[n+4:], 1)
		fb.pre.Put(fb.hdr[n+8:])
		n += 8 + fattr.Size
	case nfsProcSetattr:
		var sa fattr.Sattr
		readSattr(&r, &sa)
		guard := r.uint32() != 0
		var gt fattr.Time
		if guard {
			gt.Sec, gt.Nsec = r.uint32(), r.uint32()
		}
		fb, pool = getBuf(0)
		if err := s.cfg.Data.(Setattrer).SetAttr(fh, &sa, guard, gt, &fb.pre, &fb.post); err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		n = putWcc(fb, n, nfs3OK)
	case nfsProcReaddir, nfsProcReaddirplus:
		fb, pool = getBuf(readdirBuf(call))
		var m int
		if n, m, status = s.readdir(call, fh, fb); status == nfs3OK {
			data = fb.data[:m]
		}
	case nfsProcCommit:
		fb, pool = getBuf(0)
		if err := s.cfg.Data.Flush(fh, &fb.pre, &fb.post); err != nil {
			status = errStatus(err, nfs3ErrIO)
			break
		}
		n = replyHeader(fb.hdr[:], call.XID)
		n = putWcc(fb, n, nfs3OK)
		copy(fb.hdr[n:], s.verifier[:])
		n += 8
	}
	proc := nfsProcNames[call.Proc]
	if status != nfs3OK {
		if fb != nil {
			pool.Put(fb)
		}
		s.m.observe("nfs", proc, nfsStatusName(status), start)
		c.reply(nfsFailure(call.XID, call.Proc, status))
		return
	}
	pad := zeroPad[:(4-len(data)%4)%4]
	binary.BigEndian.PutUint32(fb.hdr[:], uint32(n-4+len(data)+len(pad))|lastFragment)
	s.m.observe("nfs", proc, "OK", start)
	c.send(fb.hdr[:n], data, pad)
	pool.Put(fb)
}

// putWcc writes status and wcc_data (pre and post attributes) at n.
func putWcc(fb *fastBuf, n int, status uint32) int {
	be := binary.BigEndian
	be.PutUint32(fb.hdr[n:], status)
	be.PutUint32(fb.hdr[n+4:], 1)
	fb.pre.PutWcc(fb.hdr[n+8:])
	n += 8 + fattr.WccSize
	be.PutUint32(fb.hdr[n:], 1)
	fb.post.Put(fb.hdr[n+4:])
	return n + 4 + fattr.Size
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Creator is a DataPath that also answers CREATE.
type Creator interface {
	// Create creates name in the directory dir with the attributes s and,
	// when cred, gives it to the caller uid/gid; a gets the file's
	// attributes, da the directory's after.
	Create(dir []byte, name string, guarded bool, s *fattr.Sattr, uid, gid uint32, cred bool, a, da *fattr.Attr) ([]byte, error)
	// CreateExclusive is EXCLUSIVE CREATE: as GUARDED, except that a file
	// this verifier created answers OK again (the client's retransmission
	// of a CREATE whose reply it lost).
	CreateExclusive(dir []byte, name string, verf [8]byte, uid, gid uint32, cred bool, a, da *fattr.Attr) ([]byte, error)
}

// Setattrer is a DataPath that also answers SETATTR.
type Setattrer interface {
	// SetAttr applies s to the file fh names; with guard, only if its
	// ctime is gtime. pre and post get the attributes around it.
	SetAttr(fh []byte, s *fattr.Sattr, guard bool, gtime fattr.Time, pre, post *fattr.Attr) error
}

// readSattr decodes a sattr3 as go-nfs does (any non-zero "set" word sets
// mode, uid, gid and size; times are DONT_CHANGE, SET_TO_SERVER_TIME or
// SET_TO_CLIENT_TIME with an nfstime3), the same layout checkNFSArgs
// checked.
func readSattr(r *xdrReader, s *fattr.Sattr) {
	if s.SetMode = r.uint32() != 0; s.SetMode {
		s.Mode = r.uint32()
	}
	if s.SetUID = r.uint32() != 0; s.SetUID {
		s.UID = r.uint32()
	}
	if s.SetGID = r.uint32() != 0; s.SetGID {
		s.GID = r.uint32()
	}
	if s.SetSize = r.uint32() != 0; s.SetSize {
		s.Size = r.uint64()
	}
	times := [2]*uint32{&s.Atime, &s.Mtime}
	vals := [2]*fattr.Time{&s.ATime, &s.MTime}
	for i := range times {
		*times[i] = r.uint32()
		switch *times[i] {
		case fattr.SetClientTime:
			vals[i].Sec, vals[i].Nsec = r.uint32(), r.uint32()
		case fattr.SetServerTime:
		default:
			*times[i] = fattr.DontChange
		}
	}
}

// granted is the ACCESS mask the caller of call is granted on a file with
// attributes a: with credential checks, knfsd's answer for the caller's
// identity; without (insecure_squash), what was asked, less the modifying
// bits on a read-only export (as go-nfs answered).
func (s *Server) granted(call Call, a *fattr.Attr, req uint32) uint32 {
	ro := s.cfg.Export.ReadOnly
	if m := s.cfg.Export.Access; m != nil {
		uid, gid, mode := a.Perm()
		return callerCred(call.Cred, m).Access(access.Attr{UID: uid, GID: gid, Mode: mode}, req, ro)
	}
	if ro {
		req &= 1 | 2 | 0x20 // READ, LOOKUP, EXECUTE
	}
	return req
}
