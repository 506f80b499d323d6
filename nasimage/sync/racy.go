package sync

import (
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// Racy timestamps (git's "racily clean" index entries). A change is seen by
// its metadata (kind, size, mtime, mode); a same-size edit within one tick of
// the side's timestamp granularity after the entry was recorded (FAT and
// exFAT keep 2 s, SMB shares may be coarser) leaves all of them as they
// were. So an entry whose mtime is within a tick of the time it was recorded
// (Pair.Synced) is not trusted as unchanged: once its tick has passed, the
// engine compares the two sides' contents, and a side whose content no
// longer matches the other is planned as changed (reconcile.State.Dirty).
// The remaining limit: a same-size edit that keeps the mtime of a tick
// already over (a program that restores the old mtime) is not seen; nor is
// one on a share whose clock is more than a tick and racyMargin off ours
// after the probe (clock.go).

// racyMargin widens a Windows tick for what the probe cannot measure exactly
// (the share's clock is the Windows host's). The export is stamped by our
// own kernel: its tick needs no margin.
const racyMargin = 100 * time.Millisecond

// tick is side s's timestamp tick plus its margin.
func (e *Engine) tick(s reconcile.Side) int64 {
	t := e.clocks[s].granularity
	if s == reconcile.Windows {
		t += racyMargin
	}
	return int64(t)
}

// racySides returns the sides whose file entry in pr is racy.
func (e *Engine) racySides(pr reconcile.Pair) reconcile.SideSet {
	var set reconcile.SideSet
	for _, s := range []reconcile.Side{reconcile.Windows, reconcile.NFS} {
		en, c := pr.Of(s), e.clocks[s]
		if en.Kind == reconcile.File && en.ModTime+e.tick(s) > pr.Synced+int64(c.offset) {
			set |= reconcile.Sides(s)
		}
	}
	return set
}

// record sets the ancestor of p, stamped with when its entries were read
// (at or before the stats), and notes it if racy.
func (e *Engine) record(p string, pr reconcile.Pair, at time.Time) {
	pr.Synced = at.UnixNano()
	e.anc[p] = pr
	e.ancChanged = true
	delete(e.dirty, p)
	if e.racySides(pr) != 0 {
		e.racy[p] = struct{}{}
	} else {
		delete(e.racy, p)
	}
}

// findRacy lists the ancestor's racy entries (after loading it).
func (e *Engine) findRacy() {
	e.racy = map[string]struct{}{}
	for p, pr := range e.anc {
		if e.racySides(pr) != 0 {
			e.racy[p] = struct{}{}
		}
	}
}

// checkRacy compares the contents of racy entries whose tick has passed and
// still look unchanged: equal, the entry is re-stamped (no longer racy);
// different, the racy sides are marked dirty for this round's plan. It
// returns how long until the next racy tick passes (0: none left).
func (e *Engine) checkRacy(now time.Time) time.Duration {
	var wait time.Duration
	for p := range e.racy {
		pr, ok := e.anc[p]
		sides := e.racySides(pr)
		if !ok || sides == 0 {
			delete(e.racy, p)
			continue
		}
		passed := true
		for _, s := range []reconcile.Side{reconcile.Windows, reconcile.NFS} {
			if !sides.Has(s) {
				continue
			}
			c := e.clocks[s]
			if left := pr.Of(s).ModTime + e.tick(s) - c.now(now); left >= 0 {
				passed = false
				wait = max(wait, time.Duration(left)+time.Millisecond)
			}
		}
		if !passed {
			continue
		}
		delete(e.racy, p)
		at := time.Now()
		w, errW := scan.Stat(e.cfg.WindowsDir, p)
		n, errN := scan.Stat(e.cfg.NFSDir, p)
		if errW != nil || errN != nil || w != pr.Windows || n != pr.NFS {
			continue // changed, or gone: the scan sees it
		}
		same, err := e.ap.SameBytes(p)
		e.m.compared.Inc()
		switch {
		case err != nil:
			e.log.Debug("comparing a racy entry", "path", p, "err", err)
		case same:
			e.record(p, pr, at) // re-stamped after its tick: trusted from now on
		default:
			e.log.Info("same-size change within a timestamp tick found by content", "path", p, "sides", sideNames(sides))
			e.dirty[p] = sides
		}
	}
	return wait
}

func sideNames(set reconcile.SideSet) string {
	switch {
	case set.Has(reconcile.Windows) && set.Has(reconcile.NFS):
		return "windows,nfs"
	case set.Has(reconcile.Windows):
		return "windows"
	}
	return "nfs"
}
