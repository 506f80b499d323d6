package sync

import (
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// stability decides when a changed file on a side without inotify (the
// Windows share) has stopped changing, so that a file still being written
// is never copied under its real name: its entry (size, mtime, mode) must
// be the same in two scans at least the quiet period apart. A file whose
// mtime is older than the quiet period plus the side's granularity and
// clock margin is stable at first sight: a writer that pauses for less than
// the quiet period keeps its mtime newer than that. (A program that sets a
// file's mtime into the past while it is still writing it defeats the
// shortcut; the copy's final check of the source still refuses a copy
// during which the file changed.)
type stability struct {
	seen map[string]sighting
}

type sighting struct {
	e  reconcile.Entry
	at time.Time
}

// check returns the paths of side s (tree t, read at now) that changed since
// the ancestor but are not yet stable, and how long until the first of them
// may be.
func (st *stability) check(t reconcile.Tree, anc reconcile.Ancestor, s reconcile.Side, c *reconcile.Census,
	clock sideClock, now time.Time, quiet time.Duration) (map[string]string, time.Duration) {
	old := now.Add(-quiet - clock.granularity - clockMargin).Add(clock.offset).UnixNano()
	next := map[string]sighting{}
	busy := map[string]string{}
	var wait time.Duration
	look := func(p string, e reconcile.Entry) {
		if e.Kind != reconcile.File || e.ModTime < old {
			return
		}
		if pr, ok := anc[p]; ok && !reconcile.Changed(pr.Of(s), e) {
			return
		}
		sg, ok := st.seen[p]
		if ok && sg.e == e && now.Sub(sg.at) >= quiet {
			return // the same in two scans a quiet period apart
		}
		if !ok || sg.e != e {
			sg = sighting{e: e, at: now}
		}
		next[p] = sg
		busy[p] = "still changing (not the same in two scans " + quiet.String() + " apart)"
		if w := quiet - now.Sub(sg.at); wait == 0 || w < wait {
			wait = w
		}
	}
	if c != nil && !c.Overflow && c.Exact(s, t) {
		st.seen = nil
		return nil, 0
	}
	if c != nil && !c.Overflow && seenOf(c, s) == len(t) {
		// No new paths: only the changed ones can be unstable.
		for _, p := range c.Changed {
			if e, ok := t[p]; ok {
				look(p, e)
			}
		}
	} else {
		for p, e := range t {
			look(p, e)
		}
	}
	st.seen = next
	return busy, wait
}

func seenOf(c *reconcile.Census, s reconcile.Side) int {
	if s == reconcile.Windows {
		return c.SeenWindows
	}
	return c.SeenNFS
}
