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

// DefaultExcludes are never synced: Windows Explorer and Office droppings and
// our own temp files.
var DefaultExcludes = []string{"Thumbs.db", "desktop.ini", "~$*", ".~lock.*#", "$RECYCLE.BIN", "System Volume Information"}

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
}

// unlisted records that the directory rel could not be listed: it vanished
// during the walk (left out), or err says why its subtree is unknown.
func (s *scanner) unlisted(rel string, err error) {
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
