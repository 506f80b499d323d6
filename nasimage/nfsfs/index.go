package nfsfs

import (
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// handleIndex maps file identities to the paths where they were last seen
// (a file with hard links has several). It is a hint: every answer is
// checked against the file's identity on disk (fileid.Get) before use,
// and wrong ones are dropped. nasd's own renames and removes update it; a
// miss (a handle from before a restart, a file moved behind nasd's back)
// rebuilds it by walking the export. Walks are spaced: 2 s apart,
// doubling up to a minute while walks find nothing new for the handles
// asked about, so that a client polling a deleted file cannot keep nasd
// walking the export.
type handleIndex struct {
	root string

	mu    sync.RWMutex
	paths map[fileid.ID][]string

	walkMu    sync.Mutex
	lastWalk  time.Time
	walkEvery time.Duration
	walks     int
}

const (
	minWalkInterval = 2 * time.Second
	maxWalkInterval = time.Minute
)

func newHandleIndex(root string) *handleIndex {
	return &handleIndex{root: root, paths: map[fileid.ID][]string{fileid.Root: {""}}}
}

// put records that id was seen at p.
func (x *handleIndex) put(id fileid.ID, p string) {
	x.mu.RLock()
	ps := x.paths[id]
	if len(ps) > 0 && ps[0] == p {
		x.mu.RUnlock()
		return
	}
	x.mu.RUnlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	ps = x.paths[id]
	for i, q := range ps {
		if q == p {
			// Most recently seen first.
			ps[0], ps[i] = ps[i], ps[0]
			return
		}
	}
	x.paths[id] = append([]string{p}, ps...)
}

// learn records the identity of the file at p, if it has one.
func (x *handleIndex) learn(p string) {
	if id, err := fileid.Peek(x.root, p); err == nil {
		x.put(id, p)
	}
}

// drop forgets that id is at p.
func (x *handleIndex) drop(id fileid.ID, p string) {
	if id == fileid.Root {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	ps := x.paths[id]
	for i, q := range ps {
		if q == p {
			ps = append(ps[:i:i], ps[i+1:]...)
			break
		}
	}
	if len(ps) == 0 {
		delete(x.paths, id)
	} else {
		x.paths[id] = ps
	}
}

// renamed records a rename by nasd of from to to (id is what was renamed):
// it and, for a directory, everything below it moved.
func (x *handleIndex) renamed(id fileid.ID, from, to string, dir bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ps := x.paths[id]
	moved := false
	for i, q := range ps {
		if q == from {
			ps[i], moved = to, true
		}
	}
	if !moved {
		x.paths[id] = append([]string{to}, ps...)
	}
	if !dir {
		return
	}
	prefix := from + "/"
	for k, ps := range x.paths {
		for i, q := range ps {
			if strings.HasPrefix(q, prefix) {
				x.paths[k][i] = to + "/" + q[len(prefix):]
			}
		}
	}
}

func (x *handleIndex) candidates(id fileid.ID) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]string(nil), x.paths[id]...)
}

func (x *handleIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.paths)
}

// check returns the first known path of id where id is found, dropping
// the ones where it is not.
func (x *handleIndex) check(id fileid.ID) (string, bool) {
	for _, p := range x.candidates(id) {
		// fileid.Is keeps a derived identity with the file from now on: a
		// client uses the handle, so it must follow the file.
		if fileid.Is(x.root, p, id) {
			return p, true
		}
		x.drop(id, p)
	}
	return "", false
}

// lookup resolves id to a path where the file is, walking the export on a
// miss.
func (x *handleIndex) lookup(id fileid.ID) (string, bool) {
	if p, ok := x.check(id); ok {
		return p, true
	}
	x.walkMu.Lock()
	defer x.walkMu.Unlock()
	if p, ok := x.check(id); ok { // another caller's walk found it
		return p, true
	}
	if x.walkEvery == 0 {
		x.walkEvery = minWalkInterval
	}
	if time.Since(x.lastWalk) < x.walkEvery {
		return "", false
	}
	x.walk()
	p, ok := x.check(id)
	if ok {
		x.walkEvery = minWalkInterval
	} else {
		x.walkEvery = min(2*x.walkEvery, maxWalkInterval)
	}
	return p, ok
}

// warm walks the export once, so that the first calls after a restart do
// not wait for it.
func (x *handleIndex) warm() {
	x.walkMu.Lock()
	defer x.walkMu.Unlock()
	if x.walks == 0 {
		x.walk()
	}
}

func (x *handleIndex) reindex() {
	x.walkMu.Lock()
	defer x.walkMu.Unlock()
	x.walk()
	x.walkEvery = minWalkInterval
}

// walk records the identity of every file of the export (derived ones
// are not kept on disk: see fileid.Peek). It does not follow symlinks, so
// it never leaves the export.
func (x *handleIndex) walk() {
	found := map[fileid.ID][]string{}
	_ = filepath.WalkDir(x.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries just stay unknown
		}
		rel, err := filepath.Rel(x.root, p)
		if err != nil || rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if id, err := fileid.Peek(x.root, rel); err == nil {
			found[id] = append(found[id], rel)
		}
		return nil
	})
	x.mu.Lock()
	for id, ps := range found {
		x.paths[id] = ps
	}
	x.mu.Unlock()
	x.lastWalk = time.Now()
	x.walks++
}

func splitPath(p string) []string {
	if p == "" {
		return []string{}
	}
	return strings.Split(p, "/")
}
