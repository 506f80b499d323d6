// Package reconcile is the pure core of the sync engine: given the ancestor
// (what both sides looked like after the last sync), the Windows tree and the
// NFS tree, and the role's policy, it returns the actions that bring the two
// sides together. It does no I/O: every input and output is a literal value,
// so every case can be tested with a table.
package reconcile

import (
	"io/fs"
	"path"
	"strings"
)

// Kind is what a path is on one side.
type Kind uint8

const (
	Absent Kind = iota
	File
	Dir
	Symlink
)

func (k Kind) String() string {
	switch k {
	case Absent:
		return "absent"
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return "kind?"
}

// Entry is the metadata of one path on one side, as a scan saw it.
type Entry struct {
	Kind    Kind
	Mode    fs.FileMode // permission bits only
	Size    int64
	ModTime int64  // Unix nanoseconds
	Target  string // symlink target
}

// Tree maps a slash-separated path relative to the side's root ("a/b.txt";
// the root itself is not in the tree) to its entry. A tree is consistent: the
// parent of every entry is a Dir entry of the same tree.
type Tree map[string]Entry

// Pair is what one path looked like on each side right after it was synced.
// Keeping both sides (rather than one merged entry) means a copy is never
// mistaken for a change even when the destination rounds timestamps (FAT: 2 s)
// or ignores modes (9p, SMB): "changed" always compares a side with itself.
type Pair struct {
	Windows Entry
	NFS     Entry
	// Synced is when the entries were read (Unix ns, the engine's clock):
	// an mtime within a timestamp tick of it is not trusted (racy).
	Synced int64
}

// Of returns the side's entry.
func (p Pair) Of(s Side) Entry {
	if s == Windows {
		return p.Windows
	}
	return p.NFS
}

// Ancestor is the last synced state: the paths both sides held, and how.
type Ancestor map[string]Pair

// Tree returns what the ancestor says side s held: the tree a scan of an
// unchanged side would give (scan.Unchanged checks that it is).
func (a Ancestor) Tree(s Side) Tree {
	t := make(Tree, len(a))
	for p, pr := range a {
		if e := pr.Of(s); e.Kind != Absent {
			t[p] = e
		}
	}
	return t
}

// Side names one of the two trees.
type Side uint8

const (
	Windows Side = iota + 1
	NFS
)

func (s Side) String() string {
	switch s {
	case Windows:
		return "windows"
	case NFS:
		return "nfs"
	}
	return "side?"
}

// SideSet is a set of sides.
type SideSet uint8

// Sides returns the set of the given sides.
func Sides(ss ...Side) SideSet {
	var set SideSet
	for _, s := range ss {
		set |= 1 << s
	}
	return set
}

// Has reports whether s is in the set.
func (set SideSet) Has(s Side) bool { return set&(1<<s) != 0 }

// Other returns the opposite side.
func (s Side) Other() Side {
	if s == Windows {
		return NFS
	}
	return Windows
}

// Changed reports whether cur differs from the same side's entry at the last
// sync. Directories compare by kind only: their mtime moves with every child
// and their mode is not synced.
func Changed(old, cur Entry) bool {
	if old.Kind != cur.Kind {
		return true
	}
	switch cur.Kind {
	case File:
		return old.Size != cur.Size || old.ModTime != cur.ModTime || old.Mode != cur.Mode
	case Symlink:
		return old.Target != cur.Target
	}
	return false
}

// MtimeTolerance is how far apart two file mtimes may be and still count as
// the same version when there is no ancestor to say so (FAT-like shares keep
// 2 s granularity).
const MtimeTolerance = int64(2e9)

// SameContent reports whether the Windows and NFS entries hold the same
// version, judged without reading content: same kind, and for files the same
// size and mtimes within MtimeTolerance (we set the destination's mtime on
// every copy), for symlinks the same target.
func SameContent(a, b Entry) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case File:
		d := a.ModTime - b.ModTime
		return a.Size == b.Size && d <= MtimeTolerance && d >= -MtimeTolerance
	case Symlink:
		return a.Target == b.Target
	}
	return true
}

// Parent returns the parent path of p, "" for a top-level entry.
func Parent(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// Under reports whether p is dir or lies below it.
func Under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
