package rpc

import (
	"encoding/binary"

	"github.com/nas-topology/nas-topology/nasimage/access"
	"github.com/nas-topology/nas-topology/nasimage/fattr"
)

// Credential checks. nasd runs as one unprivileged uid, so the filesystem
// cannot check the caller: the front door does, as knfsd's fh_verify and
// nfsd_permission do, before go-nfs sees the call. Export.Access nil
// (insecure_squash) skips them: every caller may do what nasd's uid may.

// Attrs is what the credential checks need from the handles: the owner,
// group and mode clients see for the file a handle names.
type Attrs interface {
	Perms(fh []byte) (access.Attr, error)
}

// callerCred is the caller's identity after squashing: AUTH_UNIX uid, gid
// and groups (stamp, machine name, uid, gid, gids<16>), or the anonymous
// ids for AUTH_NONE (and credentials that do not decode).
func callerCred(a Auth, m *access.Mapping) access.Cred {
	c, _, whole := unixCred(a)
	if !whole {
		return m.Anonymous()
	}
	return m.Map(c)
}

// needs is, per procedure, what the caller needs on the file (or
// directory) its first handle names: LOOKUP searches the directory, READ
// and WRITE (and COMMIT) read or write the file with the owner override,
// the calls that add or remove entries write and search the directory,
// READDIR(PLUS) reads it. RENAME and LINK also need the second directory
// (permission). SETATTR and ACCESS are decided on their own.
var needs = [nfsProcCount]access.Want{
	3:  access.Exec,
	6:  access.Read | access.OwnerOverride,
	7:  access.Write | access.OwnerOverride,
	8:  access.Write | access.Exec,
	9:  access.Write | access.Exec,
	10: access.Write | access.Exec,
	11: access.Write | access.Exec,
	12: access.Write | access.Exec,
	13: access.Write | access.Exec,
	14: access.Write | access.Exec,
	16: access.Read,
	17: access.Read,
	21: access.Write | access.OwnerOverride,
}

const nfsProcSetattr, nfsProcAccess = 2, 4

// permission checks the caller of call against the files its handles name;
// it returns nfs3OK or knfsd's refusal (ACCES, PERM).
func (s *Server) permission(call Call, at Attrs, fh []byte, nameOffs []int) uint32 {
	m := s.cfg.Export.Access
	if m == nil {
		return nfs3OK
	}
	cred := callerCred(call.Cred, m)
	check := func(fh []byte, w access.Want) uint32 {
		a, err := at.Perms(fh)
		if err != nil {
			return errStatus(err, nfs3ErrStale)
		}
		if !cred.May(a, w) {
			return nfs3ErrAcces
		}
		return nfs3OK
	}
	switch call.Proc {
	case nfsProcSetattr:
		return s.setattrPermission(call, at, fh, cred)
	case nfsProcRename: // from dir, name, to dir, name
		if st := check(fh, needs[call.Proc]); st != nfs3OK {
			return st
		}
		return check(renameTarget(call.Args, nameOffs), access.Write|access.Exec)
	case nfsProcLink: // file, dir, name: the new name's directory
		r := xdrReader{buf: call.Args}
		r.opaque(nfs3FHSize)
		return check(r.opaque(nfs3FHSize), access.Write|access.Exec)
	}
	if w := needs[call.Proc]; w != 0 {
		return check(fh, w)
	}
	return nfs3OK
}

// lookupPermission is permission for a LOOKUP the data path answers: the
// directory's attributes (the ones Perms gives: the data path's Attr) are
// read into a for the check and kept for the reply.
func (s *Server) lookupPermission(call Call, fh []byte, a *fattr.Attr) uint32 {
	if err := s.cfg.Data.Attr(fh, a); err != nil {
		return errStatus(err, nfs3ErrStale)
	}
	uid, gid, mode := a.Perm()
	if !callerCred(call.Cred, s.cfg.Export.Access).May(access.Attr{UID: uid, GID: gid, Mode: mode}, needs[nfsProcLookup]) {
		return nfs3ErrAcces
	}
	return nfs3OK
}

// setattrPermission decides a SETATTR (sattr3: mode, uid, gid, size,
// atime, mtime, each with its "set" discriminant), decoded as the
// procedure itself decodes it.
func (s *Server) setattrPermission(call Call, at Attrs, fh []byte, cred access.Cred) uint32 {
	r := xdrReader{buf: call.Args}
	r.opaque(nfs3FHSize)
	var sa fattr.Sattr
	readSattr(&r, &sa)
	ch := access.Setattr{
		Mode:        sa.SetMode,
		Size:        sa.SetSize,
		Times:       sa.Atime != fattr.DontChange || sa.Mtime != fattr.DontChange,
		ClientTimes: sa.Atime == fattr.SetClientTime || sa.Mtime == fattr.SetClientTime,
	}
	if sa.SetUID {
		ch.UID = &sa.UID
	}
	if sa.SetGID {
		ch.GID = &sa.GID
	}
	if r.err != nil {
		return nfs3OK // checkNFSArgs has let it through: go-nfs answers it
	}
	a, err := at.Perms(fh)
	if err != nil {
		return errStatus(err, nfs3ErrStale)
	}
	switch cred.SetattrVerdict(a, ch) {
	case access.Perm:
		return nfs3ErrPerm
	case access.Acces:
		return nfs3ErrAcces
	}
	return nfs3OK
}

// grantAccess replaces the mask in go-nfs's ACCESS reply (status,
// post_op_attr, access: it grants what was asked) with what the caller is
// granted.
func (s *Server) grantAccess(call Call, at Attrs, fh []byte, rep []byte) {
	m := s.cfg.Export.Access
	if m == nil {
		return
	}
	r := xdrReader{buf: call.Args}
	r.opaque(nfs3FHSize)
	req := r.uint32()
	stat, body, ok := replyBody(rep)
	if !ok || stat != acceptSuccess || len(body) < 8 || binary.BigEndian.Uint32(body) != nfs3OK || r.err != nil {
		return
	}
	a, err := at.Perms(fh)
	granted := uint32(0)
	if err == nil {
		granted = callerCred(call.Cred, m).Access(a, req, s.cfg.Export.ReadOnly)
	}
	binary.BigEndian.PutUint32(body[len(body)-4:], granted)
}
