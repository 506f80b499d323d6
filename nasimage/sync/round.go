package sync

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/apply"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

type roundResult struct {
	planned int           // filesystem actions planned
	failed  int           // of which failed (other than stale)
	wait    time.Duration // when skipped paths may be retried
	// unstable counts files skipped because they are still changing.
	unstable int
}

const maxBackoff = time.Minute

// bigRound is the size (paths) above which a round that reads trees runs
// with the GC at bigRoundGCPercent.
const (
	bigRound          = 20000
	bigRoundGCPercent = 25
)

// round is one scan-reconcile-apply pass. first removes temp files a killed
// engine left; quiet skips NFS paths that are still being written.
func (e *Engine) round(ctx context.Context, first, quiet bool) (roundResult, error) {
	var res roundResult
	now := time.Now()
	e.roundsTotal++
	if !e.checkRoots() {
		return res, nil // halted: a root is in doubt
	}
	res.wait = e.checkRacy(now)
	scanStart := e.scanTime

	// A side that matched the ancestor exactly last time is first checked
	// with scan.Unchanged (no tree built); only a side that changed is read
	// into a tree. Both unchanged: nothing to plan.
	verify := !first && len(e.anc) > 0
	winSame := false
	if verify && e.winVerify {
		same, err := e.unchanged(reconcile.Windows)
		if err != nil {
			return res, err
		}
		winSame, e.winVerify = same, same
	}
	nfsSame := false
	if e.nfsW == nil || e.nfsDirty || first || now.Sub(e.nfsScanned) >= e.cfg.FullRescanInterval ||
		e.nfsTree == nil && !e.nfsSame {
		e.nfsDirty = false
		// The old tree goes before the new one is built: the two are never
		// live together (a failed scan leaves none, so the next round scans).
		e.nfsTree, e.nfsSame = nil, false
		if verify && e.nfsVerify {
			same, err := e.unchanged(reconcile.NFS)
			if err != nil {
				return res, err
			}
			e.nfsVerify = same
			if same {
				nfsSame, e.nfsScanned = true, now
				// Watched, the ancestor stands for the NFS tree until an
				// event, a write of ours or the full-rescan interval.
				e.nfsSame = e.nfsW != nil
			}
		}
	} else {
		nfsSame = e.nfsSame
	}
	defer func() { e.lastScan = e.scanTime - scanStart }()
	if winSame && nfsSame && len(e.dirty) == 0 {
		e.settledRound(ctx)
		return res, nil
	}
	if len(e.anc) == 0 || max(len(e.anc), e.winSize, e.nfsSize) > bigRound {
		// A round over a large tree holds the trees, the ancestor and the
		// plan at once: collect garbage sooner, so that the peak stays near
		// what is live (a first sync of 100,000 files: about 40 MiB).
		old := debug.SetGCPercent(bigRoundGCPercent)
		defer func() {
			debug.FreeOSMemory() // this round's garbage goes at the low percent
			debug.SetGCPercent(old)
		}()
	}

	var ws scan.Result
	winRead, nfsRead := !winSame, false
	if winSame {
		ws.Tree = e.anc.Tree(reconcile.Windows)
	} else {
		var err error
		if ws, err = e.read(reconcile.Windows, e.winSize); err != nil {
			return res, err
		}
		e.winSize = len(ws.Tree)
	}
	var ns scan.Result
	switch {
	case nfsSame:
		ns.Tree = e.anc.Tree(reconcile.NFS)
	case e.nfsTree != nil:
		ns.Tree = e.nfsTree
	default:
		var err error
		if ns, err = e.read(reconcile.NFS, e.nfsSize); err != nil {
			return res, err
		}
		nfsRead = true
		e.nfsSize, e.nfsScanned = len(ns.Tree), now
		if e.nfsW != nil {
			// Kept only where the next round may trust it: unwatched, every
			// round scans anyway, and holding it would double the trees live
			// while the next round scans.
			e.nfsTree = ns.Tree
		}
	}
	if first {
		e.removeTemps(e.cfg.WindowsDir, ws.Temps)
		e.removeTemps(e.cfg.NFSDir, ns.Temps)
	}

	skip := map[string]string{}
	for p, why := range ws.Unreadable {
		skip[p] = why
	}
	for p, why := range ns.Unreadable {
		skip[p] = why
	}
	// One pass over the ancestor serves both the names check (no NFS path
	// is new when the ancestor holds all of them) and planning.
	census := reconcile.TakeCensus(e.anc, ws.Tree, ns.Tree, e.dirty)
	if e.cfg.Role == reconcile.Output {
		e.skipNames(ws.Tree, ns.Tree, skip, census.SeenNFS == len(ns.Tree))
	}
	if quiet {
		for _, w := range e.watchers() {
			busy, wait := w.Busy(now, e.cfg.QuietPeriod)
			for p, why := range busy {
				skip[p] = why
			}
			res.wait = max(res.wait, wait)
		}
	}
	if quiet {
		// Sides without inotify: a changed file must look the same in two
		// scans a quiet period apart (stable.go).
		for _, c := range []struct {
			s       reconcile.Side
			t       reconcile.Tree
			read    bool
			watched bool
		}{{reconcile.Windows, ws.Tree, winRead, e.winW != nil}, {reconcile.NFS, ns.Tree, nfsRead, e.nfsW != nil}} {
			if c.watched || !c.read {
				continue
			}
			busy, wait := e.stab[c.s].check(c.t, e.anc, c.s, census, e.clocks[c.s], now, e.cfg.QuietPeriod)
			if c.s == reconcile.Windows {
				e.journalVouches(busy, c.t)
			}
			for p, why := range busy {
				skip[p] = why
			}
			res.unstable += len(busy)
			res.wait = max(res.wait, wait)
		}
	}
	for p, r := range e.backoff {
		if now.Before(r.next) {
			skip[p] = "retrying after an error"
			if d := r.next.Sub(now); res.wait == 0 || d < res.wait {
				res.wait = d
			}
		}
	}

	hold := e.holdEmptied(ws.Tree, ns.Tree)
	st := reconcile.State{Ancestor: e.anc, Windows: ws.Tree, NFS: ns.Tree, Skip: skip, Census: census, Hold: hold, Dirty: e.dirty}
	pol := reconcile.Policy{Role: e.cfg.Role, Mirror: e.cfg.Mirror, Now: now}
	st.Equal = e.compare(reconcile.NeedsContent(st, pol))
	plan := reconcile.Reconcile(st, pol)
	if e.onlyTo != 0 {
		plan.Actions = actionsTo(plan.Actions, e.onlyTo)
	}
	for _, c := range plan.Conflicts {
		e.log.Warn("conflict: both sides changed; the Windows version keeps a conflict name", "path", c.Path, "windows_version", c.Renamed)
		e.m.conflicts.Inc()
	}
	blocked := map[string]bool{}
	for _, p := range plan.Blocked {
		blocked[p] = true
		if !e.blocked[p] {
			e.log.Warn("not synced: an NFS client keeps its own files in a directory of that name", "path", p)
		}
	}
	e.blocked = blocked
	// Next round, check with scan.Unchanged a side that matched the ancestor
	// exactly (a side that changed is read into a tree until it settles).
	e.winVerify, e.nfsVerify = census.Exact(reconcile.Windows, ws.Tree), census.Exact(reconcile.NFS, ns.Tree)
	if len(plan.Actions) == 0 && e.nfsVerify && e.nfsTree != nil {
		// The ancestor now stands for the trusted NFS tree: drop the tree.
		e.nfsTree, e.nfsSame = nil, true
	} else if len(plan.Actions) > 0 && e.nfsSame {
		// The ancestor is about to change: keep what NFS held as a tree.
		e.nfsTree, e.nfsSame = ns.Tree, false
	}
	if len(plan.Actions) > 0 {
		e.winWalk, e.nfsWalk = nil, nil // they hold the ancestor's entries
		e.idsDirty = true
	}

	for _, a := range plan.Actions {
		if a.Op != reconcile.Record && a.Op != reconcile.Forget {
			res.planned++
		}
	}
	e.m.pending.Set(float64(res.planned))
	if len(e.anc) == 0 && len(plan.Actions) > 0 {
		e.anc = make(reconcile.Ancestor, len(plan.Actions)) // a first sync records every path
	}
	// Record actions carry the entries to record, so that the trees are
	// not live while the plan is applied (a first sync's Windows tree is
	// a quarter of its memory).
	for i, a := range plan.Actions {
		if a.Op == reconcile.Record {
			plan.Actions[i].Source, plan.Actions[i].Dest = ws.Tree[a.Path], ns.Tree[a.Path]
		}
	}
	pending := res.planned
	failedTo := map[reconcile.Side]bool{}
	// applied books one filesystem action's outcome.
	applied := func(a reconcile.Action, out apply.Outcome, err error, at time.Time) {
		pending--
		e.m.pending.Set(float64(pending))
		if err != nil {
			failedTo[a.To] = true
			if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				// Cut short by shutdown: not the path's failure. No backoff,
				// which would keep the shutdown flush from trying it.
				return
			}
			if errors.Is(err, apply.ErrStale) {
				e.log.Debug("changed during sync; will retry", "err", err)
				res.wait = e.cfg.QuietPeriod
				return
			}
			res.failed++
			e.fail(a, err, now)
			return
		}
		delete(e.backoff, a.Path)
		if a.To == reconcile.NFS {
			e.nfsDirty = true
			if e.cfg.Installed != nil && (a.Op == reconcile.Copy || a.Op == reconcile.Mkdir) {
				e.cfg.Installed(a.Path)
			}
		}
		switch a.Op {
		case reconcile.Copy:
			e.m.files.WithLabelValues(direction(a.To)).Inc()
			e.m.bytes.WithLabelValues(direction(a.To)).Add(float64(out.Bytes))
			e.record(a.Path, out.Pair, at)
		case reconcile.Mkdir:
			e.record(a.Path, out.Pair, at)
		case reconcile.Remove:
			delete(e.anc, a.Path)
			delete(e.dirty, a.Path)
		}
		e.ancChanged = true
	}
	// Copies of files go in batches (one durability barrier for many,
	// apply.Batch); the ancestor is saved only after a batch completed.
	batch := e.ap.NewBatch()
	var batchAt time.Time
	runBatch := func() {
		if batch.Len() == 0 {
			return
		}
		for _, r := range batch.Run(ctx) {
			applied(r.Action, r.Outcome, r.Err, batchAt)
		}
		if err := e.save(false); err != nil {
			e.log.Error("saving sync state", "err", err)
		}
	}
	for _, a := range plan.Actions {
		e.log.Debug("action", "op", a.Op.String(), "path", a.Path, "to", a.To.String())
		switch a.Op {
		case reconcile.Record:
			e.record(a.Path, reconcile.Pair{Windows: a.Source, NFS: a.Dest}, now)
			continue
		case reconcile.Forget:
			delete(e.anc, a.Path)
			delete(e.dirty, a.Path)
			e.ancChanged = true
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if apply.Batchable(a) {
			if batch.Len() == 0 {
				batchAt = time.Now()
			}
			if batch.Add(a) {
				runBatch()
			}
			continue
		}
		if a.Op != reconcile.Mkdir {
			// Removals and renames come before copies in a plan; a Mkdir
			// precedes the copies into it, so it need not wait for them.
			runBatch()
		}
		at := time.Now()
		out, err := e.ap.Apply(ctx, a)
		applied(a, out, err, at)
		if err := e.save(false); err != nil {
			e.log.Error("saving sync state", "err", err)
		}
	}
	runBatch()
	if err := e.save(true); err != nil {
		return res, err
	}
	e.markSynced(ctx, failedTo)
	if res.planned == 0 && ctx.Err() == nil {
		e.journalRound()
	}
	if res.planned > 0 {
		e.log.Debug("sync round", "planned", res.planned, "failed", res.failed)
	}
	return res, nil
}

// compare reads the files at paths on both sides and reports which hold the
// same bytes (reconcile.NeedsContent asks). A file that cannot be read counts
// as different: the plan then keeps both versions or copies, never drops one.
func (e *Engine) compare(paths []string) map[string]bool {
	if len(paths) == 0 {
		return nil
	}
	t0 := time.Now()
	eq := make(map[string]bool, len(paths))
	for _, p := range paths {
		same, err := e.ap.SameBytes(p)
		if err != nil {
			e.log.Debug("comparing contents", "path", p, "err", err)
		}
		eq[p] = same
	}
	e.m.compared.Add(float64(len(paths)))
	e.log.Debug("compared contents", "files", len(paths), "took", time.Since(t0).Round(time.Millisecond))
	return eq
}

// read reads side s into a tree (sizeHint presizes it), timed.
func (e *Engine) read(s reconcile.Side, sizeHint int) (scan.Result, error) {
	t0 := time.Now()
	res, err := scan.Scan(e.ap.Root(s), e.ex, sizeHint)
	e.scanTime += time.Since(t0)
	if err == nil {
		e.m.scanSeconds.WithLabelValues(s.String()).Observe(time.Since(t0).Seconds())
	}
	return res, err
}

// unchanged checks with scan.Unchanged that side s is exactly what the
// ancestor says, timed, keeping the walk for the next check.
func (e *Engine) unchanged(s reconcile.Side) (bool, error) {
	walk := &e.winWalk
	if s == reconcile.NFS {
		walk = &e.nfsWalk
	}
	t0 := time.Now()
	same, w, err := scan.Unchanged(e.ap.Root(s), e.ex, e.anc, s, *walk)
	e.scanTime += time.Since(t0)
	if err != nil {
		return false, err
	}
	*walk = w
	e.m.scanSeconds.WithLabelValues(s.String()).Observe(time.Since(t0).Seconds())
	return same, nil
}

// settledRound ends a round in which both sides were found exactly as the
// ancestor says: nothing to plan, both directions in sync.
func (e *Engine) settledRound(ctx context.Context) {
	e.settledRounds++
	e.m.pending.Set(0)
	e.blocked = nil
	e.markSynced(ctx, nil)
	e.journalRound()
}

// journalRound writes the identity journal after a round that found
// nothing to do.
func (e *Engine) journalRound() {
	if err := e.writeJournal(false); err != nil {
		e.log.Warn("writing the identity journal", "err", err)
		e.m.errors.WithLabelValues("save").Inc()
	}
}

// markSynced records that a completed round left every direction in sync
// whose actions did not fail.
func (e *Engine) markSynced(ctx context.Context, failedTo map[reconcile.Side]bool) {
	if ctx.Err() != nil {
		return
	}
	for _, s := range []reconcile.Side{reconcile.Windows, reconcile.NFS} {
		if !failedTo[s] {
			e.m.lastSync.WithLabelValues(direction(s)).SetToCurrentTime()
		}
	}
}

// fail reports an error and backs the path off (1 s, doubling, at most a
// minute) so a permanent error is retried, not looped on.
func (e *Engine) fail(a reconcile.Action, err error, now time.Time) {
	r := e.backoff[a.Path]
	r.delay = min(max(2*r.delay, time.Second), maxBackoff)
	r.next = now.Add(r.delay)
	e.backoff[a.Path] = r
	e.log.Error("sync action failed; will retry", "op", a.Op.String(), "path", a.Path, "to", a.To.String(), "retry_in", r.delay, "err", err)
	e.m.errors.WithLabelValues(a.Op.String()).Inc()
}

func (e *Engine) watchers() []busyWatcher {
	var ws []busyWatcher
	if e.nfsW != nil {
		ws = append(ws, e.nfsW)
	}
	if e.winW != nil {
		ws = append(ws, e.winW)
	}
	return ws
}

type busyWatcher interface {
	Busy(now time.Time, quiet time.Duration) (map[string]string, time.Duration)
}

// actionsTo keeps the actions that change side to (and the bookkeeping
// ones), in plan order: a side's own actions depend only on each other.
// Paths whose actions are dropped stay unrecorded, so a later round plans
// them again.
func actionsTo(actions []reconcile.Action, to reconcile.Side) []reconcile.Action {
	kept := actions[:0]
	for _, a := range actions {
		if a.To == to || a.Op == reconcile.Record || a.Op == reconcile.Forget {
			kept = append(kept, a)
		}
	}
	return kept
}
