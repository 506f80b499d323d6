package nfsfs

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/access"
	"github.com/nas-topology/nas-topology/nasimage/fattr"
	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// Owners. knfsd creates a file owned by the caller (its AUTH_UNIX uid and
// gid, after squashing); clients then check ownership themselves: git
// refuses a repository it does not own ("dubious ownership"), and chmod,
// utimes and cp -a's permission copy are refused by the client's VFS
// unless the caller owns the file. nasd runs as one uid without
// CAP_CHOWN, so when it cannot give a file away it records the owner in the
// user.nasd.owner xattr (uid, gid) and reports that owner in every
// attribute it answers. The front door checks the callers' permissions
// against these owners (rpc.Attrs, nasimage/access).

const ownerAttr = fileid.OwnerAttr

// attrInfo is a FileInfo whose Sys() (what go-nfs builds the NFS
// attributes from) reports the recorded owner and, as the inode number,
// the file's identity (fileid.ID.Number).
type attrInfo struct {
	os.FileInfo
	st syscall.Stat_t
}

func (o *attrInfo) Sys() any { return &o.st }

// attrs returns fi (of the host path p, rel in the export) as clients
// see it: its fileid from its identity (Peek: the identity is not kept by
// a stat), its owner the recorded one, else (a file of nasd's own: from
// Windows, or the export root) the export's Owner option, if set.
func (f *exportFS) attrs(rel, p string, fi os.FileInfo) os.FileInfo {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi
	}
	o := &attrInfo{FileInfo: fi, st: *st}
	id, err := fileid.Peek(f.root, rel)
	if err != nil {
		id = fileid.Derived(rel, fi, "") // gone meanwhile
	}
	o.st.Ino = id.Number()
	var b [8]byte
	var recorded []byte
	if fi.Mode()&os.ModeSymlink == 0 {
		if n, err := fileid.GetAttr(p, ownerAttr, b[:]); err == nil {
			recorded = b[:n]
		}
	}
	f.opts.showOwner(&o.st, recorded)
	return o
}

// showOwner sets st's owner to the one clients see: the recorded one
// (recorded, the owner xattr's value), else, for a file of nasd's own, the
// Owner option, if set.
func (o Options) showOwner(st *syscall.Stat_t, recorded []byte) {
	switch {
	case len(recorded) == 8:
		st.Uid, st.Gid = binary.BigEndian.Uint32(recorded[:4]), binary.BigEndian.Uint32(recorded[4:])
	case o.Owner != nil && st.Uid == uint32(os.Geteuid()):
		st.Uid, st.Gid = o.Owner[0], o.Owner[1]
	}
}

// Perms returns the owner, group and mode clients see of the file fh
// names (rpc.Attrs: the front door checks credentials against them), from
// the same attributes GETATTR answers.
func (h *Handler) Perms(fh []byte) (access.Attr, error) {
	var a fattr.Attr
	if err := h.Attr(fh, &a); err != nil {
		return access.Attr{}, err
	}
	uid, gid, mode := a.Perm()
	return access.Attr{UID: uid, GID: gid, Mode: mode}, nil
}

// chown gives p to uid/gid: for real when nasd may (it runs as root), else
// recorded in the owner xattr.
func chown(p string, uid, gid int, follow bool) error {
	var err error
	if follow {
		err = os.Chown(p, uid, gid)
	} else {
		err = os.Lchown(p, uid, gid)
	}
	if err == nil {
		_ = unix.Lremovexattr(p, ownerAttr)
		return nil
	}
	if !errors.Is(err, syscall.EPERM) {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(uid))
	binary.BigEndian.PutUint32(b[4:], uint32(gid))
	fi, serr := os.Lstat(p)
	if serr != nil {
		return serr
	}
	// A file created 0444 (git's objects) is still nasd's to label.
	if xerr := fileid.AsOwner(p, fi, 0o200, func() error { return unix.Lsetxattr(p, ownerAttr, b[:], 0) }); xerr != nil {
		return err // a symlink, or no user xattrs: the EPERM stands
	}
	return nil
}

// Created gives the file fh names, just created over NFS by a caller with
// AUTH_UNIX uid and gid, to that caller (after squashing) and returns the
// owner it now has (for the front door to put in the reply's attributes).
func (h *Handler) Created(fh []byte, uid, gid uint32) (uint32, uint32, bool) {
	if h.opts.ReadOnly {
		return 0, 0, false
	}
	id, err := h.codec.Decode(fh)
	if err != nil || !h.fs.fresh.take(id) {
		// Not made by this call: CREATE of an existing file (UNCHECKED)
		// keeps its owner, as with knfsd.
		return 0, 0, false
	}
	_, path, err := h.FromHandle(fh)
	if err != nil {
		return 0, 0, false
	}
	p, err := h.fs.resolve(filepath.Join(path...), false)
	if err != nil {
		return 0, 0, false
	}
	u, g := h.opts.mapOwner(int(uid), int(gid))
	if err := chown(p, u, g, false); err != nil {
		return 0, 0, false
	}
	return uint32(u), uint32(g), true
}

// freshFiles are the identities of files nasd just created over NFS, until
// the front door hands them to their caller (Created).
type freshFiles struct {
	mu  sync.Mutex
	ids map[FileID]time.Time
}

func (f *freshFiles) add(id FileID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[FileID]time.Time{}
	}
	now := time.Now()
	if len(f.ids) >= 1024 { // calls without AUTH_UNIX never take theirs
		for k, t := range f.ids {
			if now.Sub(t) > time.Minute {
				delete(f.ids, k)
			}
		}
	}
	f.ids[id] = now
}

func (f *freshFiles) take(id FileID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.ids[id]
	delete(f.ids, id)
	return ok
}
