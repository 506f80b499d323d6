//go:build linux && (amd64 || arm64)

package scan

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// sysScanner lists directories with getdents64 into buffers reused for the
// whole scan (one per depth, as a directory is listed completely before its
// subdirectories) and stats each entry with fstatat relative to the open
// directory, passing the NUL-terminated name straight from the getdents
// buffer. A rescan is mostly these two syscalls; this way the only
// allocation per entry is the path string the tree keeps (os.ReadDir and
// unix.Fstatat would add a DirEntry, a name and a C string per entry).
type sysScanner struct {
	bufs [][]byte // getdents64 records, by depth
	path []byte   // the path being built
}

// direntName is the offset of d_name in struct linux_dirent64 (d_ino 8,
// d_off 8, d_reclen 2, d_type 1).
const direntName = 19

func (s *scanner) dir(rel string) { s.dirAt(rel, 0) }

func (s *scanner) dirAt(rel string, depth int) {
	full := filepath.Join(s.root, filepath.FromSlash(rel))
	fd, err := openDir(full)
	if err != nil {
		s.unlisted(rel, &fs.PathError{Op: "open", Path: full, Err: err})
		return
	}
	defer unix.Close(fd)
	for len(s.sys.bufs) <= depth {
		s.sys.bufs = append(s.sys.bufs, make([]byte, 0, 64<<10))
	}
	buf := s.sys.bufs[depth][:0]
	for {
		if cap(buf)-len(buf) < 8<<10 {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := unix.Getdents(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			s.sys.bufs[depth] = buf
			s.unlisted(rel, &fs.PathError{Op: "readdirent", Path: full, Err: err})
			return
		}
		if n <= 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	s.sys.bufs[depth] = buf

	for off := 0; off+direntName < len(buf); {
		reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
		if reclen <= direntName || off+reclen > len(buf) {
			break // a malformed record: never loop on it or read past the data
		}
		ino := binary.NativeEndian.Uint64(buf[off:])
		rec := buf[off : off+reclen]
		off += reclen
		nameZ := rec[direntName:] // NUL-terminated
		nl := bytes.IndexByte(nameZ, 0)
		if nl < 0 {
			nl = len(nameZ)
		}
		nameB := nameZ[:nl]
		if ino == 0 || string(nameB) == "." || string(nameB) == ".." {
			continue // os.ReadDir skips these too
		}
		// name and p view the buffers: neither is kept (Excludes.Match,
		// IsTemp and found only read them; the tree gets its own copy of p).
		name := unsafe.String(&nameB[0], len(nameB))
		pb := s.sys.path[:0]
		if rel != "" {
			pb = append(append(pb, rel...), '/')
		}
		pb = append(pb, nameB...)
		s.sys.path = pb
		p := unsafe.String(&pb[0], len(pb))
		if IsTemp(name) {
			s.res.Temps = append(s.res.Temps, string(pb))
			continue
		}
		if s.ex.Match(p, name) {
			continue
		}
		var e reconcile.Entry
		if nl == len(nameZ) {
			continue // no terminator: cannot happen; never pass it to the kernel
		}
		var st unix.Stat_t
		if _, _, errno := unix.Syscall6(sysFstatat, uintptr(fd), uintptr(unsafe.Pointer(&nameZ[0])),
			uintptr(unsafe.Pointer(&st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0); errno != 0 {
			continue // vanished
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e = reconcile.Entry{Kind: reconcile.File, Mode: os.FileMode(st.Mode & 0o777), Size: st.Size,
				ModTime: st.Mtim.Nano()}
		case unix.S_IFDIR:
			e = reconcile.Entry{Kind: reconcile.Dir}
		case unix.S_IFLNK:
			e = reconcile.Entry{Kind: reconcile.Symlink}
		default:
			continue // a socket, device or fifo: not synced
		}
		if sub := s.found(p, e); sub != "" {
			s.dirAt(sub, depth+1)
		}
		if s.mismatch {
			return
		}
	}
}

// openDir opens a directory for getdents as os.Open would (no O_DIRECTORY:
// the same errors as before for a path that stopped being one).
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
