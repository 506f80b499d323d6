package rpc

import (
	"github.com/nas-topology/nas-topology/nasimage/access"

	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
)

// Objects is what the front door needs, beyond Handles, to answer as knfsd
// does where go-nfs does not: the type of the file a handle names, whether
// a handle is the export root, and hard links. A Handles that also
// implements Objects gets these checks; errors with an NFSStatus() method
// select the status (STALE for a handle whose file is gone).
type Objects interface {
	// Type returns the file type bits (fs.ModeDir, fs.ModeSymlink, 0 for a
	// regular file, ...) of the file fh names.
	Type(fh []byte) (fs.FileMode, error)
	// IsRoot reports whether fh is the export root.
	IsRoot(fh []byte) bool
	// Link gives the file fh the new name name in directory dir.
	Link(fh, dir []byte, name string) error
	// Created gives the file fh, just created by a caller with these
	// AUTH_UNIX credentials, to that caller; it returns the owner the file
	// now has (ok false: unchanged).
	Created(fh []byte, uid, gid uint32) (ownerUID, ownerGID uint32, ok bool)
}

// wantType is, per procedure, the type its (first) handle must name, as
// knfsd's fh_verify asks: READ, WRITE and COMMIT a regular file,
// READLINK a symlink, the directory operations a directory.
var wantType = [nfsProcCount]fs.FileMode{
	3: fs.ModeDir, 5: fs.ModeSymlink, 6: 0, 7: 0, 8: fs.ModeDir, 9: fs.ModeDir, 10: fs.ModeDir,
	11: fs.ModeDir, 12: fs.ModeDir, 13: fs.ModeDir, 14: fs.ModeDir, 16: fs.ModeDir, 17: fs.ModeDir, 21: 0,
}

var checksType = [nfsProcCount]bool{3: true, 5: true, 6: true, 7: true, 8: true, 9: true, 10: true,
	11: true, 12: true, 13: true, 14: true, 16: true, 17: true, 21: true}

// typeStatus is knfsd's answer when a handle names the wrong type of file
// (nfsd_mode_check): a directory where a file is wanted is ISDIR, anything
// else where a directory is wanted NOTDIR (a symlink to a directory
// included: CREATE through one created the file in the export root), else
// INVAL. Zero means the type is right.
func typeStatus(want, got fs.FileMode) uint32 {
	got &= fs.ModeType
	switch {
	case got == want:
		return nfs3OK
	case want == fs.ModeDir:
		return nfs3ErrNotDir
	case got == fs.ModeDir:
		return nfs3ErrIsDir
	}
	return nfs3ErrInval
}

// objectChecks answers, before go-nfs sees a call, what knfsd answers
// otherwise: the type of the file each handle names (RENAME's second
// directory included: go-nfs follows a symlink there too), and LOOKUP ".."
// of the export root, which it rewrites to "." (go-nfs answered ACCES;
// knfsd: the root itself). nfs3OK: hand the call to go-nfs (or LINK).
func (s *Server) objectChecks(call Call, obj Objects, fh []byte, names [][]byte, nameOffs []int) uint32 {
	if checksType[call.Proc] {
		if st := objectStatus(obj, fh, wantType[call.Proc]); st != nfs3OK {
			return st
		}
	}
	if call.Proc == nfsProcRename {
		to := renameTarget(call.Args, nameOffs)
		if err := s.cfg.Handles.Check(to); err != nil {
			return errStatus(err, nfs3ErrBadHandl)
		}
		if st := objectStatus(obj, to, fs.ModeDir); st != nfs3OK {
			return st
		}
	}
	if call.Proc == nfsProcLookup && string(names[0]) == ".." && obj.IsRoot(fh) {
		// Same padded size: the length word becomes 1, the name ".".
		off := nameOffs[0]
		binary.BigEndian.PutUint32(call.Args[off:], 1)
		call.Args[off+5] = 0
	}
	return nfs3OK
}

// renameTarget is the handle of RENAME's second directory (RENAME3args:
// from dir, from name, to dir, to name; nameOffs as nameArgs gives them).
func renameTarget(args []byte, nameOffs []int) []byte {
	r := xdrReader{buf: args, off: nameOffs[0]}
	r.opaque(nfsNameMax)
	return r.opaque(nfs3FHSize)
}

// objectStatus checks the type of the file fh names.
func objectStatus(obj Objects, fh []byte, want fs.FileMode) uint32 {
	got, err := obj.Type(fh)
	if err != nil {
		return errStatus(err, nfs3ErrStale)
	}
	return typeStatus(want, got)
}

// errStatus is the NFS status an error carries, or def.
func errStatus(err error, def uint32) uint32 {
	var se statusError
	if errors.As(err, &se) {
		return se.NFSStatus()
	}
	return def
}

// nameArgs returns the file names in an NFS call's arguments (already
// checked by checkNFSArgs) with, for each, the offset of its length word.
func nameArgs(proc uint32, args []byte) (names [][]byte, offs []int) {
	r := xdrReader{buf: args}
	fh := func() { r.opaque(nfs3FHSize) }
	name := func() {
		off := r.off
		n := r.opaque(nfsNameMax)
		if r.err == nil {
			names, offs = append(names, n), append(offs, off)
		}
	}
	switch proc {
	case 3, 8, 9, 10, 11, 12, 13: // LOOKUP CREATE MKDIR SYMLINK MKNOD REMOVE RMDIR
		fh()
		name()
	case 14: // RENAME
		fh()
		name()
		fh()
		name()
	case 15: // LINK
		fh()
		fh()
		name()
	}
	return names, offs
}

// validName is knfsd's decoding rule for a file name (svcxdr_decode_filename3):
// not empty, no NUL, no slash. A name that breaks it is GARBAGE_ARGS.
func validName(n []byte) bool {
	return len(n) > 0 && bytes.IndexByte(n, 0) < 0 && bytes.IndexByte(n, '/') < 0
}

func isDot(n []byte) bool { return string(n) == "." || string(n) == ".." }

// dotStatus is knfsd's answer to "." or ".." where a procedure names an
// entry to create, remove or rename: nfsd_create EXIST, nfsd_unlink ACCES,
// nfsd_rename and nfsd_link PERM. Zero: allowed (LOOKUP).
var dotStatus = [nfsProcCount]uint32{
	8: nfs3ErrExist, 9: nfs3ErrExist, 10: nfs3ErrExist, 11: nfs3ErrExist,
	12: nfs3ErrAcces, 13: nfs3ErrAcces, 14: nfs3ErrPerm, 15: nfs3ErrPerm,
}

// authUnix is the AUTH_UNIX (AUTH_SYS) credential flavor (RFC 5531).
const authUnix = 1

// unixCred decodes AUTH_UNIX (AUTH_SYS) credentials: stamp, machine name,
// uid, gid, gids<16>. ok is false for another flavor or a body without uid
// and gid; whole is false as well when the groups do not decode.
func unixCred(a Auth) (c access.Cred, ok, whole bool) {
	if a.Flavor != authUnix {
		return c, false, false
	}
	r := xdrReader{buf: a.Body}
	r.uint32()    // stamp
	r.opaque(255) // machine name
	c.UID, c.GID = r.uint32(), r.uint32()
	if r.err != nil {
		return c, false, false
	}
	n := r.uint32()
	for i := uint32(0); i < n && i < 16 && r.err == nil; i++ {
		c.Groups = append(c.Groups, r.uint32())
	}
	return c, true, r.err == nil
}

// created hands a file that CREATE, MKDIR or SYMLINK just made to its
// caller (knfsd creates it owned by the caller) and puts the new owner in
// the reply's attributes. The resok body of the three starts alike:
// status, post_op_fh3, post_op_attr (fattr3: type, mode, nlink, uid, gid,
// ...).
func created(obj Objects, call Call, rep []byte) {
	cred, ok, _ := unixCred(call.Cred)
	if !ok {
		return
	}
	stat, body, ok := replyBody(rep)
	if !ok || stat != acceptSuccess {
		return
	}
	r := xdrReader{buf: body}
	if r.uint32() != nfs3OK || r.uint32() != 1 {
		return
	}
	fh := r.opaque(nfs3FHSize)
	if r.err != nil {
		return
	}
	u, g, ok := obj.Created(fh, cred.UID, cred.GID)
	if !ok || r.uint32() != 1 || r.err != nil || r.off+20 > len(body) {
		return
	}
	binary.BigEndian.PutUint32(body[r.off+12:], u)
	binary.BigEndian.PutUint32(body[r.off+16:], g)
}
