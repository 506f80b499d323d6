// Package sync is nasd's sync engine between the Windows directory and the
// NFS export: a state-based three-way sync (like Unison or Mutagen). It keeps
// the last synced state (the ancestor) in the state directory, scans both
// sides, lets the pure reconcile package plan, and applies the plan with the
// apply package. Change detection is a rescan timer (the Windows side, a 9p or
// SMB share, fires no inotify events) plus inotify hints on the NFS side.
//
// The subpackages: reconcile (pure planning), scan (reading a tree), watch
// (inotify hints), apply (atomic changes on disk), winname (names Windows
// cannot hold).
package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nas-topology/nas-topology/nasimage/sync/apply"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
	"github.com/nas-topology/nas-topology/nasimage/sync/watch"
	"github.com/nas-topology/nas-topology/nasimage/sync/winname"
)

// Defaults for Config's zero values.
const (
	DefaultRescanInterval     = time.Second
	DefaultQuietPeriod        = 500 * time.Millisecond
	DefaultFullRescanInterval = time.Minute
	DefaultFlushTimeout       = 20 * time.Second
)

// Config says what to sync and how.
type Config struct {
	// WindowsDir is the Windows share (hostPath); NFSDir is the exported
	// directory; StateDir keeps the ancestor.
	WindowsDir, NFSDir, StateDir string
	Role                         reconcile.Role
	// Mirror makes an input export an exact copy of Windows (NFS-only files
	// are removed).
	Mirror bool
	// RescanInterval is how often both sides are scanned without any event.
	RescanInterval time.Duration
	// QuietPeriod is how long an NFS path must go without events before it is
	// copied (go-nfs writes a file in many open/write/close cycles).
	QuietPeriod time.Duration
	// FullRescanInterval bounds how long the NFS side's cached scan is
	// trusted when watching reports nothing.
	FullRescanInterval time.Duration
	// FlushTimeout bounds the final sync after Run's context ends.
	FlushTimeout time.Duration
	// Excludes are glob patterns added to scan.DefaultExcludes.
	Excludes []string
	// DisableNFSWatch turns inotify off on the NFS side (scans on the timer
	// only). WatchWindows turns it on for the Windows side, where it only
	// helps if the share delivers events.
	DisableNFSWatch bool
	WatchWindows    bool
	// Granularity overrides the measured timestamp granularity of a side
	// (a share whose probe looks finer than it is).
	Granularity map[reconcile.Side]time.Duration
	// MaxWindowsPath is the longest relative path copied to Windows, in
	// UTF-16 units (0: winname.MaxPath). Programs limited to MAX_PATH need
	// 260 minus the length of the share's own path.
	MaxWindowsPath int

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Health, if set, hears why the sync is halted (a root in doubt or
	// emptied; see root.go), "" once it goes on again. nasd fails /readyz
	// with the reason.
	Health func(problem string)
	// Installed, if set, hears of every file or directory the engine has
	// just put in the export (nasd's handle index learns its identity at
	// once, so that a client's handle to it resolves without waiting for a
	// walk of the export).
	Installed func(rel string)

	copyChunkDelay time.Duration // fault tests: slow copies down
}

// Engine syncs one Windows directory with one export. It implements nasd's
// Worker: Run(ctx, ready).
type Engine struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	ap      apply.Applier
	ex      *scan.Excludes
	anc     reconcile.Ancestor
	nfsW    *watch.Watcher
	winW    *watch.Watcher
	started bool
	opened  bool // open ran: ancestor loaded, roots identified

	win, nfs root
	// clocks: each side's timestamp granularity and clock offset (probed
	// at open); stab: the stability of changed files on unwatched sides.
	clocks map[reconcile.Side]sideClock
	stab   map[reconcile.Side]*stability
	// racy: ancestor paths with an mtime within a tick of their recording
	// (racy.go); dirty: those found changed by content, for the next plan.
	racy  map[string]struct{}
	dirty map[string]reconcile.SideSet
	// problems says, per side, why that side's root halts the sync ("").
	problems map[reconcile.Side]string
	// acceptEmpty: an operator confirmed that side's emptied root.
	acceptEmpty map[reconcile.Side]bool
	health      string // the problem last reported to Config.Health

	winSize    int            // last Windows scan's size, to presize the next
	nfsTree    reconcile.Tree // the last NFS scan, while watching may vouch for it
	nfsSize    int            // the last NFS scan's size, to presize the next
	nfsScanned time.Time
	nfsDirty   bool
	// nfsSame: the NFS side is exactly the ancestor's NFS entries, as
	// scan.Unchanged or a settled round found, and watching vouches that it
	// still is (the cheap form of nfsTree).
	nfsSame bool
	// winVerify, nfsVerify: the side matched the ancestor exactly last time
	// it was read, so the next read tries scan.Unchanged first.
	winVerify, nfsVerify bool
	// winWalk, nfsWalk: the last unchanged walk of each side, valid until
	// the ancestor changes (scan.Walk).
	winWalk, nfsWalk *scan.Walk
	backoff          map[string]retry
	skipped          map[string]string // names reported as unsyncable
	blocked          map[string]bool
	// onlyTo, when set, limits a round's filesystem actions to that side
	// (the shutdown flush sends what apps wrote to Windows first).
	onlyTo      reconcile.Side
	ancChanged  bool
	lastSaved   time.Time
	roundsTotal int
	// interval is the rescan interval in force: at least RescanInterval and
	// scanCostFactor times lastScan, the time the last round spent reading
	// both sides (a large tree is rescanned less often, so that idle rounds
	// cost at most 1/scanCostFactor of a core).
	interval, lastScan time.Duration
	scanTime           time.Duration // total time spent scanning
	// settledRounds counts rounds that found both sides unchanged without
	// building trees.
	settledRounds int
	// idsDirty: identities may have changed since the identity journal
	// was last written (idjournal.go), at journalWritten.
	idsDirty       bool
	journalWritten time.Time
	// startIDs: the journal a new export started from, for the paths not
	// copied in yet (apply.Applier.Keep uses it).
	startIDs map[string]journalEntry
}

type retry struct {
	next  time.Time
	delay time.Duration
}

// New checks the configuration and registers the metrics.
func New(cfg Config) (*Engine, error) {
	if cfg.WindowsDir == "" || cfg.NFSDir == "" || cfg.StateDir == "" {
		return nil, errors.New("sync: windows dir, nfs dir and state dir are required")
	}
	switch cfg.Role {
	case reconcile.Input, reconcile.Backup, reconcile.Output:
	default:
		return nil, fmt.Errorf("sync: unknown role %d", cfg.Role)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RescanInterval, DefaultRescanInterval)
	def(&cfg.QuietPeriod, DefaultQuietPeriod)
	def(&cfg.FullRescanInterval, DefaultFullRescanInterval)
	def(&cfg.FlushTimeout, DefaultFlushTimeout)
	ex, err := scan.NewExcludes(append(append([]string{}, scan.DefaultExcludes...), cfg.Excludes...))
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("sync: metrics: %w", err)
	}
	e := &Engine{
		cfg:         cfg,
		log:         log.With("component", "sync", "role", cfg.Role.String()),
		m:           m,
		ap:          apply.Applier{Windows: cfg.WindowsDir, NFS: cfg.NFSDir, ChunkDelay: cfg.copyChunkDelay},
		ex:          ex,
		backoff:     map[string]retry{},
		skipped:     map[string]string{},
		blocked:     map[string]bool{},
		problems:    map[reconcile.Side]string{},
		acceptEmpty: map[reconcile.Side]bool{},
		stab:        map[reconcile.Side]*stability{reconcile.Windows: {}, reconcile.NFS: {}},
		dirty:       map[string]reconcile.SideSet{},
		idsDirty:    true,
	}
	// The watchers learn of the engine's own renames into place.
	e.ap.Installing = func(to reconcile.Side, rel string) {
		if to == reconcile.NFS {
			e.nfsW.Expect(rel)
		} else {
			e.winW.Expect(rel)
		}
	}
	return e, nil
}

// ParseRole reads a role name as nasd's flags and the Pulumi config spell it.
func ParseRole(s string) (reconcile.Role, error) {
	for _, r := range []reconcile.Role{reconcile.Input, reconcile.Backup, reconcile.Output} {
		if r.String() == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q (want input, backup or output)", s)
}

// Run syncs until ctx ends: an initial sync, then ready(), then continuous
// sync; after ctx ends it flushes pending changes (within FlushTimeout) and
// returns.
func (e *Engine) Run(ctx context.Context, ready func()) error {
	if e.started {
		return errors.New("sync: engine already ran")
	}
	e.started = true
	if err := e.open(); err != nil {
		return err
	}
	var err error
	// Watching only speeds things up: without it (inotify limits reached)
	// every round scans both sides.
	if !e.cfg.DisableNFSWatch {
		if e.nfsW, err = watch.New(e.cfg.NFSDir); err != nil {
			e.log.Warn("not watching the export; relying on rescans", "err", err)
			e.nfsW = nil
		} else {
			defer e.nfsW.Close()
		}
	}
	if e.cfg.WatchWindows {
		if e.winW, err = watch.New(e.cfg.WindowsDir); err != nil {
			e.log.Warn("not watching the Windows directory", "err", err)
			e.winW = nil
		} else {
			defer e.winW.Close()
		}
	}

	// Up to 5 rounds that plan something; files still changing are waited
	// for (stability) up to 20 quiet periods, then left to the running sync.
	// Files the identity journal names are waited for as long: clients hold
	// handles to them, which answer STALE until the files are back.
	start := time.Now()
	waitUntil := start.Add(20 * e.cfg.QuietPeriod)
	for i, first := 0, true; ; first = false {
		r, err := e.round(ctx, first, true)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
		pending := e.journalPending()
		if time.Now().After(waitUntil) {
			if pending > 0 {
				e.log.Warn("initial sync: files the identity journal names are not copied yet; handles to them answer STALE until they are", "files", pending)
			}
			break
		}
		if r.planned > 0 {
			if i++; i < 5 || pending > 0 {
				continue
			}
			break
		}
		if r.unstable == 0 && pending == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(max(r.wait, time.Millisecond), e.cfg.QuietPeriod)):
		}
	}
	e.log.Info("initial sync done", "paths", len(e.anc), "took", time.Since(start).Round(time.Millisecond))
	if ready != nil {
		ready()
	}

	tick := time.NewTimer(e.rescanInterval())
	defer tick.Stop()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	armed := time.Time{}
	arm := func(d time.Duration) {
		at := time.Now().Add(d)
		if armed.IsZero() || at.Before(armed) {
			armed = at
			quiet.Reset(d)
		}
	}
	for {
		var r roundResult
		var err error
		select {
		case <-ctx.Done():
			return e.flush()
		case <-tick.C:
			r, err = e.round(ctx, false, true)
		case <-e.nfsW.Changed():
			e.nfsDirty = true
			arm(e.cfg.QuietPeriod)
			continue
		case <-e.winW.Changed():
			arm(e.cfg.QuietPeriod)
			continue
		case werr := <-e.nfsW.Errors():
			e.log.Warn("watch error; relying on rescans", "err", werr)
			continue
		case <-quiet.C:
			armed = time.Time{}
			r, err = e.round(ctx, false, true)
		}
		if err != nil {
			e.log.Error("sync round failed", "err", err)
			e.m.errors.WithLabelValues("scan").Inc()
		}
		if r.wait > 0 {
			arm(r.wait)
		}
		tick.Reset(e.rescanInterval())
	}
}

// scanCostFactor: the rescan interval is at least this many times the time
// the last round spent scanning (idle rescans take at most 4% of a core).
const scanCostFactor = 25

// rescanInterval adapts the rescan interval to the measured scan cost and
// reports a change.
func (e *Engine) rescanInterval() time.Duration {
	iv := max(e.cfg.RescanInterval, scanCostFactor*e.lastScan).Round(10 * time.Millisecond)
	if iv != e.interval && (iv > e.interval*5/4 || iv < e.interval*3/4 || e.interval == 0) {
		if e.interval != 0 || iv != e.cfg.RescanInterval {
			e.log.Info("rescan interval adapted to the scan cost", "interval", iv, "last_scan", e.lastScan.Round(time.Millisecond))
		}
		e.interval = iv
		e.m.interval.Set(iv.Seconds())
	}
	return e.interval
}

// flush runs the final rounds after shutdown began: nasd has stopped NFS
// writes, so nothing is waited on for being busy.
func (e *Engine) flush() error {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.FlushTimeout)
	defer cancel()
	// The last chance: every path is tried, whatever failed before.
	clear(e.backoff)
	var err error
	// What apps wrote exists only in the export (a new pod's emptyDir
	// starts empty): it goes to Windows before anything comes from there,
	// however much is waiting the other way.
	settled := map[reconcile.Side]bool{}
	for _, only := range []reconcile.Side{reconcile.Windows, 0} {
		e.onlyTo = only
		e.nfsDirty = true
		for i := 0; i < 3 && err == nil && ctx.Err() == nil; i++ {
			var r roundResult
			if r, err = e.round(ctx, false, false); r.planned == 0 && ctx.Err() == nil {
				settled[only] = true
				break
			}
		}
	}
	e.onlyTo = 0
	switch {
	case err == nil && !settled[reconcile.Windows]:
		err = fmt.Errorf("what NFS clients wrote did not all reach Windows within %s (--sync-flush-timeout)", e.cfg.FlushTimeout)
	case err == nil && !settled[0]:
		e.log.Warn("shutdown: Windows changes not copied into the export within the flush timeout (the next start copies them)", "timeout", e.cfg.FlushTimeout)
	}
	if serr := e.save(true); err == nil {
		err = serr
	}
	if jerr := e.writeJournal(true); err == nil {
		err = jerr
	}
	if err != nil {
		return fmt.Errorf("sync: flush: %w", err)
	}
	e.log.Info("sync flushed")
	return nil
}

func (e *Engine) save(force bool) error {
	if !e.ancChanged || !force && time.Since(e.lastSaved) < 5*time.Second {
		return nil
	}
	if err := saveAncestor(e.cfg.StateDir, e.header(), e.anc); err != nil {
		e.m.errors.WithLabelValues("save").Inc()
		return fmt.Errorf("save ancestor: %w", err)
	}
	e.ancChanged = false
	e.lastSaved = time.Now()
	return nil
}

// skipNames reports NFS names Windows cannot hold, once per name. allTracked
// says the ancestor holds every NFS path: then none can be a new problem (a
// synced path was checked when it was new), as winname.Unsyncable would find
// after a lookup per path.
func (e *Engine) skipNames(w, n reconcile.Tree, skip map[string]string, allTracked bool) {
	bad := map[string]string{}
	if !allTracked {
		bad = winname.Unsyncable(n, w, e.anc, e.cfg.MaxWindowsPath)
	}
	for p, why := range bad {
		if _, seen := e.skipped[p]; !seen {
			e.log.Warn("not synced to Windows: name Windows cannot hold", "path", p, "reason", why)
		}
		skip[p] = why
	}
	e.skipped = bad
	e.m.skipped.Set(float64(len(bad)))
}

func (e *Engine) removeTemps(root string, temps []string) {
	if len(temps) == 0 {
		return
	}
	if err := apply.RemoveTemps(root, temps); err != nil {
		e.log.Warn("removing temp files of an interrupted copy", "err", err)
	} else {
		e.log.Info("removed temp files of an interrupted copy", "root", root, "count", len(temps))
	}
}
