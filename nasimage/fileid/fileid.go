// Package fileid owns the identity of the exported files: the ID a file
// handle names. An ID belongs to a file, not to a path: it follows the file
// through renames (of itself or of any directory above it) and is never
// reused for another file, so a handle of a removed or replaced file is
// stale instead of reaching whatever now has its name.
//
// Where an ID is kept:
//   - regular files and directories: the extended attribute user.nasd.id
//     (16 bytes) on the file itself, so it survives nasd restarts and
//     moves with the inode;
//   - symlinks (Linux allows no user xattrs on them): derived from the
//     path and the target, so renaming a symlink changes its ID;
//   - filesystems without user xattrs (tmpfs before Linux 6.6): a table in
//     memory keyed by inode number, lost on restart (nasd logs a warning).
//
// Where an ID comes from:
//   - the export root: Root, always;
//   - files, directories and symlinks created over NFS: New (random);
//   - anything else (the sync engine's copies from Windows, files put there
//     behind nasd's back): derived on first sight from the path and, for
//     regular files, the version (size and modification time), then kept.
//     An unchanged Windows tree re-copied into a new, empty export (a new
//     pod) so gets the same IDs, while a file deleted and recreated with
//     other content gets another one.
//   - a file the sync engine copies into a new pod's export whose ID the
//     output sync's journal on the Windows side kept (same path, size and
//     mtime): that ID (Set), so files created over NFS keep their handles
//     across a pod replacement;
//   - a file the sync engine replaces with a new version (temp file, then
//     rename over it): Carry gives the replacement the old file's ID, as a
//     NAS edited in place.
//
// Derived IDs are not keyed: the handle's MAC already makes handles
// unforgeable, and the sync engine derives them without the secret.
package fileid

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ID identifies one file of an export.
type ID [16]byte

// Attr is the extended attribute that keeps a file's ID.
const Attr = "user.nasd.id"

// Root is the ID of the export root.
var Root = derive("root")

// New returns a fresh random ID, for a file created over NFS.
func New() ID {
	var id ID
	_, _ = rand.Read(id[:])
	return id
}

// Number is the NFS fileid attribute (the "inode number" clients see) of
// the file id names: its first 8 bytes, never 0. It follows the identity,
// not the inode: the Linux client checks that a handle's fileid never
// changes ("NFS: server ... error: fileid changed"), and in a new pod's
// export every file, the root first, has another inode.
func (id ID) Number() uint64 {
	if n := binary.BigEndian.Uint64(id[:8]); n != 0 {
		return n
	}
	return 1
}

func derive(parts ...string) ID {
	h := sha256.New()
	h.Write([]byte("nasd-fileid-v1"))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// Derived is the ID a file without one gets: from its path in the export
// (slash-separated, "" for the root) and, for regular files, its size and
// modification time; for symlinks, its target.
func Derived(rel string, fi os.FileInfo, target string) ID {
	switch {
	case rel == "":
		return Root
	case fi.Mode()&os.ModeSymlink != 0:
		return derive("symlink", rel, target)
	case fi.IsDir():
		return DerivedDir(rel)
	default:
		return DerivedFile(rel, fi.Size(), fi.ModTime().UnixNano())
	}
}

// DerivedDir is the ID Derived gives the directory rel.
func DerivedDir(rel string) ID {
	if rel == "" {
		return Root
	}
	return derive("dir", rel)
}

// DerivedFile is the ID Derived gives the regular file rel of size bytes
// modified at mtime (Unix ns).
func DerivedFile(rel string, size, mtime int64) ID {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:8], uint64(size))
	binary.BigEndian.PutUint64(v[8:], uint64(mtime))
	return derive("file", rel, string(v[:]))
}

// Set gives the file or directory at path (a host path) the ID id: the
// sync engine's copy of a file whose identity the Windows side's journal
// kept (see package sync).
func Set(path string, id ID) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return set(path, fi, id)
}

// Get returns the ID of rel (slash-separated) inside root, giving it one
// (Derived) and keeping it if it has none yet. Call it when a client uses
// a handle and before nasd changes a file: from then on the ID follows the
// file.
func Get(root, rel string) (ID, error) { return get(root, rel, true, nil) }

// Peek is Get without keeping a derived ID: for indexing and for files
// about to be removed, so that indexing a large tree does not write to
// every file (each write is also an inotify event for the sync engine). A
// derived ID is the same when computed again, as long as the file keeps
// its path and version; Get keeps it once a handle is given out.
func Peek(root, rel string) (ID, error) { return get(root, rel, false, nil) }

// Is reports whether rel inside root is the file id names (keeping a
// derived ID if so: a client is using its handle). One lgetxattr when the
// file has its ID.
func Is(root, rel string, id ID) bool {
	got, err := get(root, rel, true, &id)
	return err == nil && got == id
}

// get returns rel's ID; a derived one is kept if keep, and only if it is
// want when want is given.
func get(root, rel string, keep bool, want *ID) (ID, error) {
	if rel == "" {
		return Root, nil
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	if id, ok, err := read(p); err != nil || ok {
		return id, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return ID{}, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return ID{}, err
		}
		return Derived(rel, fi, target), nil
	}
	if id, ok := memGet(fi); ok {
		return id, nil
	}
	id := Derived(rel, fi, "")
	if !keep || (want != nil && id != *want) {
		return id, nil
	}
	return id, set(p, fi, id)
}

// Assign gives the file at path (a host path) a new random ID, for a file
// just created over NFS. Symlinks keep their derived ID.
func Assign(path string) (ID, error) {
	id := New()
	fi, err := os.Lstat(path)
	if err != nil {
		return ID{}, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return ID{}, nil
	}
	return id, set(path, fi, id)
}

// Carry gives replacement (a host path, e.g. the sync engine's temp file)
// the ID of rel inside root (the file it is about to replace by rename) and
// the owner a client gave it (OwnerAttr), so that handles of rel stay valid
// and its owner stays once the new version is in place. If rel does not
// exist there is nothing to carry.
func Carry(root, rel, replacement string) error {
	id, err := Get(root, rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fi, err := os.Lstat(replacement)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil // a symlink's ID is derived from its target
	}
	if err := set(replacement, fi, id); err != nil {
		return err
	}
	// The owner a client gave the file stays with its new version.
	var owner [8]byte
	if n, err := GetAttr(filepath.Join(root, filepath.FromSlash(rel)), OwnerAttr, owner[:]); err == nil && n == len(owner) {
		return AsOwner(replacement, fi, 0o200, func() error { return unix.Lsetxattr(replacement, OwnerAttr, owner[:], 0) })
	}
	return nil
}

// OwnerAttr is the user xattr in which nfsfs records the owner (uid, gid,
// big-endian) a client gave a file where nasd cannot chown it.
const OwnerAttr = "user.nasd.owner"

// read returns the ID kept in path's attribute, if any.
func read(path string) (ID, bool, error) {
	var id ID
	n, err := GetAttr(path, Attr, id[:])
	switch {
	case err == nil && n == len(id):
		return id, true, nil
	case err == nil, errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ERANGE),
		errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		// (EACCES: a file nasd does not own whose mode denies it reading:
		// the ID kept in memory, or derived, stands in.)
		return id, false, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return id, false, &os.PathError{Op: "getxattr", Path: path, Err: syscall.ENOENT}
	}
	return id, false, &os.PathError{Op: "getxattr", Path: path, Err: err}
}

// set keeps id on path: in its attribute, or in memory where the
// filesystem has no user attributes.
func set(path string, fi os.FileInfo, id ID) error {
	err := AsOwner(path, fi, 0o200, func() error { return unix.Lsetxattr(path, Attr, id[:], 0) })
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		// No user xattrs here, or a file nasd may not change (not its
		// own): keep the ID in memory.
		memSet(fi, id)
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "setxattr", Path: path, Err: err}
	}
	return nil
}

// GetAttr reads the user xattr name of path into b (lgetxattr), as the
// file's owner if its mode denies nasd reading it (chmod 000 by a client
// must not make its handle stale).
func GetAttr(path, name string, b []byte) (int, error) {
	n, err := unix.Lgetxattr(path, name, b)
	if !errors.Is(err, unix.EACCES) {
		return n, err
	}
	fi, serr := os.Lstat(path)
	if serr != nil {
		return n, err
	}
	err = AsOwner(path, fi, 0o400, func() error {
		var e error
		n, e = unix.Lgetxattr(path, name, b)
		return e
	})
	return n, err
}

// asOwner serializes AsOwner's mode changes.
var asOwner sync.Mutex

// AsOwner runs fn, which the mode of the file at path (fi) forbids nasd
// (EACCES), again with the permission bits need added for its duration,
// if nasd's uid owns the file: as the owner it may change the mode, and
// knfsd lets a file's owner write it whatever its mode. Symlinks and
// files nasd does not own get fn's error.
func AsOwner(path string, fi os.FileInfo, need os.FileMode, fn func() error) error {
	err := fn()
	if !errors.Is(err, syscall.EACCES) {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() || fi.Mode()&os.ModeSymlink != 0 {
		return err
	}
	asOwner.Lock()
	defer asOwner.Unlock()
	cur, serr := os.Lstat(path)
	if serr != nil {
		return err
	}
	mode := cur.Mode().Perm() | cur.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
	if mode&need == need {
		return fn() // the mode is not what refused it (or changed meanwhile)
	}
	if cerr := os.Chmod(path, mode|need); cerr != nil {
		return err
	}
	err = fn()
	if cerr := os.Chmod(path, mode); err == nil {
		err = cerr
	}
	return err
}

// The in-memory table for filesystems without user xattrs, keyed by inode.
// nasd drops an entry when it removes the file's last name (Forget); an
// inode freed behind its back and reused could pass its ID on: one more
// reason the export should be on a filesystem with user xattrs (ext4,
// xfs, tmpfs since Linux 6.6).
type inode struct{ dev, ino uint64 }

var mem struct {
	sync.Mutex
	ids map[inode]ID
}

func inodeOf(fi os.FileInfo) (inode, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}, false
	}
	return inode{dev: uint64(st.Dev), ino: st.Ino}, true
}

func memGet(fi os.FileInfo) (ID, bool) {
	k, ok := inodeOf(fi)
	if !ok {
		return ID{}, false
	}
	mem.Lock()
	defer mem.Unlock()
	id, ok := mem.ids[k]
	return id, ok
}

func memSet(fi os.FileInfo, id ID) {
	k, ok := inodeOf(fi)
	if !ok {
		return
	}
	mem.Lock()
	defer mem.Unlock()
	if mem.ids == nil {
		mem.ids = map[inode]ID{}
	}
	mem.ids[k] = id
}

// Forget drops the in-memory ID of a file whose last name is about to be
// removed (a no-op where IDs are kept in attributes).
func Forget(path string) {
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink > 1 {
		return
	}
	k, _ := inodeOf(fi)
	mem.Lock()
	defer mem.Unlock()
	delete(mem.ids, k)
}

// Supported reports whether the filesystem of dir keeps user xattrs (IDs
// then survive restarts); without them IDs live in memory.
func Supported(dir string) bool {
	var b [16]byte
	_, err := unix.Lgetxattr(dir, Attr, b[:])
	return !errors.Is(err, unix.ENOTSUP)
}
