// Package scan reads one side of the sync (a directory tree) into a
// reconcile.Tree: a full scan is what decides what changed; watch events only
// say when to scan.
package scan

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// TempPrefix starts the names of the applier's temp files. Scans never report
// them as entries; a scan lists them in Result.Temps so a restarted engine
// can remove what a killed one left behind.
const (
	TempPrefix = ".nasd-sync-"
	TempSuffix = ".tmp"
)

// MarkerName is the file the engine keeps in each side's root to know the
// root is still the one its ancestor describes; ResumeName is the file an
// operator creates in a root to let a halted sync go on. Neither is synced.
// JournalName is the output sync's identity journal at the Windows root
// (see package sync); not synced either.
const (
	MarkerName  = ".nasd-sync-root"
	ResumeName  = ".nasd-sync-resume"
	JournalName = ".nasd-ids"
)

// DefaultExcludes are never synced: Windows Explorer and Office droppings and
// our own files (temp files are left out of scans separately).
var DefaultExcludes = []string{"Thumbs.db", "desktop.ini", "~$*", ".~lock.*#", "$RECYCLE.BIN", "System Volume Information",
	MarkerName, ResumeName, JournalName}

// Excludes matches paths not to sync. A pattern without '/' matches a name at
// any depth; one with '/' matches the whole relative path. Matching ignores
// case, as Windows does.
type Excludes struct {
	exact    map[string]bool // names without wildcards
	prefixes []string        // names of the form "prefix*"
	names    []string        // other name globs
	lits     []string        // each name glob's literal prefix (before its first metacharacter)
	paths    []string        // globs of whole relative paths
}

// NewExcludes validates the glob patterns (path.Match syntax).
func NewExcludes(patterns []string) (*Excludes, error) {
	ex := &Excludes{}
	for _, p := range patterns {
		p = strings.ToLower(strings.Trim(p, "/"))
		if p == "" {
			continue
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, errors.New("exclude pattern " + p + ": " + err.Error())
		}
		meta := strings.IndexAny(p, `*?[\\`)
		switch {
		case strings.Contains(p, "/"):
			ex.paths = append(ex.paths, p)
		case meta < 0:
			if ex.exact == nil {
				ex.exact = map[string]bool{}
			}
			ex.exact[p] = true
		case meta == len(p)-1 && p[meta] == '*':
			ex.prefixes = append(ex.prefixes, p[:meta])
		default:
			ex.names = append(ex.names, p)
			ex.lits = append(ex.lits, p[:meta])
		}
	}
	return ex, nil
}

// Match reports whether the entry at rel (with base name name) is excluded.
func (ex *Excludes) Match(rel, name string) bool {
	if ex == nil {
		return false
	}
	if ex.exact != nil || len(ex.prefixes) > 0 || len(ex.names) > 0 {
		name = strings.ToLower(name)
		if ex.exact[name] {
			return true
		}
		for _, p := range ex.prefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		for i, p := range ex.names {
			// A name without the glob's literal prefix cannot match: most
			// names are rejected without path.Match.
			if !strings.HasPrefix(name, ex.lits[i]) {
				continue
			}
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
	}
	if len(ex.paths) > 0 {
		rel = strings.ToLower(rel)
		for _, p := range ex.paths {
			if ok, _ := path.Match(p, rel); ok {
				return true
			}
		}
	}
	return false
}

// IsTemp reports whether name is one of the applier's temp files.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, TempPrefix) && strings.HasSuffix(name, TempSuffix)
}

// Result is one side's tree and what the scan could not see.
type Result struct {
	Tree reconcile.Tree
	// Temps are our temp files left by an interrupted copy.
	Temps []string
	// Unreadable maps directories that could not be listed to the error: their
	// subtree is unknown, not empty, and must not be read as deleted.
	Unreadable map[string]string
}

// Scan walks root. Entries that vanish during the walk are left out; root
// itself must exist. sizeHint (the previous scan's size) presizes the tree.
func Scan(root string, ex *Excludes, sizeHint int) (Result, error) {
	if _, err := os.Stat(root); err != nil {
		return Result{}, err
	}
	s := scanner{root: root, ex: ex, res: Result{Tree: make(reconcile.Tree, sizeHint), Unreadable: map[string]string{}}}
	s.dir("")
	return s.res, nil
}

type scanner struct {
	root string
	ex   *Excludes
	res  Result
	sys  sysScanner // the platform's directory reader

	// Set by Unchanged: compare each entry with the ancestor instead of
	// building a tree.
	anc      reconcile.Ancestor
	side     reconcile.Side
	matched  int   // entries equal to their ancestor entry
	mismatch bool  // an entry differs, is new, or a directory is unreadable: stop
	prev     *Walk // the last unchanged walk, while it stays in step with this one
	pos      int   // entries of prev met so far
	rec      *Walk // this walk, recorded once it left prev's order
}

// Walk is the order in which an Unchanged walk met a side's entries, with
// the ancestor's entry for each. Handed to the next Unchanged walk while the
// ancestor has not changed, it turns the ancestor lookup per entry (a random
// access into a map of 100,000 paths: about 1 us) into a comparison with the
// next entry of a slice: directory listings of an unchanged tree come in the
// same order. A walk that leaves that order falls back to lookups.
type Walk struct {
	paths  []byte // the paths, one after the other
	ents   []walkEntry
	ancLen int // len(anc) when recorded: a cheap guard against a changed ancestor
}

type walkEntry struct {
	end int // paths[previous end:end] is the path
	e   reconcile.Entry
}

func (w *Walk) path(i int) []byte {
	start := 0
	if i > 0 {
		start = w.ents[i-1].end
	}
	return w.paths[start:w.ents[i].end]
}

// prefix returns a copy of the first n entries, with room for size in all
// (appending would briefly hold two copies of a long walk).
func (w *Walk) prefix(n, size int) *Walk {
	end := 0
	if n > 0 {
		end = w.ents[n-1].end
	}
	r := &Walk{ents: make([]walkEntry, n, max(n, size)), paths: make([]byte, end, max(end, len(w.paths)))}
	copy(r.ents, w.ents)
	copy(r.paths, w.paths)
	return r
}

func (w *Walk) add(p string, e reconcile.Entry) {
	w.paths = append(w.paths, p...)
	w.ents = append(w.ents, walkEntry{end: len(w.paths), e: e})
}

// Unchanged walks root as Scan does but builds no tree: it reports whether
// the side is exactly what anc says it held after the last sync (every entry
// equal to the ancestor's entry for side, and no ancestor entry of side
// missing). It stops at the first difference. This is the cheap rescan of an
// unchanged tree: one stat per entry and nothing allocated for it, so a
// settled round costs the kernel's stat calls and little else; a caller that
// gets false scans again with Scan to plan.
//
// prev is the Walk a previous call returned, valid only while anc has not
// changed since (nil: none). When the side is unchanged the Walk to pass next
// time is returned.
func Unchanged(root string, ex *Excludes, anc reconcile.Ancestor, side reconcile.Side, prev *Walk) (bool, *Walk, error) {
	if _, err := os.Stat(root); err != nil {
		return false, nil, err
	}
	if prev != nil && prev.ancLen != len(anc) {
		prev = nil
	}
	s := scanner{root: root, ex: ex, anc: anc, side: side, prev: prev}
	if prev == nil {
		s.rec = &Walk{ents: make([]walkEntry, 0, len(anc))}
	}
	s.dir("")
	if s.mismatch {
		return false, nil, nil
	}
	if s.rec == nil { // in step with prev all the way
		if s.pos != len(prev.ents) {
			return false, nil, nil // entries gone
		}
		return true, prev, nil
	}
	want := 0
	for _, pr := range anc {
		if pr.Of(side).Kind != reconcile.Absent {
			want++
		}
	}
	if s.matched != want {
		return false, nil, nil
	}
	s.rec.ancLen = len(anc)
	return true, s.rec, nil
}

// found handles one scanned entry at p, which may view a buffer the walk
// reuses (a symlink's target is read here). It returns the path to walk into
// when e is a directory, else "". The platform walkers stop when s.mismatch
// is set.
func (s *scanner) found(p string, e reconcile.Entry) (sub string) {
	if e.Kind == reconcile.Symlink {
		var err error
		if e.Target, err = os.Readlink(filepath.Join(s.root, filepath.FromSlash(p))); err != nil {
			return "" // vanished
		}
	}
	if s.anc == nil {
		key := strings.Clone(p)
		s.res.Tree[key] = e
		if e.Kind == reconcile.Dir {
			return key
		}
		return ""
	}
	var want reconcile.Entry
	if s.rec == nil && s.pos < len(s.prev.ents) && string(s.prev.path(s.pos)) == p {
		want = s.prev.ents[s.pos].e
		s.pos++
	} else {
		if s.rec == nil { // out of step with prev: record from here on
			s.rec = s.prev.prefix(s.pos, len(s.anc))
		}
		pr, ok := s.anc[p]
		if !ok {
			s.mismatch = true
			return ""
		}
		want = pr.Of(s.side)
		s.rec.add(p, want)
	}
	if reconcile.Changed(want, e) {
		s.mismatch = true
		return ""
	}
	s.matched++
	if e.Kind == reconcile.Dir {
		return strings.Clone(p)
	}
	return ""
}

// unlisted records that the directory rel could not be listed: it vanished
// during the walk (left out), or err says why its subtree is unknown.
func (s *scanner) unlisted(rel string, err error) {
	if s.anc != nil {
		s.mismatch = true // a vanished or unreadable directory is a change
		return
	}
	if errors.Is(err, fs.ErrNotExist) && rel != "" {
		delete(s.res.Tree, rel)
		return
	}
	s.res.Unreadable[rel] = err.Error()
}

func entryOf(fi fs.FileInfo) (reconcile.Entry, bool) {
	e := reconcile.Entry{Mode: fi.Mode().Perm(), ModTime: fi.ModTime().UnixNano()}
	switch t := fi.Mode().Type(); {
	case t == 0:
		e.Kind, e.Size = reconcile.File, fi.Size()
	case t == fs.ModeDir:
		e.Kind, e.Mode, e.ModTime = reconcile.Dir, 0, 0
	case t == fs.ModeSymlink:
		e.Kind, e.Mode, e.ModTime = reconcile.Symlink, 0, 0
	default:
		return e, false
	}
	return e, true
}

// Stat returns the entry at rel under root as a scan would record it:
// Absent when nothing is there.
func Stat(root, rel string) (reconcile.Entry, error) {
	full := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return reconcile.Entry{}, nil
	}
	if err != nil {
		return reconcile.Entry{}, err
	}
	e, ok := entryOf(fi)
	if !ok {
		return reconcile.Entry{}, errors.New(full + ": not a file, directory or symlink")
	}
	if e.Kind == reconcile.Symlink {
		if e.Target, err = os.Readlink(full); err != nil {
			return reconcile.Entry{}, err
		}
	}
	return e, nil
}
