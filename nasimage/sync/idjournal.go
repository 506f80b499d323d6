package sync

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// The identity journal. A pod replacement gives nasd a new, empty export
// that the sync fills again from Windows; a copied file gets the identity
// derived from its path, size and mtime (package fileid), the one it had
// before if it came from Windows unchanged. A file created over NFS had a
// random identity instead, and a file renamed or edited over NFS keeps the
// one it had: their handles, which applications keep open across the
// replacement, would answer STALE.
//
// So the output sync (the only role that copies NFS files to Windows)
// keeps, in scan.JournalName at the Windows root (the only storage that
// outlives the pod), every synced file and directory whose identity is
// not the one the derivation from its Windows copy would give: path ->
// identity, and for a file the Windows copy's size and mtime. It is
// rewritten (temp file, rename) when a round finds nothing to do after
// changes, and by the shutdown flush. A new export (no marker: a new pod)
// then gives a file it copies in from Windows the journal's identity when
// path, size and mtime still match exactly (a directory: when the path
// does); anything else, a file changed or replaced on Windows meanwhile
// included, gets the derived identity, so a handle never reaches another
// file. The journal lists only paths that exist on both sides.
//
// Input and backup roles neither write nor read it: files created over NFS
// there are not copied to Windows and do not outlive a pod replacement.

type journalFile struct {
	Version int                     `json:"version"`
	IDs     map[string]journalEntry `json:"ids"`
}

type journalEntry struct {
	ID      string `json:"id"` // hex
	Dir     bool   `json:"dir,omitempty"`
	Size    int64  `json:"size,omitempty"`
	ModTime int64  `json:"mtime,omitempty"` // Unix ns, of the Windows copy
}

const journalVersion = 1

// journalSpacing is the shortest time between two journal writes outside
// the shutdown flush (which a pod replacement runs: SIGTERM). The writes
// in between only matter when a pod dies without it (a node lost); each
// is a read of every synced path's identity and a rewrite of the file on
// the Windows share.
const journalSpacing = 30 * time.Second

// loadJournal reads the journal of the Windows root dir (none: empty).
func loadJournal(dir string) (map[string]journalEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, scan.JournalName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j journalFile
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", scan.JournalName, err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("%s: version %d", scan.JournalName, j.Version)
	}
	return j.IDs, nil
}

// journalKeep is apply.Applier.Keep for a new export: the journal's
// identity for a copy of the Windows entry src at rel, if it matches.
func journalKeep(j map[string]journalEntry) func(string, reconcile.Entry) (fileid.ID, bool) {
	return func(rel string, src reconcile.Entry) (fileid.ID, bool) {
		je, ok := j[rel]
		if !ok {
			return fileid.ID{}, false
		}
		switch {
		case je.Dir && src.Kind == reconcile.Dir:
		case !je.Dir && src.Kind == reconcile.File && src.Size == je.Size && src.ModTime == je.ModTime:
		default:
			return fileid.ID{}, false
		}
		var id fileid.ID
		if b, err := hex.DecodeString(je.ID); err != nil || len(b) != len(id) {
			return fileid.ID{}, false
		} else {
			copy(id[:], b)
		}
		return id, true
	}
}

// journalVouches drops from busy (Windows files that look still changing)
// those the journal a new export started from names with exactly their
// size and mtime: the old pod's shutdown flush wrote them a moment ago,
// which is why their mtime is recent, and no one has changed them since.
// Waiting for them to look stable would let clients in before the files
// whose handles they hold are back in the export.
func (e *Engine) journalVouches(busy map[string]string, t reconcile.Tree) {
	if len(e.startIDs) == 0 {
		return
	}
	keep := journalKeep(e.startIDs)
	for p := range busy {
		if _, ok := keep(p, t[p]); ok {
			delete(busy, p)
		}
	}
}

// journalWaiting calls f for each entry of the journal the export started
// from whose path is not synced yet and whose Windows copy still matches.
func (e *Engine) journalWaiting(f func(p string, je journalEntry)) {
	keep := journalKeep(e.startIDs)
	for p, je := range e.startIDs {
		if _, synced := e.anc[p]; synced {
			continue
		}
		if w, err := scan.Stat(e.cfg.WindowsDir, p); err == nil {
			if _, ok := keep(p, w); ok {
				f(p, je)
			}
		}
	}
}

// journalPending counts the journal's files and directories a new export
// still waits for (journalWaiting).
func (e *Engine) journalPending() int {
	n := 0
	e.journalWaiting(func(string, journalEntry) { n++ })
	return n
}

// journal builds the journal from the ancestor: the synced paths, present
// on both sides as recorded, whose export identity is not the derived one.
func (e *Engine) journal() map[string]journalEntry {
	ids := map[string]journalEntry{}
	for p, pr := range e.anc {
		var want fileid.ID
		switch {
		case pr.Windows.Kind == reconcile.File && pr.NFS.Kind == reconcile.File:
			want = fileid.DerivedFile(p, pr.Windows.Size, pr.Windows.ModTime)
		case pr.Windows.Kind == reconcile.Dir && pr.NFS.Kind == reconcile.Dir:
			want = fileid.DerivedDir(p)
		default:
			continue // symlinks' identities are derived from their targets
		}
		id, err := fileid.Peek(e.cfg.NFSDir, p)
		if err != nil || id == want {
			continue
		}
		w, err := scan.Stat(e.cfg.WindowsDir, p)
		if err != nil || w.Kind != pr.Windows.Kind || w.Kind == reconcile.File && (w.Size != pr.Windows.Size || w.ModTime != pr.Windows.ModTime) {
			continue // changed on Windows since: the next round syncs it
		}
		je := journalEntry{ID: hex.EncodeToString(id[:]), Dir: w.Kind == reconcile.Dir}
		if !je.Dir {
			je.Size, je.ModTime = w.Size, w.ModTime
		}
		ids[p] = je
	}
	// Entries of the journal this export started from whose files are not
	// copied yet (a copy failed or waits, or the pod stops during its
	// initial sync) stay while their Windows copy matches.
	e.journalWaiting(func(p string, je journalEntry) {
		if _, err := os.Lstat(filepath.Join(e.cfg.NFSDir, filepath.FromSlash(p))); errors.Is(err, fs.ErrNotExist) {
			ids[p] = je
		}
	})
	return ids
}

// writeJournal rewrites the journal (output role) if identities may have
// changed since the last write; force ignores journalSpacing.
func (e *Engine) writeJournal(force bool) error {
	if e.cfg.Role != reconcile.Output || !e.idsDirty || !force && time.Since(e.journalWritten) < journalSpacing {
		return nil
	}
	if e.win.lost != "" || e.nfs.lost != "" {
		return nil // a root in doubt: not the directory to write to
	}
	j := journalFile{Version: journalVersion, IDs: e.journal()}
	dir := e.cfg.WindowsDir
	if _, err := os.Lstat(filepath.Join(dir, scan.JournalName)); len(j.IDs) == 0 && errors.Is(err, fs.ErrNotExist) {
		e.idsDirty, e.journalWritten = false, time.Now() // nothing to keep
		return nil
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, scan.TempPrefix+"ids-"+newID()[:8]+scan.TempSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("identity journal: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, scan.JournalName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("identity journal: %w", err)
	}
	e.idsDirty, e.journalWritten = false, time.Now()
	// The export uses the journal it started from for copies still to
	// come only.
	e.startIDs = map[string]journalEntry{}
	for p, je := range j.IDs {
		if _, synced := e.anc[p]; !synced {
			e.startIDs[p] = je
		}
	}
	if len(e.startIDs) == 0 {
		e.ap.Keep, e.startIDs = nil, nil
	} else {
		e.ap.Keep = journalKeep(e.startIDs)
	}
	return nil
}
