package nfsfs

import (
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/fattr"
	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// The data path: READ, WRITE, COMMIT and GETATTR answered by the front
// door without go-nfs (rpc.DataPath). Regular files are kept open in a
// cache keyed by handle, so a sequential read or write costs one pread or
// pwrite and one fstat per call instead of go-nfs's path resolution, open,
// stat and close.
//
// Durability is knfsd's: an UNSTABLE WRITE is answered UNSTABLE from the
// page cache and made durable by COMMIT (fsync); a DATA_SYNC or FILE_SYNC
// WRITE is synced before its reply. The write verifier (the front door's)
// changes on every start, so a client resends the unstable writes a crash
// may have lost. With `async` nothing is synced and every WRITE is answered
// as asked, as knfsd's async does: a crash of the node can lose data a
// client was told is stable.

// Write stabilities (stable_how).
const (
	unstable = 0
	dataSync = 1
	fileSync = 2
)

// Limits of the open-file cache: at most maxOpenFiles descriptors, each
// closed once unused for openFileIdle (a file removed behind nasd's back
// keeps its space while it is open).
const (
	maxOpenFiles = 128
	openFileIdle = 10 * time.Second
)

// openFile is one cached regular file.
type openFile struct {
	id   FileID
	key  [HandleSize]byte
	fd   int // O_RDONLY or O_RDWR
	rw   bool
	mu   sync.Mutex // serializes upgrading fd to O_RDWR
	refs int        // calls using fd (under openFiles.mu)
	gone bool       // evicted: the last user closes fd
	used atomic.Int64
}

// openFiles is the bounded cache of open files.
type openFiles struct {
	mu    sync.Mutex
	m     map[[HandleSize]byte]*openFile
	timer *time.Timer
}

func (c *openFiles) get(fh []byte) *openFile {
	if len(fh) != HandleSize {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.m[[HandleSize]byte(fh)]
	if f != nil {
		f.refs++
	}
	return f
}

// has reports whether fh is cached (and so authentic and a regular file).
func (c *openFiles) has(fh []byte) bool {
	if len(fh) != HandleSize {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[[HandleSize]byte(fh)] != nil
}

func (c *openFiles) put(f *openFile) {
	f.used.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	f.refs--
	if f.gone && f.refs == 0 {
		unix.Close(f.fd)
	}
}

// add caches f (with one reference for the caller), evicting the least
// recently used file when full. If fh is cached already, that entry wins
// and f's descriptor is closed.
func (c *openFiles) add(f *openFile) *openFile {
	f.used.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[HandleSize]byte]*openFile{}
	}
	if old := c.m[f.key]; old != nil {
		unix.Close(f.fd)
		old.refs++
		return old
	}
	if len(c.m) >= maxOpenFiles {
		var lru *openFile
		for _, o := range c.m {
			if lru == nil || o.used.Load() < lru.used.Load() {
				lru = o
			}
		}
		c.dropLocked(lru)
	}
	f.refs = 1
	c.m[f.key] = f
	if c.timer == nil {
		c.timer = time.AfterFunc(openFileIdle, c.sweep)
	} else if len(c.m) == 1 {
		c.timer.Reset(openFileIdle)
	}
	return f
}

func (c *openFiles) dropLocked(f *openFile) {
	if c.m[f.key] != f {
		return
	}
	delete(c.m, f.key)
	f.gone = true
	if f.refs == 0 {
		unix.Close(f.fd)
	}
}

// drop evicts f if it is still cached.
func (c *openFiles) drop(f *openFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(f)
}

// forget evicts the file id (removed or renamed over).
func (c *openFiles) forget(id FileID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.m {
		if f.id == id {
			c.dropLocked(f)
		}
	}
}

// sweep closes files idle for openFileIdle; it runs while any is open.
func (c *openFiles) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := time.Now().Add(-openFileIdle).UnixNano()
	for _, f := range c.m {
		if f.refs == 0 && f.used.Load() < old {
			c.dropLocked(f)
		}
	}
	if len(c.m) > 0 {
		c.timer.Reset(openFileIdle / 2)
	}
}

// Open reports how many files the cache holds open (for tests).
func (h *Handler) OpenFiles() int {
	h.files.mu.Lock()
	defer h.files.mu.Unlock()
	return len(h.files.m)
}

// Syncs is the number of fsyncs the data path made (for tests: an
// UNSTABLE WRITE makes none, COMMIT one).
func (h *Handler) Syncs() int64 { return h.syncs.Load() }

// open returns the cached file fh names, opening it (read-write if
// write) on a miss. The caller must release it with h.files.put.
func (h *Handler) open(fh []byte, write bool) (*openFile, error) {
	f := h.files.get(fh)
	if f == nil {
		id, err := h.codec.Decode(fh)
		if err != nil {
			return nil, err
		}
		fd, err := h.openID(id, write)
		if err != nil {
			return nil, err
		}
		f = h.files.add(&openFile{id: id, key: [HandleSize]byte(fh), fd: fd, rw: write})
	}
	if write && !f.rw {
		if err := h.upgrade(f); err != nil {
			h.files.put(f)
			return nil, err
		}
	}
	return f, nil
}

// upgrade reopens f read-write (the first WRITE to a file read before).
func (h *Handler) upgrade(f *openFile) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rw {
		return nil
	}
	fd, err := h.openID(f.id, true)
	if err != nil {
		return err
	}
	// Readers may be using the old descriptor: dup the new one over it
	// (atomic for them: the same file, now writable).
	if err := unix.Dup3(fd, f.fd, unix.O_CLOEXEC); err != nil {
		unix.Close(fd)
		return statusErr(err)
	}
	unix.Close(fd)
	f.rw = true
	return nil
}

// openID opens the regular file id names, never following a symlink at
// its last component. A write open of a file whose mode forbids nasd is
// retried as its owner (see exportFS.openAsOwner).
func (h *Handler) openID(id FileID, write bool) (int, error) {
	rel, ok := h.index.lookup(id)
	if !ok {
		return -1, ErrStale
	}
	p, err := h.fs.resolve(rel, false)
	if err != nil {
		return -1, ErrStale
	}
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, err := unix.Open(p, flags, 0)
	if write && err == unix.EACCES {
		fi, serr := os.Lstat(p)
		if serr == nil && fi.Mode().IsRegular() {
			err = fileid.AsOwner(p, fi, 0o200, func() error {
				var e error
				fd, e = unix.Open(p, flags, 0)
				return e
			})
		}
	}
	if err != nil {
		if err == unix.ENOENT || err == unix.ELOOP {
			return -1, ErrStale
		}
		return -1, statusErr(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = unix.EINVAL
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = unix.EISDIR
			}
		}
		return -1, statusErr(err)
	}
	// O_NONBLOCK kept a FIFO swapped in from blocking the open; on a
	// regular file it changes nothing (reads and writes never block on it).
	return fd, nil
}

// withFile runs fn on the open file fh names. A cached descriptor whose
// file lost its last name (replaced or removed behind nasd's back) is
// dropped and the handle resolved again.
func (h *Handler) withFile(fh []byte, write bool, fn func(f *openFile) error) error {
	for try := 0; ; try++ {
		f, err := h.open(fh, write)
		if err != nil {
			return err
		}
		err = fn(f)
		h.files.put(f)
		if err != errUnlinked {
			return err
		}
		h.files.drop(f)
		if try > 0 {
			return ErrStale
		}
	}
}

var errUnlinked = &handleError{70, "nfsfs: file removed"}

// statFD fills a from fd's attributes as clients see them (identity
// fileid, recorded owner); errUnlinked if the file has no name left.
func (h *Handler) statFD(f *openFile, a *fattr.Attr) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return statusErr(err)
	}
	if st.Nlink == 0 {
		return errUnlinked
	}
	var b [8]byte
	n, err := fgetxattr(f.fd, &ownerAttrZ[0], b[:])
	if err == unix.EACCES {
		// A mode that denies nasd reading (chmod 000): read as the owner.
		n, err = h.ownerByPath(f.id, b[:])
	}
	var recorded []byte
	if err == nil {
		recorded = b[:n]
	}
	h.opts.showOwner(&st, recorded)
	a.FromStat(&st, f.id.Number())
	return nil
}

func (h *Handler) ownerByPath(id FileID, b []byte) (int, error) {
	rel, ok := h.index.lookup(id)
	if !ok {
		return 0, ErrStale
	}
	p, err := h.fs.resolve(rel, false)
	if err != nil {
		return 0, err
	}
	return fileid.GetAttr(p, ownerAttr, b)
}

// ownerAttrZ is ownerAttr NUL-terminated, for fgetxattr without an
// allocation per call.
var ownerAttrZ = [...]byte{'u', 's', 'e', 'r', '.', 'n', 'a', 's', 'd', '.', 'o', 'w', 'n', 'e', 'r', 0}

func fgetxattr(fd int, name *byte, b []byte) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_FGETXATTR, uintptr(fd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Attr fills a with the attributes of the file fh names (NFSv3 GETATTR):
// from the open-file cache's descriptor when the file is open there (the
// files clients read and write), else by path, without opening it (a
// stat of many files would churn the cache: an open, fstat and close
// each).
func (h *Handler) Attr(fh []byte, a *fattr.Attr) error {
	if h.files.has(fh) {
		if err := h.withFile(fh, false, func(f *openFile) error { return h.statFD(f, a) }); err == nil {
			return nil
		}
	}
	id, err := h.codec.Decode(fh)
	if err != nil {
		return err
	}
	rel, ok := h.index.lookup(id)
	if !ok {
		return ErrStale
	}
	return h.statPath(id, rel, a)
}

// statPath fills a with the attributes, as clients see them, of the file
// id that the index found at rel: an lstat of its last component (the
// directories above resolved inside the export) and its recorded owner.
func (h *Handler) statPath(id FileID, rel string, a *fattr.Attr) error {
	p, err := h.fs.resolve(rel, false)
	if err != nil {
		return ErrStale
	}
	return h.statHost(id, p, a)
}

// statHost is statPath for the host path p.
func (h *Handler) statHost(id FileID, p string, a *fattr.Attr) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return ErrStale
	}
	var b [8]byte
	var recorded []byte
	if st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		if n, err := fileid.GetAttr(p, ownerAttr, b[:]); err == nil {
			recorded = b[:n]
		}
	}
	h.opts.showOwner(&st, recorded)
	a.FromStat(&st, id.Number())
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		h.dirs.add(id)
	}
	return nil
}

// ReadAt reads the file fh names at off into buf (NFSv3 READ) and fills a
// with its attributes after the read; eof says the read reached the end.
func (h *Handler) ReadAt(fh []byte, buf []byte, off uint64, a *fattr.Attr) (n int, eof bool, err error) {
	if off > 1<<63-1 {
		return 0, false, statusErr(syscall.EINVAL)
	}
	err = h.withFile(fh, false, func(f *openFile) error {
		n = 0
		for n < len(buf) {
			m, err := unix.Pread(f.fd, buf[n:], int64(off)+int64(n))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return statusErr(err)
			}
			if m == 0 {
				break
			}
			n += m
		}
		return h.statFD(f, a)
	})
	eof = err == nil && off+uint64(n) >= a.Size
	return n, eof, err
}

// WriteAt writes data at off into the file fh names (NFSv3 WRITE) and
// returns how stable the data now is: see the package's durability rule
// above. pre gets the attributes before the write, post those after.
func (h *Handler) WriteAt(fh []byte, data []byte, off uint64, stable uint32, pre, post *fattr.Attr) (committed uint32, err error) {
	if h.opts.ReadOnly {
		return 0, statusErr(syscall.EROFS)
	}
	if stable > fileSync {
		return 0, statusErr(syscall.EINVAL)
	}
	if off > 1<<63-1 || off+uint64(len(data)) > 1<<63-1 {
		return 0, &handleError{27, "nfsfs: write beyond the largest file"} // FBIG
	}
	err = h.withFile(fh, true, func(f *openFile) error {
		if err := h.wccFD(f, pre); err != nil {
			return err
		}
		if err := h.pwrite(f.fd, data, int64(off), h.opts.Sync && stable != unstable, stable == dataSync); err != nil {
			return err
		}
		return h.statFD(f, post)
	})
	return stable, err
}

// pwrite writes data at off; with sync, durable before it returns as
// knfsd makes a stable WRITE durable (RWF_SYNC: the written range and the
// metadata needed to read it back and, unless dataOnly, the rest of the
// inode (mtime); RWF_DSYNC for DATA_SYNC), in the same syscall. A kernel
// without pwritev2 flags gets pwrite and fsync (fdatasync).
func (h *Handler) pwrite(fd int, data []byte, off int64, sync, dataOnly bool) error {
	flags := 0
	if sync {
		h.syncs.Add(1)
		flags = unix.RWF_SYNC
		if dataOnly {
			flags = unix.RWF_DSYNC
		}
	}
	for n := 0; n < len(data); {
		var m int
		var err error
		if flags != 0 {
			m, err = unix.Pwritev2(fd, [][]byte{data[n:]}, off+int64(n), flags)
			if err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EINVAL {
				flags = 0
				continue
			}
		} else {
			m, err = unix.Pwrite(fd, data[n:], off+int64(n))
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return statusErr(err)
		}
		n += m
	}
	if sync && flags == 0 {
		h.syncs.Add(-1) // counted again by sync
		return h.sync(fd, dataOnly)
	}
	return nil
}

// wccFD fills a's pre-operation attributes (wcc_attr: size, mtime, ctime)
// from fd: no owner needed, so no xattr read.
func (h *Handler) wccFD(f *openFile, a *fattr.Attr) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return statusErr(err)
	}
	if st.Nlink == 0 {
		return errUnlinked
	}
	a.FromStat(&st, f.id.Number())
	return nil
}

// Flush makes the data written to the file fh names durable (NFSv3
// COMMIT): an fsync, which flushes every unstable write to the file,
// whichever descriptor made it. Async exports do not sync (knfsd's async
// COMMIT does not either).
func (h *Handler) Flush(fh []byte, pre, post *fattr.Attr) error {
	if h.opts.ReadOnly {
		return statusErr(syscall.EROFS)
	}
	return h.withFile(fh, false, func(f *openFile) error {
		if err := h.wccFD(f, pre); err != nil {
			return err
		}
		if h.opts.Sync {
			if err := h.sync(f.fd, false); err != nil {
				return err
			}
		}
		return h.statFD(f, post)
	})
}

func (h *Handler) sync(fd int, data bool) error {
	h.syncs.Add(1)
	var err error
	if data {
		err = unix.Fdatasync(fd)
	} else {
		err = unix.Fsync(fd)
	}
	return statusErr(err)
}

// Lookup answers NFSv3 LOOKUP of name in the directory dir as go-nfs
// (v0.0.4) does, without its reflection-based XDR and pipe: the handle of
// the entry (".": dir itself, "..": its parent), its attributes (a) and
// the directory's (da; known: read already, for the credential check).
// One lstat and the identity and owner xattrs per file.
func (h *Handler) Lookup(dir []byte, name string, a, da *fattr.Attr, known bool) ([]byte, error) {
	did, err := h.codec.Decode(dir)
	if err != nil {
		return nil, ErrStale
	}
	drel, ok := h.index.lookup(did)
	if !ok {
		return nil, ErrStale
	}
	if !known {
		if err := h.statPath(did, drel, da); err != nil {
			return nil, err
		}
	}
	if da.Type != fattr.TypeDir {
		return nil, statusErr(syscall.ENOTDIR)
	}
	var erel string
	switch name {
	case ".":
		*a = *da
		return dir, nil
	case "..":
		if drel == "" {
			return nil, statusErr(syscall.EACCES)
		}
		erel = path.Dir(drel)
		if erel == "." {
			erel = ""
		}
	default:
		erel = path.Join(drel, name)
	}
	p, err := h.fs.resolve(erel, false)
	if err != nil {
		return nil, statusErr(syscall.ENOENT)
	}
	rel := h.fs.rel(p)
	id, err := fileid.Get(h.root, rel)
	if err != nil {
		return nil, statusErr(syscall.ENOENT)
	}
	if err := h.statHost(id, p, a); err != nil {
		return nil, statusErr(syscall.ENOENT)
	}
	h.index.put(id, rel)
	return h.codec.Encode(id), nil
}

// Remove answers NFSv3 REMOVE of name in the directory dir as go-nfs does
// (an empty directory is removed too; errors NOENT, ACCES or IO), without
// the identity go-nfs gave the file first only to drop it: pre and post
// get the directory's attributes around the removal.
func (h *Handler) Remove(dir []byte, name string, pre, post *fattr.Attr) error {
	if h.opts.ReadOnly {
		return statusErr(syscall.EROFS)
	}
	did, err := h.codec.Decode(dir)
	if err != nil {
		return ErrStale
	}
	drel, ok := h.index.lookup(did)
	if !ok {
		return ErrStale
	}
	if len(name) > 255 {
		return &handleError{63, "nfsfs: name too long"}
	}
	dp, err := h.fs.resolve(drel, false)
	if err != nil {
		return goNFSStatus(err)
	}
	// pre is a wcc_attr (size and times): a plain lstat.
	var st syscall.Stat_t
	if err := syscall.Lstat(dp, &st); err != nil {
		return goNFSStatus(&os.PathError{Op: "lstat", Path: dp, Err: err})
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return statusErr(syscall.ENOTDIR)
	}
	pre.FromStat(&st, did.Number())
	if err := h.fs.Remove(path.Join(drel, name)); err != nil {
		return goNFSStatus(err)
	}
	return h.statHost(did, dp, post)
}

// goNFSStatus maps an error as go-nfs's REMOVE does.
func goNFSStatus(err error) error {
	switch {
	case os.IsNotExist(err):
		return &handleError{2, err.Error()}
	case os.IsPermission(err):
		return &handleError{13, err.Error()}
	}
	return &handleError{5, err.Error()}
}
