package nfsfs

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/fattr"
	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// CREATE and SETATTR for the front door's hot path (rpc.Creator,
// rpc.Setattrer), with the semantics go-nfs (v0.0.4) and this package's
// wrappers gave them, in a few syscalls: a new file is created, labelled
// and given to its caller through the descriptor it was created with,
// which then stays in the open-file cache for the WRITEs that follow.

var (
	errExist       = &handleError{17, "nfsfs: file exists"}
	errNameTooLong = &handleError{63, "nfsfs: name too long"}
	errNotSync     = &handleError{10002, "nfsfs: SETATTR guard: ctime changed"}
	errNotSupp     = &handleError{10004, "nfsfs: not supported"}
)

// Create answers NFSv3 CREATE of name in the directory dir. UNCHECKED
// (guarded false) creates the file or truncates an existing one, as
// go-nfs did; GUARDED refuses an existing name (EXIST), as does either for
// a directory or a symlink there. A new file gets a new identity and,
// when the call had AUTH_UNIX credentials (cred), is owned by the caller
// after squashing (knfsd's rule; see owner.go); then the sattr s is
// applied. a gets the file's attributes, da the directory's after.
func (h *Handler) Create(dir []byte, name string, guarded bool, s *fattr.Sattr, uid, gid uint32, cred bool, a, da *fattr.Attr) ([]byte, error) {
	if h.opts.ReadOnly {
		return nil, statusErr(syscall.EROFS)
	}
	if len(name) > 255 {
		return nil, errNameTooLong
	}
	_, p, err := h.FromHandle(dir)
	if err != nil {
		return nil, ErrStale
	}
	dirRel := filepath.Join(p...)
	dp, err := h.fs.resolve(dirRel, true)
	if err != nil {
		return nil, ErrStale
	}
	path := filepath.Join(dp, name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o666)
	switch {
	case err == unix.EEXIST && !guarded:
		return h.createOver(dir, p, name, s, a, da)
	case err == unix.EEXIST:
		return nil, errExist
	case err == unix.ENOTDIR:
		return nil, statusErr(err)
	case err != nil:
		return nil, &handleError{13, "nfsfs: create: " + err.Error()} // go-nfs: ACCES
	}
	id := fileid.New()
	if err := unix.Fsetxattr(fd, fileid.Attr, id[:], 0); err != nil {
		if id, err = fileid.Assign(path); err != nil {
			unix.Close(fd)
			return nil, statusErr(err)
		}
	}
	h.index.put(id, h.fs.rel(path))
	fh := h.codec.Encode(id)
	f := h.files.add(&openFile{id: id, key: [HandleSize]byte(fh), fd: fd, rw: true})
	defer h.files.put(f)
	if cred {
		// Where nasd can neither give the file away nor record its owner
		// (no CAP_CHOWN, an export without user xattrs: a tmpfs emptyDir),
		// the file stays nasd's, shown as the files owner: the CREATE
		// still succeeds, as it did through go-nfs.
		u, g := h.opts.mapOwner(int(uid), int(gid))
		_ = fchown(fd, u, g)
	} else if s.SetUID || s.SetGID {
		u, g := int(s.UID), int(s.GID)
		if !s.SetUID || !s.SetGID {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				return nil, statusErr(err)
			}
			u, g = pick(s.SetUID, s.UID, st.Uid), pick(s.SetGID, s.GID, st.Gid)
		}
		u, g = h.opts.mapOwner(u, g)
		if err := fchown(fd, u, g); err != nil {
			return nil, err
		}
	}
	if s.SetMode {
		if err := unix.Fchmod(fd, s.Mode&0o777); err != nil {
			return nil, statusErr(err)
		}
	}
	if s.SetSize && s.Size > 0 {
		if s.Size > math.MaxInt64 {
			return nil, statusErr(syscall.EINVAL)
		}
		if err := unix.Ftruncate(fd, int64(s.Size)); err != nil {
			return nil, statusErr(err)
		}
	}
	if s.Atime != fattr.DontChange || s.Mtime != fattr.DontChange {
		var cur fattr.Attr
		if err := h.statFD(f, &cur); err != nil {
			return nil, err
		}
		if err := setTimesFD(fd, s, &cur); err != nil {
			return nil, err
		}
	}
	if err := h.statFD(f, a); err != nil {
		return nil, err
	}
	return fh, h.Attr(dir, da)
}

// CreateExclusive answers NFSv3 EXCLUSIVE CREATE as knfsd does: the new
// file keeps the verifier in its times (mtime seconds from its first half,
// atime seconds from its second, the high bits cleared) until the client's
// SETATTR that follows sets the real ones; a CREATE finding an empty
// regular file with those times is a retransmission and gets its handle,
// any other existing name EXIST. The times, not an xattr, because a tmpfs
// export may have no user xattrs.
func (h *Handler) CreateExclusive(dir []byte, name string, verf [8]byte, uid, gid uint32, cred bool, a, da *fattr.Attr) ([]byte, error) {
	vm := binary.BigEndian.Uint32(verf[:4]) & 0x7fffffff
	va := binary.BigEndian.Uint32(verf[4:]) & 0x7fffffff
	s := fattr.Sattr{
		Atime: fattr.SetClientTime, ATime: fattr.Time{Sec: va},
		Mtime: fattr.SetClientTime, MTime: fattr.Time{Sec: vm},
	}
	fh, err := h.Create(dir, name, true, &s, uid, gid, cred, a, da)
	if err != errExist {
		return fh, err
	}
	fh, lerr := h.Lookup(dir, name, a, da, false)
	if lerr != nil || a.Type != fattr.TypeReg || a.Size != 0 {
		return nil, errExist
	}
	// The times as stored (clients are shown the mtime for all three).
	_, p, err := h.FromHandle(fh)
	if err != nil {
		return nil, errExist
	}
	hp, err := h.fs.resolve(filepath.Join(p...), false)
	var st syscall.Stat_t
	if err != nil || syscall.Lstat(hp, &st) != nil ||
		st.Mtim.Sec != int64(vm) || st.Atim.Sec != int64(va) { // seconds only, as knfsd
		return nil, errExist
	}
	return fh, nil
}

// createOver is UNCHECKED CREATE of an existing name, as go-nfs did it:
// a directory is EXIST, a file is truncated (through the export's
// OpenFile: a file nasd may not write is opened as its owner) and takes
// the sattr like SETATTR.
func (h *Handler) createOver(dir []byte, p []string, name string, s *fattr.Sattr, a, da *fattr.Attr) ([]byte, error) {
	ep := append(p[:len(p):len(p)], name)
	rel := filepath.Join(ep...)
	if fi, err := h.fs.Lstat(rel); err != nil || fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		return nil, errExist
	}
	file, err := h.fs.OpenFile(rel, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, &handleError{13, "nfsfs: create: " + err.Error()}
	}
	if err := file.Close(); err != nil {
		return nil, &handleError{13, "nfsfs: create: " + err.Error()}
	}
	fh := h.ToHandle(h.fs, ep)
	var pre fattr.Attr
	if err := h.SetAttr(fh, s, false, fattr.Time{}, &pre, a); err != nil {
		return nil, err
	}
	return fh, h.Attr(dir, da)
}

func pick(set bool, v, cur uint32) int {
	if set {
		return int(v)
	}
	return int(cur)
}

// fchown gives the file just created on fd to uid/gid as chown does by
// path: for real when nasd may, else recorded in the owner xattr (a new
// file has none to remove).
func fchown(fd, uid, gid int) error {
	err := unix.Fchown(fd, uid, gid)
	if err == nil || err != unix.EPERM {
		return statusErr(err)
	}
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(uid))
	binary.BigEndian.PutUint32(b[4:], uint32(gid))
	if xerr := unix.Fsetxattr(fd, ownerAttr, b[:], 0); xerr != nil {
		return statusErr(err) // no user xattrs: the EPERM stands
	}
	return nil
}

// SetAttr answers NFSv3 SETATTR of the file fh names as go-nfs's did
// (mode, owner, size, times, each only if it changes): with guard, the
// file's ctime must be gtime (else NOT_SYNC). A new size goes through the
// open-file cache and, with `sync`, is durable before the reply (a
// truncation changes what a client reads back); a SETATTR that leaves the
// size as it was does not sync. pre and post get the attributes around it.
func (h *Handler) SetAttr(fh []byte, s *fattr.Sattr, guard bool, gtime fattr.Time, pre, post *fattr.Attr) error {
	if h.opts.ReadOnly {
		return statusErr(syscall.EROFS)
	}
	_, p, err := h.FromHandle(fh)
	if err != nil {
		return ErrStale
	}
	if err := h.Attr(fh, pre); err != nil {
		return err
	}
	if guard && gtime != pre.Ctime {
		return errNotSync
	}
	rel := filepath.Join(p...)
	if s.SetMode && s.Mode&0o777 != pre.Mode&0o777 {
		mode := s.Mode & 0o777
		var err error
		if !h.viaOpenFile(fh, func(fd int) error { err = unix.Fchmod(fd, mode); return nil }) {
			err = h.fs.Chmod(rel, os.FileMode(mode))
		}
		if err != nil {
			return changeErr(err)
		}
	}
	if s.SetUID || s.SetGID {
		u, g := pick(s.SetUID, s.UID, pre.UID), pick(s.SetGID, s.GID, pre.GID)
		if uint32(u) != pre.UID || uint32(g) != pre.GID {
			if err := h.fs.Lchown(rel, u, g); err != nil {
				return changeErr(err)
			}
		}
	}
	if s.SetSize {
		if pre.Type == fattr.TypeLnk {
			return errNotSupp
		}
		if s.Size > math.MaxInt64 {
			return statusErr(syscall.EINVAL)
		}
		err := h.withFile(fh, true, func(f *openFile) error {
			if err := unix.Ftruncate(f.fd, int64(s.Size)); err != nil {
				return statusErr(err)
			}
			if h.opts.Sync && s.Size != pre.Size {
				return h.sync(f.fd, false)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if s.Atime != fattr.DontChange || s.Mtime != fattr.DontChange {
		var err error
		if !h.viaOpenFile(fh, func(fd int) error { err = setTimesFD(fd, s, pre); return nil }) {
			p, rerr := h.fs.resolve(rel, true)
			if rerr != nil {
				return ErrStale
			}
			err = h.setTimes(p, s, pre)
		}
		if err != nil {
			return err
		}
	}
	return h.Attr(fh, post)
}

// setTimes sets the atime and mtime s asks for on the host path p, cur
// giving the ones it leaves (go-nfs's rule: unchanged times are not set).
func (h *Handler) setTimes(p string, s *fattr.Sattr, cur *fattr.Attr) error {
	at, mt, change := newTimes(s, cur)
	if !change {
		return nil
	}
	if err := os.Chtimes(p, at, mt); err != nil {
		return changeErr(err)
	}
	return nil
}

// setTimesFD is setTimes on an open file (no path walk).
func setTimesFD(fd int, s *fattr.Sattr, cur *fattr.Attr) error {
	at, mt, change := newTimes(s, cur)
	if !change {
		return nil
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	// utimensat(fd, NULL, ...) is futimens: the descriptor's file.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return changeErr(&os.PathError{Op: "futimens", Path: "fd", Err: e})
	}
	return nil
}

// newTimes are the atime and mtime s asks for, cur giving the ones it
// leaves; change is false when they are cur's.
func newTimes(s *fattr.Sattr, cur *fattr.Attr) (at, mt time.Time, change bool) {
	now := time.Now()
	at, mt = toTime(cur.Atime), toTime(cur.Mtime)
	switch s.Atime {
	case fattr.SetServerTime:
		at = now
	case fattr.SetClientTime:
		at = toTime(s.ATime)
	}
	switch s.Mtime {
	case fattr.SetServerTime:
		mt = now
	case fattr.SetClientTime:
		mt = toTime(s.MTime)
	}
	return at, mt, !at.Equal(toTime(cur.Atime)) || !mt.Equal(toTime(cur.Mtime))
}

// viaOpenFile runs fn on the descriptor of fh's file when the open-file
// cache holds it (a file just created or being written: no path walk) and
// reports whether it did (fn keeps its own error).
func (h *Handler) viaOpenFile(fh []byte, fn func(fd int) error) bool {
	if !h.files.has(fh) {
		return false
	}
	return h.withFile(fh, false, func(f *openFile) error { return fn(f.fd) }) == nil
}

func toTime(t fattr.Time) time.Time { return time.Unix(int64(t.Sec), int64(t.Nsec)) }

// changeErr maps a failed change as go-nfs's SETATTR did: a permission
// error is ACCES, anything else IO.
func changeErr(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return &handleError{13, err.Error()}
	}
	return &handleError{5, err.Error()}
}
