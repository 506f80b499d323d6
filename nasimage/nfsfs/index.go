package nfsfs

import (
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// handleIndex maps file identities back to paths. Every handle given out
// is recorded; a miss (a handle from before a restart, or a file created
// behind nasd's back) rebuilds the index by walking the export. Walks are
// spaced: 2 s apart, doubling up to a minute while walks find nothing
// new for the handles asked about, so that a client polling a deleted
// file cannot keep nasd walking the export.
type handleIndex struct {
	root string

	mu    sync.RWMutex
	paths map[FileID]string

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
	return &handleIndex{root: root, paths: map[FileID]string{IDOf(nil): ""}}
}

func (x *handleIndex) put(id FileID, path []string) {
	x.mu.RLock()
	_, ok := x.paths[id]
	x.mu.RUnlock()
	if ok {
		return
	}
	p := strings.Join(path, "/")
	x.mu.Lock()
	x.paths[id] = p
	x.mu.Unlock()
}

func (x *handleIndex) get(id FileID) (string, bool) {
	x.mu.RLock()
	p, ok := x.paths[id]
	x.mu.RUnlock()
	return p, ok
}

func (x *handleIndex) forget(id FileID) {
	if id == IDOf(nil) {
		return
	}
	x.mu.Lock()
	delete(x.paths, id)
	x.mu.Unlock()
}

func (x *handleIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.paths)
}

// lookup resolves id, walking the export on a miss.
func (x *handleIndex) lookup(id FileID) (string, bool) {
	if p, ok := x.get(id); ok {
		return p, true
	}
	x.walkMu.Lock()
	defer x.walkMu.Unlock()
	if p, ok := x.get(id); ok { // another caller's walk found it
		return p, true
	}
	if x.walkEvery == 0 {
		x.walkEvery = minWalkInterval
	}
	if time.Since(x.lastWalk) < x.walkEvery {
		return "", false
	}
	x.walk()
	p, ok := x.get(id)
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

// walk adds every path of the export to the index. It does not follow
// symlinks, so it never leaves the export.
func (x *handleIndex) walk() {
	found := map[FileID]string{}
	_ = filepath.WalkDir(x.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries just stay unknown
		}
		rel, err := filepath.Rel(x.root, p)
		if err != nil || rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		found[IDOf(strings.Split(rel, "/"))] = rel
		return nil
	})
	x.mu.Lock()
	for id, p := range found {
		x.paths[id] = p
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
