package scan

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// statter stats entries relative to their open directory (fstatat): one
// path component to resolve instead of the whole path, and no FileInfo to
// allocate. A rescan is mostly these calls.
type statter struct{ fd int }

func (s *statter) open(d *os.File) { s.fd = int(d.Fd()) }

func (s *statter) entry(_ *os.File, name string) (reconcile.Entry, bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(s.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return reconcile.Entry{}, false, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return reconcile.Entry{Kind: reconcile.File, Mode: os.FileMode(st.Mode & 0o777), Size: st.Size,
			ModTime: st.Mtim.Nano()}, true, nil
	case unix.S_IFDIR:
		return reconcile.Entry{Kind: reconcile.Dir}, true, nil
	case unix.S_IFLNK:
		return reconcile.Entry{Kind: reconcile.Symlink}, true, nil
	}
	return reconcile.Entry{}, false, nil
}
