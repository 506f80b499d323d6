// Package watch turns inotify events on a directory tree into hints for the
// sync engine: "something changed, scan soon" and "this path is still being
// written". Events never decide what changed; the scan does. A lost event
// (queue overflow) asks for a scan and re-adds the watches.
package watch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// Watcher watches root and every directory below it.
type Watcher struct {
	root    string
	fw      *fsnotify.Watcher
	changed chan struct{}
	mu      sync.Mutex
	last    map[string]time.Time // relative path -> time of its last event
	// ours: paths the engine is about to rename into place (Expect), with
	// when the expectation lapses; the event of that rename is not a hint.
	ours map[string]time.Time
	errs chan error
}

// New starts watching root recursively.
func New(root string) (*Watcher, error) {
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, err
	}
	w := &Watcher{root: root, fw: fw, changed: make(chan struct{}, 1), last: map[string]time.Time{},
		ours: map[string]time.Time{}, errs: make(chan error, 1)}
	if err := w.addTree(root); err != nil {
		fw.Close()
		return nil, err
	}
	go w.loop()
	return w, nil
}

// Changed receives a value after events arrived (coalesced: one value stands
// for any number of events). A nil Watcher's channel never fires.
func (w *Watcher) Changed() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.changed
}

// Errors receives watch errors other than overflow (which only signals
// Changed). A nil Watcher's channel never fires.
func (w *Watcher) Errors() <-chan error {
	if w == nil {
		return nil
	}
	return w.errs
}

// Close stops watching.
func (w *Watcher) Close() error { return w.fw.Close() }

// expectFor bounds how long an expected event is waited for.
const expectFor = 10 * time.Second

// Expect says the engine is about to rename its own copy into place at rel
// (relative, slash-separated): the event that rename fires is the engine's,
// not an application still writing, so it marks nothing busy. A first sync
// of 100,000 files would otherwise hold 100,000 busy paths. Any other event
// for rel still counts. A nil Watcher ignores it.
func (w *Watcher) Expect(rel string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if len(w.ours) > 4096 {
		for p, t := range w.ours {
			if now.After(t) {
				delete(w.ours, p)
			}
		}
	}
	w.ours[rel] = now.Add(expectFor)
}

// Busy returns the paths that had an event less than quiet ago, and how long
// until the most recent of them goes quiet. Older entries are dropped.
func (w *Watcher) Busy(now time.Time, quiet time.Duration) (map[string]string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	busy := map[string]string{}
	var wait time.Duration
	for p, t := range w.last {
		age := now.Sub(t)
		if age >= quiet {
			delete(w.last, p)
			continue
		}
		busy[p] = "still being written"
		wait = max(wait, quiet-age)
	}
	return busy, wait
}

func (w *Watcher) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if err := w.fw.Add(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

func (w *Watcher) loop() {
	for {
		select {
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			w.event(ev)
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.overflowed()
				continue
			}
			select {
			case w.errs <- err:
			default:
			}
			w.signal()
		}
	}
}

// overflowed recovers from lost events: among them may be the creation of
// directories that therefore got no watch, so the whole tree is added again
// (adding a watched directory is harmless), and a scan is asked for.
func (w *Watcher) overflowed() {
	_ = w.addTree(w.root)
	w.signal()
}

func (w *Watcher) event(ev fsnotify.Event) {
	rel, err := filepath.Rel(w.root, ev.Name)
	if err != nil || strings.HasPrefix(rel, "..") {
		return
	}
	rel = filepath.ToSlash(rel)
	if scan.IsTemp(filepath.Base(rel)) {
		return // our own copy in progress
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// Watch the new directory and whatever appeared in it before the
			// watch did; the scan will find those files.
			_ = w.addTree(ev.Name)
		}
	}
	// Chmod (IN_ATTRIB) is a hint too: an NFS SETATTR that only changes the
	// mode or the mtime fires nothing else, and the engine trusts the
	// watched side's last read until an event.
	now := time.Now()
	w.mu.Lock()
	if until, ok := w.ours[rel]; ok && ev.Has(fsnotify.Create) {
		delete(w.ours, rel)
		if now.Before(until) {
			w.mu.Unlock()
			return // the engine's own rename into place
		}
	}
	w.last[rel] = now
	w.mu.Unlock()
	w.signal()
}
