package nfsfs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// Handler serves one exported directory to go-nfs. It implements
// nfs.Handler, nfs.CachingHandler (directory listings for READDIR paging)
// and what the RPC front door needs (Root, Check, Commit).
type Handler struct {
	root  string
	fs    *exportFS
	opts  Options
	codec *HandleCodec
	index *handleIndex
	lists listingCache[fs.FileInfo] // go-nfs's (without the front door)
	names listingCache[string]      // the front door's (List)
	files *openFiles
	dirs  dirSet
	syncs atomic.Int64
}

// NewHandler exports the directory root with opts; key is the handle
// secret (see LoadOrCreateKey).
func NewHandler(root string, opts Options, key []byte) (*Handler, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// Resolve the root itself once: BoundOS compares resolved paths.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("export %s: not a directory", root)
	}
	bound := osfs.New(abs, osfs.WithBoundOS())
	index := newHandleIndex(abs)
	files := &openFiles{}
	return &Handler{
		root:  abs,
		fs:    &exportFS{Filesystem: bound, root: abs, opts: opts, index: index, files: files},
		opts:  opts,
		codec: NewHandleCodec(key, opts.FSID),
		index: index,
		files: files,
	}, nil
}

// Filesystem is the confined filesystem go-nfs operates on.
func (h *Handler) Filesystem() billy.Filesystem { return h.fs }

// Mount is part of nfs.Handler; the front door answers MOUNT itself, so
// this is only reached when go-nfs is used directly.
func (h *Handler) Mount(context.Context, net.Conn, nfs.MountRequest) (nfs.MountStatus, billy.Filesystem, []nfs.AuthFlavor) {
	return nfs.MountStatusOk, h.fs, []nfs.AuthFlavor{nfs.AuthFlavorNull}
}

// Change returns nil for read-only exports: go-nfs then refuses SETATTR.
func (h *Handler) Change(billy.Filesystem) billy.Change {
	if h.opts.ReadOnly {
		return nil
	}
	return h.fs
}

// FSStat reports the export's filesystem usage.
func (h *Handler) FSStat(_ context.Context, _ billy.Filesystem, s *nfs.FSStat) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.root, &st); err != nil {
		return err
	}
	bs := uint64(st.Bsize)
	s.TotalSize, s.FreeSize, s.AvailableSize = st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
	s.TotalFiles, s.FreeFiles, s.AvailableFiles = st.Files, st.Ffree, st.Ffree
	return nil
}

// ToHandle returns the handle of the file at path: it names the file's
// identity (see package fileid), so it follows the file through renames
// and goes stale when the file is removed or replaced.
func (h *Handler) ToHandle(_ billy.Filesystem, path []string) []byte {
	rel, err := h.fs.physical(filepath.Join(path...))
	var id FileID
	if err == nil {
		// Get, not Peek: once a client holds the handle, the identity must
		// follow the file through renames nasd does not see.
		id, err = fileid.Get(h.root, rel)
	}
	if err != nil {
		// go-nfs asks only for files it just found; if it is gone already,
		// answer a handle that names nothing (STALE when used).
		return h.codec.Encode(fileid.New())
	}
	h.index.put(id, rel)
	return h.codec.Encode(id)
}

// FromHandle resolves a handle to a path where its file is. A handle that
// is forged, from another export, or names a file that no longer exists is
// an error, which go-nfs answers with NFS3ERR_STALE (the front door answers
// BADHANDLE for forged ones before go-nfs sees them).
func (h *Handler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	id, err := h.codec.Decode(fh)
	if err != nil {
		return nil, nil, err
	}
	p, ok := h.index.lookup(id)
	if !ok {
		return nil, nil, ErrStale
	}
	return h.fs, splitPath(p), nil
}

// InvalidateHandle is called by go-nfs after REMOVE and RENAME with the
// handle of the old name. Nothing to do: the filesystem's Remove and
// Rename keep the index (a renamed file keeps its handle).
func (h *Handler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }

// Type returns the type bits of the file fh names (rpc.Objects). A
// regular file is opened into the open-file cache: the calls that check
// the type of a file (READ, WRITE, COMMIT) use it next, and so do their
// credential check and attributes.
func (h *Handler) Type(fh []byte) (fs.FileMode, error) {
	if h.files.has(fh) {
		return 0, nil // only regular files are kept open
	}
	id, err := h.codec.Decode(fh)
	if err != nil {
		return 0, err
	}
	if h.dirs.has(id) {
		// An identity's type never changes; whether the directory still
		// exists, every procedure checks when it resolves the handle.
		return fs.ModeDir, nil
	}
	if f, err := h.open(fh, false); err == nil {
		h.files.put(f)
		return 0, nil
	}
	// Not a regular file (or gone): its type by path.
	rel, ok := h.index.lookup(id)
	if !ok {
		return 0, ErrStale
	}
	p, err := h.fs.resolve(rel, false)
	if err != nil {
		return 0, ErrStale
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return 0, ErrStale
	}
	t := typeBits(st.Mode)
	if t == fs.ModeDir {
		h.dirs.add(id)
	}
	return t, nil
}

// typeBits is the fs.FileMode type of a stat mode.
func typeBits(m uint32) fs.FileMode {
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	}
	return 0
}

// dirSet is a bounded set of identities known to be directories.
type dirSet struct {
	mu  sync.Mutex
	ids map[FileID]struct{}
}

func (d *dirSet) has(id FileID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.ids[id]
	return ok
}

func (d *dirSet) add(id FileID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil || len(d.ids) >= 4096 {
		d.ids = map[FileID]struct{}{}
	}
	d.ids[id] = struct{}{}
}

// IsRoot reports whether fh is the export root's handle (rpc.Objects).
func (h *Handler) IsRoot(fh []byte) bool {
	id, err := h.codec.Decode(fh)
	return err == nil && id == fileid.Root
}

// Link gives the file fh the name name in directory dir (NFSv3 LINK, for
// rpc.Objects). Both names then have the file's identity and handle.
func (h *Handler) Link(fh, dir []byte, name string) error {
	if h.opts.ReadOnly {
		return statusErr(syscall.EROFS)
	}
	_, from, err := h.FromHandle(fh)
	if err != nil {
		return err
	}
	_, to, err := h.FromHandle(dir)
	if err != nil {
		return err
	}
	if len(name) > nfs.PathNameMax {
		return &handleError{63, "nfsfs: name too long"}
	}
	return statusErr(h.fs.Link(filepath.Join(from...), filepath.Join(append(to, name)...)))
}

// HandleLimit is unbounded: handles are not cached state that could be
// evicted. (go-nfs uses half of it to bound READDIR answers.)
func (h *Handler) HandleLimit() int { return math.MaxInt32 }

// MountHandle is the handle of a directory clients mount: the export root
// (sub empty) or a directory below it, as NFS servers allow.
func (h *Handler) MountHandle(sub []string) ([]byte, error) {
	for _, c := range sub {
		if c == "" || c == "." || c == ".." {
			return nil, os.ErrNotExist
		}
	}
	if len(sub) > 0 {
		st, err := h.fs.Lstat(filepath.Join(sub...))
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, syscall.ENOTDIR
		}
	}
	return h.ToHandle(h.fs, sub), nil
}

// Check authenticates a handle without touching the filesystem.
func (h *Handler) Check(fh []byte) error {
	if h.files.has(fh) {
		return nil // decoded when it was opened
	}
	_, err := h.codec.Decode(fh)
	return err
}

// Commit makes a file's data durable (the rpc.Config.Commit hook, for a
// front door without the data path, where go-nfs writes: with `sync` each
// of its WRITEs is already durable). The data path's COMMIT is Flush.
func (h *Handler) Commit(fh []byte) error {
	if h.opts.Sync || h.opts.ReadOnly {
		return nil
	}
	_, path, err := h.FromHandle(fh)
	if err != nil {
		return nil // go-nfs answers STALE
	}
	f, err := h.fs.Filesystem.OpenFile(filepath.Join(path...), os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if s, ok := f.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// Warm indexes the whole export (in the caller's goroutine): call it in
// the background at start so that handles from before a restart resolve
// without waiting for a walk.
func (h *Handler) Warm() { h.index.warm() }

// Reindex walks the export again now, whatever the spacing of walks:
// call it when a worker has filled the export (the sync engine's initial
// copy into a new pod's empty export), so that handles clients took
// before resolve at once.
func (h *Handler) Reindex() { h.index.reindex() }

// Learn records the identity of the file at rel (slash-separated, in the
// export), which something other than an NFS call just put there (the sync
// engine's copies). Without it, a handle to that file would resolve only
// after the next walk of the export, which misses may not start more than
// every few seconds: until then the client is told STALE.
func (h *Handler) Learn(rel string) { h.index.learn(rel) }

// IndexSize is the number of handles the index knows (for tests and
// metrics).
func (h *Handler) IndexSize() int { return h.index.len() }

// VerifierFor remembers a directory listing so that the following READDIR
// pages (which carry the verifier) reuse it instead of re-reading and
// re-sorting the directory: paging a 100,000-entry directory stays linear.
func (h *Handler) VerifierFor(path string, contents []fs.FileInfo) uint64 {
	sum := sha256.New()
	sum.Write([]byte(path))
	for _, c := range contents {
		sum.Write([]byte(c.Name()))
		_ = binary.Write(sum, binary.BigEndian, c.ModTime().UnixNano())
	}
	v := binary.BigEndian.Uint64(sum.Sum(nil))
	h.lists.put(v, contents)
	return v
}

// DataForVerifier returns a listing remembered by VerifierFor.
func (h *Handler) DataForVerifier(_ string, v uint64) []fs.FileInfo { return h.lists.get(v) }

// listingCache keeps the last few directory listings.
type listingCache[E any] struct {
	mu      sync.Mutex
	entries [8]struct {
		v    uint64
		list []E
	}
	next int
}

func (c *listingCache[E]) put(v uint64, list []E) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.entries {
		if c.entries[i].v == v {
			c.entries[i].list = list
			return
		}
	}
	c.entries[c.next].v, c.entries[c.next].list = v, list
	c.next = (c.next + 1) % len(c.entries)
}

func (c *listingCache[E]) get(v uint64) []E {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.v == v && e.list != nil {
			return e.list
		}
	}
	return nil
}
