package sync

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// Root safety. Each side's root carries a marker file the engine writes
// (scan.MarkerName, holding a random identity); the ancestor records both
// identities and the export root's device and inode. The ancestor belongs to
// that pair of roots only:
//   - an export without its marker, or with another one, or another
//     directory (a new pod's new emptyDir next to an old state directory) is
//     not the copy the ancestor describes: the engine starts from no
//     ancestor, so nothing is deleted on either side and both are merged;
//   - a Windows root whose marker vanished or changed (the directory
//     emptied with its marker, replaced by another, or a minikube mount gone
//     and its empty mount point showing) is in doubt: the engine stops
//     syncing (no deletions, no copies either way) until the marker is back
//     or an operator puts scan.ResumeName in that root;
//   - a root that goes from N > 0 synced entries to none in one round (rm -rf
//     of its content, marker kept) propagates no deletions until it holds
//     something again or an operator puts scan.ResumeName in it.

// markerPrefix starts a marker file; the identity follows.
const markerPrefix = "nasd sync root, do not copy or edit: "

// root tracks the identity of one side's root directory.
type root struct {
	side reconcile.Side
	dir  string
	// id is the identity the ancestor belongs to ("" if the side has none:
	// its marker could not be written).
	id string
	// dev, ino identify the root directory when last checked; mstat is the
	// marker's stat then, so a round rereads the marker only if it changed.
	dev, ino uint64
	mstat    markerStat
	// lost says why the root is in doubt ("": it is ours).
	lost string
}

type markerStat struct {
	ino   uint64
	size  int64
	mtime int64
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readMarker returns the identity in dir's marker, "" if there is none.
func readMarker(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, scan.MarkerName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte(markerPrefix))
	if !ok || len(id) == 0 {
		return "", fmt.Errorf("%s: not a marker nasd wrote", filepath.Join(dir, scan.MarkerName))
	}
	return string(id), nil
}

// writeMarker writes dir's marker atomically (temp, fsync, rename).
func writeMarker(dir, id string) error {
	tmp := filepath.Join(dir, scan.TempPrefix+"marker-"+newID()[:8]+scan.TempSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(markerPrefix + id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, scan.MarkerName))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func statDir(dir string) (dev, ino uint64, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, err
	}
	if !fi.IsDir() {
		return 0, 0, fmt.Errorf("%s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, nil
	}
	return uint64(st.Dev), uint64(st.Ino), nil
}

func statMarker(dir string) (markerStat, error) {
	fi, err := os.Lstat(filepath.Join(dir, scan.MarkerName))
	if err != nil {
		return markerStat{}, err
	}
	ms := markerStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ms.ino = uint64(st.Ino)
	}
	return ms, nil
}

// check reports whether the root is still the one the ancestor belongs
// to, setting r.lost to the reason when not. Two stats in the common case.
func (r *root) check() {
	dev, ino, err := statDir(r.dir)
	if err != nil {
		r.lost = "root directory unusable: " + err.Error()
		return
	}
	if r.id == "" {
		r.dev, r.ino, r.lost = dev, ino, ""
		return
	}
	ms, err := statMarker(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		r.lost = "marker " + scan.MarkerName + " missing (directory emptied, replaced or not mounted)"
		return
	}
	if err != nil {
		r.lost = "marker unreadable: " + err.Error()
		return
	}
	if dev == r.dev && ino == r.ino && ms == r.mstat && r.lost == "" {
		return
	}
	id, err := readMarker(r.dir)
	switch {
	case err != nil:
		r.lost = "marker unreadable: " + err.Error()
	case id != r.id:
		r.lost = "marker of another sync root (directory replaced)"
	default:
		r.dev, r.ino, r.mstat, r.lost = dev, ino, ms, ""
	}
}

// resumeAsked reports whether an operator put scan.ResumeName in the root.
func (r *root) resumeAsked() bool {
	_, err := os.Lstat(filepath.Join(r.dir, scan.ResumeName))
	return err == nil
}

func (r *root) clearResume() error {
	err := os.Remove(filepath.Join(r.dir, scan.ResumeName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// adopt makes the root ours again (an operator asked): its marker is
// rewritten with the identity the ancestor belongs to.
func (r *root) adopt() error {
	if r.id != "" {
		if err := writeMarker(r.dir, r.id); err != nil {
			return err
		}
	}
	r.lost, r.mstat = "", markerStat{}
	r.check()
	if r.lost != "" {
		return errors.New(r.lost)
	}
	return nil
}
