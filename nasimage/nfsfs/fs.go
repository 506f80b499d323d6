package nfsfs

import (
	"os"
	"path/filepath"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/go-git/go-billy/v5"
)

// exportFS is the exported directory as go-nfs sees it. It wraps billy's
// BoundOS (which resolves every path, symlinks included, inside the
// export) and adds the export options: read-only refuses every change,
// sync makes written files durable before WRITE replies, squash maps
// owners. It also implements billy.Change, which BoundOS lacks.
type exportFS struct {
	billy.Filesystem
	root string
	opts Options
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
	file, err := f.Filesystem.OpenFile(name, flag, perm)
	if err != nil || !writes || !f.opts.Sync {
		return file, err
	}
	return &syncFile{File: file}, nil
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
	return os.Rename(src, dst)
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
	return os.Remove(p)
}

func (f *exportFS) MkdirAll(name string, perm os.FileMode) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	return f.Filesystem.MkdirAll(name, perm)
}

func (f *exportFS) Symlink(target, link string) error {
	if f.opts.ReadOnly {
		return errROFS
	}
	p, err := f.resolve(link, false)
	if err != nil {
		return err
	}
	return os.Symlink(target, p)
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
	return os.Lstat(p)
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
	return os.Lchown(p, uid, gid)
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
	return os.Chown(p, uid, gid)
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
