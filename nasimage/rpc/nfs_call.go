package rpc

import (
	"encoding/binary"
	"errors"
	"time"
)

// NFSv3 (RFC 1813) calls: the front door checks what go-nfs cannot (file
// handle authenticity, read-only exports, client networks, durable COMMIT)
// and hands the rest to go-nfs.

const (
	nfsProcNull   = 0
	nfsProcLookup = 3
	nfsProcRead   = 6
	nfsProcWrite  = 7
	nfsProcMknod  = 11
	nfsProcRename = 14
	nfsProcLink   = 15
	nfsProcFSInfo = 19
	nfsProcCommit = 21
	nfsProcCount  = 22

	nfs3OK          = 0
	nfs3ErrPerm     = 1
	nfs3ErrIO       = 5
	nfs3ErrAcces    = 13
	nfs3ErrExist    = 17
	nfs3ErrNotDir   = 20
	nfs3ErrIsDir    = 21
	nfs3ErrInval    = 22
	nfs3ErrROFS     = 30
	nfs3ErrStale    = 70
	nfs3ErrBadHandl = 10001
	nfs3ErrNotSupp  = 10004
	nfs3ErrJukebox  = 10008

	nfs3FHSize = 64
)

var nfsProcNames = [nfsProcCount]string{
	"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
	"CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK",
	"READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT",
}

// nfsFailWords is, per procedure, how many XDR words follow the status in
// its failure result: 1 per empty post_op_attr, 2 per empty wcc_data.
var nfsFailWords = [nfsProcCount]int{
	0, 0, 2, 1, 1, 1, 1, 2, // NULL GETATTR SETATTR LOOKUP ACCESS READLINK READ WRITE
	2, 2, 2, 2, 2, 2, 4, 3, // CREATE MKDIR SYMLINK MKNOD REMOVE RMDIR RENAME LINK
	1, 1, 1, 1, 1, 2, // READDIR READDIRPLUS FSSTAT FSINFO PATHCONF COMMIT
}

// nfsMutating marks the procedures a read-only export refuses. COMMIT is
// one: knfsd opens the file for writing and answers ROFS (go-nfs answered
// SERVERFAULT).
var nfsMutating = [nfsProcCount]bool{
	2: true, 7: true, 8: true, 9: true, 10: true, 11: true, 12: true, 13: true, 14: true, 15: true,
	21: true,
}

// nfsFailure is an accepted reply carrying an NFS error status and the
// procedure's empty failure attributes.
func nfsFailure(xid, proc, status uint32) []byte {
	w := xdrWriter{}
	w.uint32(status)
	for range nfsFailWords[proc] {
		w.uint32(0)
	}
	return successReply(xid, w.buf)
}

// statusError lets a Handles implementation choose the NFS status.
type statusError interface{ NFSStatus() uint32 }

func (s *Server) nfs(c *conn, call Call, rec []byte, buf *[]byte, start time.Time) bool {
	if call.Vers != 3 {
		s.m.observe("nfs", "-", "PROG_MISMATCH", start)
		c.reply(progMismatchReply(call.XID, 3, 3))
		return false
	}
	if call.Proc >= nfsProcCount {
		s.m.observe("nfs", "-", "PROC_UNAVAIL", start)
		c.reply(acceptedReply(call.XID, acceptProcUnavail, nil))
		return false
	}
	proc := nfsProcNames[call.Proc]
	if !c.allowed {
		// A client outside the allowed networks may ask the portmapper and
		// MOUNT EXPORT, but gets no file access: refuse and hang up.
		s.m.observe("nfs", proc, "AUTH_ERROR", start)
		c.reply(authErrorReply(call.XID, authTooWeak))
		c.closing.Store(true)
		return false
	}
	if call.Proc == nfsProcNull {
		s.m.observe("nfs", proc, "OK", start)
		c.reply(successReply(call.XID, nil))
		return false
	}
	r := xdrReader{buf: call.Args}
	fh := r.opaque(nfs3FHSize)
	if r.err != nil || !checkNFSArgs(call.Proc, call.Args) {
		s.m.observe("nfs", proc, "GARBAGE_ARGS", start)
		c.reply(acceptedReply(call.XID, acceptGarbageArgs, nil))
		return false
	}
	fail := func(status uint32) { s.nfsFail(c, call, status, start) }
	if err := s.cfg.Handles.Check(fh); err != nil {
		status := uint32(nfs3ErrBadHandl)
		var se statusError
		if errors.As(err, &se) {
			status = se.NFSStatus()
		}
		fail(status)
		return false
	}
	names, nameOffs := nameArgs(call.Proc, call.Args)
	for _, n := range names {
		if !validName(n) {
			s.m.observe("nfs", proc, "GARBAGE_ARGS", start)
			c.reply(acceptedReply(call.XID, acceptGarbageArgs, nil))
			return false
		}
	}
	if s.cfg.Export.ReadOnly && nfsMutating[call.Proc] {
		fail(nfs3ErrROFS)
		return false
	}
	if call.Proc == nfsProcMknod {
		// Special files are not supported (the export is synced with
		// Windows).
		fail(nfs3ErrNotSupp)
		return false
	}
	for _, n := range names {
		if st := dotStatus[call.Proc]; st != 0 && isDot(n) {
			fail(st)
			return false
		}
	}
	if s.held.Load() {
		// The export is still being filled: a handle or name not copied
		// yet would answer STALE or NOENT. JUKEBOX is NFSv3's "try again
		// later"; the kernel client waits and resends.
		fail(nfs3ErrJukebox)
		return false
	}
	obj, _ := s.cfg.Handles.(Objects)
	if obj == nil && call.Proc == nfsProcLink {
		// Without Objects, no hard links (go-nfs decodes LINK with
		// SYMLINK's layout, reading lengths out of the name).
		fail(nfs3ErrNotSupp)
		return false
	}
	if call.Proc == nfsProcCommit && s.cfg.Commit != nil && s.cfg.Data == nil {
		if err := s.cfg.Commit(fh); err != nil {
			s.log.Warn("COMMIT failed", "err", err)
			fail(nfs3ErrIO)
			return false
		}
	}
	if call.Proc == nfsProcWrite {
		// WRITE3args: file, offset (8), count (4), stable, data.
		if r.off+12 <= len(call.Args) {
			s.m.writtenBytes.Add(float64(binary.BigEndian.Uint32(call.Args[r.off+8:])))
		}
	}

	clampCounts(call.Proc, call.Args)

	c.slots <- struct{}{} // blocks the reader while maxConnCalls are in flight
	bc, err := s.backends.acquire()
	if err != nil {
		<-c.slots
		s.m.observe("nfs", proc, "SYSTEM_ERR", start)
		c.reply(acceptedReply(call.XID, acceptSystemErr, nil))
		return false
	}
	c.inflight.Add(1)
	c.inflightN.Add(1)
	s.m.inflight.Inc()
	c.run(nfsJob{call: call, rec: rec, buf: buf, fh: fh, names: names, nameOffs: nameOffs, obj: obj, bc: bc, start: start})
	return true
}

// nfsJob is one NFS call handed from the connection's reader to a worker.
type nfsJob struct {
	call     Call
	rec      []byte
	buf      *[]byte // rec's recycled buffer
	fh       []byte
	names    [][]byte
	nameOffs []int
	obj      Objects
	bc       *backendConn
	start    time.Time
}

// nfsRun serves a call in a worker of its connection (see conn.run): the
// checks that touch the filesystem, then the data path or go-nfs.
func (s *Server) nfsRun(c *conn, j nfsJob) {
	call, rec, buf, fh, names, nameOffs, obj, bc, start := j.call, j.rec, j.buf, j.fh, j.names, j.nameOffs, j.obj, j.bc, j.start
	proc := nfsProcNames[call.Proc]
	fail := func(status uint32) { s.nfsFail(c, call, status, start) }
	defer c.inflight.Done()
	defer s.recs.put(buf) // once the call is answered
	defer func() { <-c.slots }()
	defer c.inflightN.Add(-1)
	defer s.m.inflight.Dec()
	// Checks that touch the filesystem run here, not in the
	// connection's reader: a handle that needs an index walk must not
	// hold up the calls behind it.
	if obj != nil {
		if st := s.objectChecks(call, obj, fh, names, nameOffs); st != nfs3OK {
			s.backends.release(bc, true)
			fail(st)
			return
		}
	}
	at, _ := s.cfg.Handles.(Attrs)
	var dir *fastBuf // a data-path LOOKUP's directory attributes, read once
	if at != nil {
		var st uint32
		if call.Proc == nfsProcLookup && s.fast[nfsProcLookup] && s.cfg.Export.Access != nil {
			dir = smallBufs.Get().(*fastBuf)
			st = s.lookupPermission(call, fh, &dir.pre)
		} else {
			st = s.permission(call, at, fh, nameOffs)
		}
		if st != nfs3OK {
			if dir != nil {
				smallBufs.Put(dir)
			}
			s.backends.release(bc, true)
			fail(st)
			return
		}
	}
	if obj != nil {
		if call.Proc == nfsProcLink {
			s.nfsLink(c, call, obj, start)
			s.backends.release(bc, true)
			return
		}
	}
	if s.fast[call.Proc] {
		s.backends.release(bc, true)
		s.serveFast(c, call, fh, start, dir)
		return
	}
	rep, err := bc.roundTrip(rec)
	s.backends.release(bc, err == nil)
	if err != nil {
		s.log.Error("go-nfs call failed", "proc", proc, "err", err)
		s.m.observe("nfs", proc, "SYSTEM_ERR", start)
		c.reply(acceptedReply(call.XID, acceptSystemErr, nil))
		return
	}
	if call.Proc == nfsProcFSInfo {
		patchFSInfo(rep)
	}
	if at != nil && call.Proc == nfsProcAccess {
		s.grantAccess(call, at, fh, rep)
	}
	if obj != nil && (call.Proc == 8 || call.Proc == 9 || call.Proc == 10) {
		created(obj, call, rep)
	}
	// Count before replying: whoever sees the reply sees the count.
	s.m.observe("nfs", proc, s.nfsReplyStatus(call.Proc, rep), start)
	c.reply(rep)
}

// nfsFail answers an NFS error status with the procedure's empty failure
// attributes.
func (s *Server) nfsFail(c *conn, call Call, status uint32, start time.Time) {
	s.m.observe("nfs", nfsProcNames[call.Proc], nfsStatusName(status), start)
	c.reply(nfsFailure(call.XID, call.Proc, status))
}

// clampCounts lowers, in place, the byte counts a client asks READ,
// READDIR and READDIRPLUS to answer to MaxTransfer (FSINFO's rtmax), as
// knfsd does (svc_max_payload): go-nfs allocates up to 16 MiB for a READ
// and lists a whole directory for a large enough READDIRPLUS.
func clampCounts(proc uint32, args []byte) {
	r := xdrReader{buf: args}
	r.opaque(nfs3FHSize)
	var offs []int
	switch proc {
	case nfsProcRead: // offset (8), count
		offs = []int{r.off + 8}
	case 16: // READDIR: cookie (8), verifier (8), count
		offs = []int{r.off + 16}
	case 17: // READDIRPLUS: cookie, verifier, dircount, maxcount
		offs = []int{r.off + 16, r.off + 20}
	}
	for _, o := range offs {
		if r.err == nil && o+4 <= len(args) && binary.BigEndian.Uint32(args[o:]) > MaxTransfer {
			binary.BigEndian.PutUint32(args[o:], MaxTransfer)
		}
	}
}

// nfsReplyStatus names the outcome of a go-nfs reply for metrics and counts
// the bytes a READ returned.
func (s *Server) nfsReplyStatus(proc uint32, rep []byte) string {
	stat, body, ok := replyBody(rep)
	if !ok {
		return "DENIED"
	}
	if stat != acceptSuccess {
		return acceptStatName(stat)
	}
	r := xdrReader{buf: body}
	status := r.uint32()
	if r.err != nil {
		return "GARBAGE_REPLY"
	}
	if proc == nfsProcRead && status == nfs3OK {
		// READ3resok: post_op_attr (bool + 84-byte fattr3), count, ...
		if r.uint32() == 1 {
			r.off += 84
		}
		if n := r.uint32(); r.err == nil {
			s.m.readBytes.Add(float64(n))
		}
	}
	return nfsStatusName(status)
}

var nfsStatusNames = map[uint32]string{
	0: "OK", 1: "PERM", 2: "NOENT", 5: "IO", 6: "NXIO", 13: "ACCES", 17: "EXIST",
	18: "XDEV", 19: "NODEV", 20: "NOTDIR", 21: "ISDIR", 22: "INVAL", 27: "FBIG",
	28: "NOSPC", 30: "ROFS", 31: "MLINK", 63: "NAMETOOLONG", 66: "NOTEMPTY",
	69: "DQUOT", 70: "STALE", 71: "REMOTE", 10001: "BADHANDLE", 10002: "NOT_SYNC",
	10003: "BAD_COOKIE", 10004: "NOTSUPP", 10005: "TOOSMALL", 10006: "SERVERFAULT",
	10007: "BADTYPE", 10008: "JUKEBOX",
}

func nfsStatusName(s uint32) string {
	if n, ok := nfsStatusNames[s]; ok {
		return n
	}
	return "UNKNOWN"
}

func acceptStatName(s uint32) string {
	switch s {
	case acceptProgUnavail:
		return "PROG_UNAVAIL"
	case acceptProgMismatch:
		return "PROG_MISMATCH"
	case acceptProcUnavail:
		return "PROC_UNAVAIL"
	case acceptGarbageArgs:
		return "GARBAGE_ARGS"
	case acceptSystemErr:
		return "SYSTEM_ERR"
	}
	return "UNKNOWN"
}
