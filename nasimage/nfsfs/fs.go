package nfsfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/go-git/go-billy/v5"
	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// exportFS is the exported directory as go-nfs sees it. It wraps billy's
// BoundOS (which resolves every path, symlinks included, inside the
// export) and adds the export options: read-only refuses every change,
// sync makes written files durable before WRITE replies, squash maps
// owners. It also implements billy.Change, which BoundOS lacks.
//
// Every change of a name goes through here or through the sync engine, so
// this is where file identities are given (a file created over NFS gets a
// new one) and where the handle index follows renames and removes.
type exportFS struct {
	billy.Filesystem
	root  string
	opts  Options
	index *handleIndex
	fresh freshFiles
	files *openFiles // the data path's open files, dropped on remove and rename
}

var errROFS = &os.PathError{Op: "write", Err: syscall.EROFS}

func (f *exportFS) Capabilities() billy.Capability {
	if f.opts.ReadOnly {
		return billy.ReadCapability | billy.SeekCapability
	}
	return billy.Capabilities(f.Filesystem)
}

func (f *exportFS) Create(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (f *exportFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	writes := flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0
	if writes && f.opts.ReadOnly {
		return nil, errROFS
	}
	created := false
	if flag&os.O_CREATE != 0 {
		if _, err := f.Stat(name); errors.Is(err, os.ErrNotExist) {
			created = true
		}
	}
	file, err := f.Filesystem.OpenFile(name, flag, perm)
	if writes && errors.Is(err, os.ErrPermission) {
		file, err = f.openAsOwner(name, flag, perm)
	}
	if err != nil {
		return nil, err
	}
	if created {
		f.assign(name, file)
	}
	if !writes || !f.opts.Sync {
		return file, nil
	}
	return &syncFile{File: file}, nil
}

// assign gives a file just created over NFS a new identity (not the one
// derived from its path: a file deleted and created again under the same
// name is another file).
func (f *exportFS) assign(name string, file billy.File) {
	p, err := f.resolve(name, true)
	if err != nil {
		return
	}
	id := fileid.New()
	fd, ok := file.(interface{ Fd() uintptr })
	if !ok || unix.Fsetxattr(int(fd.Fd()), fileid.Attr, id[:], 0) != nil {
		if id, err = fileid.Assign(p); err != nil {
			return
		}
	}
	f.index.put(id, f.rel(p))
	f.fresh.add(id)
}

// openAsOwner opens a file for writing that its mode forbids nasd to
// write. knfsd lets a file's owner write it whatever its mode
// (NFSD_MAY_OWNER_OVERRIDE): git, tar and cp create a file 0444 and write
// through the descriptor they got. nasd runs as one uid and owns the files
// it created, so as their owner it may add u+w for the open and restore
// the mode at once (an open descriptor keeps its access): fileid.AsOwner.
// Files nasd does not own are refused as before.
func (f *exportFS) openAsOwner(name string, flag int, perm os.FileMode) (billy.File, error) {
	p, err := f.resolve(name, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	var file billy.File
	err = fileid.AsOwner(p, fi, 0o200, func() error {
		var err error
		file, err = f.Filesystem.OpenFile(name, flag, perm)
		return err
	})
	return file, err
}

// Rename, Remove and Symlink act on the last path component itself, never
// on what a symlink there points to: BoundOS resolves it, so removing a
// symlink would remove its target, and renaming over one would replace
// its target.
func (f *exportFS) Rename(from, to string) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	src, err := f.resolve(from, false)
	if err != nil {
		return err
	}
	dst, err := f.resolve(to, false)
	if err != nil {
		return err
	}
	if src == f.root || dst == f.root {
		return &os.PathError{Op: "rename", Path: from, Err: syscall.EBUSY}
	}
	srcRel, dstRel := f.rel(src), f.rel(dst)
	id, err := fileid.Get(f.root, srcRel)
	if err != nil {
		return err
	}
	replaced, rerr := fileid.Peek(f.root, dstRel)
	if rerr == nil && replaced != id {
		fileid.Forget(dst)
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	if rerr == nil {
		f.index.drop(replaced, dstRel)
		f.files.forget(replaced)
	}
	f.files.forget(id)
	fi, err := os.Lstat(dst)
	f.index.renamed(id, srcRel, dstRel, err == nil && fi.IsDir())
	return nil
}

func (f *exportFS) Remove(name string) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(name, false)
	if err != nil {
		return err
	}
	if p == f.root {
		return &os.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	}
	rel := f.rel(p)
	id, idErr := fileid.Peek(f.root, rel)
	fileid.Forget(p)
	if err := os.Remove(p); err != nil {
		return err
	}
	if idErr == nil {
		f.index.drop(id, rel)
		f.files.forget(id)
	}
	return nil
}

// goNFSMkdirDefault is the mode go-nfs (v0.0.4) passes to MkdirAll for a
// MKDIR without a mode: 755 in decimal (0o1363), which made directories
// d-wx-r---x (0341 after the umask) that nasd itself could not list. A
// mode a client gives is at most 0o777, so this value means "none given".
const goNFSMkdirDefault = 755

func (f *exportFS) MkdirAll(name string, perm os.FileMode) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	if perm == goNFSMkdirDefault {
		perm = 0o755
	}
	_, statErr := f.Lstat(name)
	if err := f.Filesystem.MkdirAll(name, perm); err != nil {
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A directory created over NFS is a new one (see assign).
		if p, err := f.resolve(name, false); err == nil {
			if id, err := fileid.Assign(p); err == nil {
				f.index.put(id, f.rel(p))
				f.fresh.add(id)
			}
		}
	}
	return nil
}

func (f *exportFS) Symlink(target, link string) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(link, false)
	if err != nil {
		return err
	}
	if err := os.Symlink(target, p); err != nil {
		return err
	}
	if id, err := fileid.Peek(f.root, f.rel(p)); err == nil {
		f.fresh.add(id)
	}
	return nil
}

// Link makes to a new name of the file from (NFSv3 LINK): both names have
// the same identity, so the file's handle stays valid while one of its
// names exists. Neither name is resolved through a symlink at its end.
func (f *exportFS) Link(from, to string) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	src, err := f.resolve(from, false)
	if err != nil {
		return err
	}
	dst, err := f.resolve(to, false)
	if err != nil {
		return err
	}
	id, err := fileid.Get(f.root, f.rel(src))
	if err != nil {
		return err
	}
	if err := os.Link(src, dst); err != nil {
		return err
	}
	f.index.put(id, f.rel(dst))
	return nil
}

func (f *exportFS) TempFile(dir, prefix string) (billy.File, error) {
	if f.opts.ReadOnly {
		return nil, errROFS
	}
	return f.Filesystem.TempFile(dir, prefix)
}

// Lstat resolves the parent directory inside the export and stats the
// last component itself. (BoundOS.Lstat is as safe but re-resolves every
// component of the export's own absolute path, twice, on every call: most
// of the CPU time of a GETATTR.)
func (f *exportFS) Lstat(name string) (os.FileInfo, error) {
	p, err := f.resolve(name, false)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	return f.attrs(f.rel(p), p, fi), nil
}

// Lstat, Stat and ReadDir report recorded owners and identity-based
// fileids (see attrs in owner.go).
func (f *exportFS) Stat(name string) (os.FileInfo, error) {
	p, err := f.resolve(name, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	return f.attrs(f.rel(p), p, fi), nil
}

func (f *exportFS) ReadDir(name string) ([]os.FileInfo, error) {
	entries, err := f.Filesystem.ReadDir(name)
	if err != nil {
		return nil, err
	}
	dir, err := f.resolve(name, true)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		p := filepath.Join(dir, e.Name())
		entries[i] = f.attrs(f.rel(p), p, e)
	}
	return entries, nil
}

// physical returns the path of name inside the export as it is on disk
// (its directories resolved, the last component not followed),
// slash-separated, "" for the root.
func (f *exportFS) physical(name string) (string, error) {
	p, err := f.resolve(name, false)
	if err != nil {
		return "", err
	}
	return f.rel(p), nil
}

// rel turns a host path inside the export into an export path.
func (f *exportFS) rel(p string) string {
	r, err := filepath.Rel(f.root, p)
	if err != nil || r == "." {
		return ""
	}
	return filepath.ToSlash(r)
}

// resolve returns the host path of name inside the export; with
// followLast false the last component is not resolved (for l* calls).
func (f *exportFS) resolve(name string, followLast bool) (string, error) {
	if followLast {
		return securejoin.SecureJoin(f.root, name)
	}
	clean := filepath.Clean("/" + name)
	if clean == "/" {
		return f.root, nil
	}
	dir, err := securejoin.SecureJoin(f.root, filepath.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(clean)), nil
}

// billy.Change

func (f *exportFS) Chmod(name string, mode os.FileMode) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(name, true)
	if err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func (f *exportFS) Lchown(name string, uid, gid int) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(name, false)
	if err != nil {
		return err
	}
	uid, gid = f.opts.mapOwner(uid, gid)
	return chown(p, uid, gid, false)
}

func (f *exportFS) Chown(name string, uid, gid int) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(name, true)
	if err != nil {
		return err
	}
	uid, gid = f.opts.mapOwner(uid, gid)
	return chown(p, uid, gid, true)
}

func (f *exportFS) Chtimes(name string, atime, mtime time.Time) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(name, true)
	if err != nil {
		return err
	}
	return os.Chtimes(p, atime, mtime)
}

// syncFile makes a written file durable when go-nfs closes it, which it
// does before each WRITE reply: with `sync`, WRITE's FILE_SYNC is true.
type syncFile struct {
	billy.File
	wrote bool
}

func (s *syncFile) Write(p []byte) (int, error) {
	s.wrote = true
	return s.File.Write(p)
}

func (s *syncFile) Truncate(size int64) error {
	s.wrote = true
	return s.File.Truncate(size)
}

func (s *syncFile) Close() error {
	var err error
	if sy, ok := s.File.(interface{ Sync() error }); ok && s.wrote {
		err = sy.Sync()
	}
	if cerr := s.File.Close(); err == nil {
		err = cerr
	}
	return err
}
