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
	"strings"
	"syscall"
	"time"

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

// open loads the ancestor and identifies both roots (root.go): an ancestor
// is kept only if the export is the copy it describes; a Windows root that
// is not the one it describes halts the sync until it is back.
func (e *Engine) open() error {
	e.opened = true
	anc, h, err := loadAncestor(e.cfg.StateDir, e.cfg.WindowsDir, e.cfg.NFSDir)
	if err != nil {
		e.log.Warn("ancestor unreadable, starting from scratch", "err", err)
		anc, h = reconcile.Ancestor{}, stateHeader{}
	}
	e.win = root{side: reconcile.Windows, dir: e.cfg.WindowsDir}
	e.nfs = root{side: reconcile.NFS, dir: e.cfg.NFSDir}

	// The export first: an ancestor without the export copy it describes
	// reads as "everything was deleted over NFS".
	nfsID, merr := readMarker(e.cfg.NFSDir)
	dev, ino, err := statDir(e.cfg.NFSDir)
	if err != nil {
		return fmt.Errorf("sync: export: %w", err)
	}
	if len(anc) > 0 {
		why := ""
		switch {
		case merr != nil:
			why = merr.Error()
		case nfsID == "":
			why = "the export has no " + scan.MarkerName + " (a new, empty export: a new pod)"
		case nfsID != h.NFSID:
			why = "the export's marker is another export's"
		case dev != h.NFSDev || ino != h.NFSIno:
			why = "the export is another directory (device or inode differ)"
		}
		if why != "" {
			e.log.Warn("the saved ancestor does not describe this export: starting from no ancestor (both sides are merged, nothing is deleted)",
				"reason", why, "ancestor_paths", len(anc))
			anc = reconcile.Ancestor{}
		}
	}
	if len(anc) == 0 {
		if nfsID == "" && merr == nil && e.cfg.Role == reconcile.Output {
			// A new export (a new pod): files copied in from Windows get
			// the identities the journal kept (idjournal.go).
			switch j, err := loadJournal(e.cfg.WindowsDir); {
			case err != nil:
				e.log.Warn("identity journal unreadable; files created over NFS get new handles", "err", err)
			case len(j) > 0:
				e.startIDs, e.ap.Keep = j, journalKeep(j)
				e.log.Info("new export: keeping identities from the journal", "paths", len(j))
			}
		}
		// A new pair of roots: the export gets a new identity.
		nfsID = newID()
		if err := writeMarker(e.cfg.NFSDir, nfsID); err != nil {
			e.log.Warn("cannot write the export's root marker; a restart will not trust the ancestor", "err", err)
			nfsID = ""
		}
		e.ancChanged = true // save the new identities
	}
	e.nfs.id = nfsID

	if len(anc) > 0 && h.WindowsID != "" {
		e.win.id = h.WindowsID // check() finds out whether it is still there
	} else {
		id, err := readMarker(e.cfg.WindowsDir)
		if err != nil || id == "" {
			id = newID()
			if err := writeMarker(e.cfg.WindowsDir, id); err != nil {
				e.log.Warn("cannot write the Windows root marker; an emptied Windows directory is still caught, a replaced one is not", "err", err)
				id = ""
			}
		}
		e.win.id = id
		e.ancChanged = true
	}
	e.anc = anc
	e.clocks = map[reconcile.Side]sideClock{}
	for _, r := range []*root{&e.win, &e.nfs} {
		c := probeClock(r.dir)
		if g := e.cfg.Granularity[r.side]; g > 0 {
			c.granularity = g
		}
		e.clocks[r.side] = c
		e.log.Info("file timestamps", "side", r.side.String(), "granularity", c.granularity, "clock_offset", c.offset.Round(time.Millisecond))
	}
	e.findRacy()
	e.checkRoots()
	return nil
}

// header names the roots the ancestor belongs to.
func (e *Engine) header() stateHeader {
	return stateHeader{Windows: e.cfg.WindowsDir, NFS: e.cfg.NFSDir, WindowsID: e.win.id, NFSID: e.nfs.id,
		NFSDev: e.nfs.dev, NFSIno: e.nfs.ino}
}

// checkRoots checks both roots' identities and reports whether the sync may
// go on. A root in doubt halts it (nothing planned) until the root is back
// or an operator puts scan.ResumeName in it.
func (e *Engine) checkRoots() bool {
	ok := true
	for _, r := range []*root{&e.win, &e.nfs} {
		r.check()
		if r.lost != "" && r.resumeAsked() {
			was := r.lost
			if err := r.adopt(); err != nil {
				e.log.Warn("asked to resume, but the root is still unusable", "side", r.side.String(), "err", err)
			} else {
				e.log.Warn("resuming on operator request: the root is taken as the one the ancestor describes", "side", r.side.String(), "was", was)
				if err := r.clearResume(); err != nil {
					e.log.Warn("removing the resume file", "err", err)
				}
			}
		}
		if r.lost != "" {
			ok = false
			e.setProblem(r.side, "root in doubt: "+r.lost)
		} else if strings.HasPrefix(e.problems[r.side], "root in doubt") {
			e.log.Info("sync root is back", "side", r.side.String())
			e.setProblem(r.side, "")
		}
	}
	return ok
}

// setProblem records why side halts the sync ("" clears it) and reports the
// change: log, the halted gauge, Config.Health.
func (e *Engine) setProblem(s reconcile.Side, why string) {
	if e.problems[s] == why {
		return
	}
	if why != "" {
		e.log.Error("sync halted", "side", s.String(), "reason", why,
			"resume", "restore the root, or create "+scan.ResumeName+" in it")
	}
	e.problems[s] = why
	v := 0.0
	if why != "" {
		v = 1
	}
	e.m.halted.WithLabelValues(s.String()).Set(v)
	var all []string
	for _, side := range []reconcile.Side{reconcile.Windows, reconcile.NFS} {
		if p := e.problems[side]; p != "" {
			all = append(all, side.String()+" "+p)
		}
	}
	if h := strings.Join(all, "; "); h != e.health {
		e.health = h
		if e.cfg.Health != nil {
			e.cfg.Health(h)
		}
	}
}

// holdEmptied returns the sides whose tree went from synced entries to none
// in one round: their absences are not propagated (reconcile.State.Hold)
// unless an operator put scan.ResumeName in the root. That answer holds
// until the side is no longer emptied (its deletions applied, or something
// new in it), so a round that skipped a busy path does not halt again.
// A side represented by the ancestor is never empty unless the ancestor is.
func (e *Engine) holdEmptied(ws, ns reconcile.Tree) reconcile.SideSet {
	var hold reconcile.SideSet
	for _, c := range []struct {
		r *root
		t reconcile.Tree
	}{{&e.win, ws}, {&e.nfs, ns}} {
		s := c.r.side
		emptied := len(c.t) == 0 && e.ancHolds(s)
		if emptied && !e.acceptEmpty[s] && c.r.resumeAsked() {
			e.log.Warn("resuming on operator request: the emptied root's deletions propagate", "side", s.String())
			e.acceptEmpty[s] = true
			if err := c.r.clearResume(); err != nil {
				e.log.Warn("removing the resume file", "err", err)
			}
		}
		switch {
		case emptied && e.acceptEmpty[s]:
			e.setProblem(s, "")
		case emptied:
			hold |= reconcile.Sides(s)
			e.setProblem(s, "root emptied in one round: its deletions are not propagated")
		default:
			e.acceptEmpty[s] = false
			if strings.HasPrefix(e.problems[s], "root emptied") {
				e.setProblem(s, "")
			}
		}
	}
	return hold
}

// ancHolds reports whether the ancestor has any entry on side s.
func (e *Engine) ancHolds(s reconcile.Side) bool {
	for _, pr := range e.anc {
		if pr.Of(s).Kind != reconcile.Absent {
			return true
		}
	}
	return false
}
