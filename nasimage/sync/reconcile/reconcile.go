package reconcile

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// Role is the sync direction a NAS server's policy follows.
type Role uint8

const (
	// Input: Windows -> NFS. Every path Windows holds is shown on NFS as
	// Windows has it; Windows deletions propagate. What an NFS client created
	// that never came from Windows is left alone unless Mirror is set.
	Input Role = iota + 1
	// Backup: like Input; the export itself is read-only.
	Backup
	// Output: both ways, with conflicts keeping both versions.
	Output
)

func (r Role) String() string {
	switch r {
	case Input:
		return "input"
	case Backup:
		return "backup"
	case Output:
		return "output"
	}
	return "role?"
}

// Policy is what the role asks of the reconciler.
type Policy struct {
	Role Role
	// Mirror makes the NFS side an exact copy of Windows (rsync --delete):
	// NFS-only paths are removed. Ignored for Output.
	Mirror bool
	// Now names conflict copies.
	Now time.Time
}

// Op is what an action does.
type Op uint8

const (
	// Copy writes the other side's file or symlink at Path to To (atomically).
	Copy Op = iota + 1
	// Mkdir creates the directory Path on To.
	Mkdir
	// Remove deletes Path (a file, symlink or empty directory) from To.
	Remove
	// Rename moves Path to NewPath on To: the losing side of a conflict.
	Rename
	// Record stores the two sides' current entries as the ancestor of Path:
	// both sides already agree.
	Record
	// Forget drops Path from the ancestor: it is no longer synced.
	Forget
)

func (o Op) String() string {
	return [...]string{"op?", "copy", "mkdir", "remove", "rename", "record", "forget"}[min(int(o), 6)]
}

// Action is one step of a plan. The applier re-checks Source and Dest against
// the disk before acting, so a plan made from a stale scan never clobbers a
// change it has not seen.
type Action struct {
	Op      Op
	Path    string
	To      Side   // the side changed; Copy and Mkdir read the other side
	Source  Entry  // Copy, Mkdir: the source entry as scanned
	Dest    Entry  // Copy, Remove, Rename: what To held at Path when planned
	NewPath string // Rename
}

// Conflict is a path both sides changed since the last sync in ways that
// cannot both keep the name. The Windows version moves to Renamed on both
// sides; the NFS version keeps Path.
type Conflict struct {
	Path    string
	Renamed string
	Windows Entry
	NFS     Entry
}

// State is what one reconciliation looks at.
type State struct {
	Ancestor Ancestor
	Windows  Tree
	NFS      Tree
	// Skip lists paths (with their subtrees) to leave untouched this round,
	// with the reason: names Windows cannot hold, files still being written,
	// paths backing off after an error.
	Skip map[string]string
	// Equal answers NeedsContent: for each path it listed, whether the
	// caller found the two files' contents equal. A listed path missing here
	// counts as different: two files are one version only if their bytes are.
	Equal map[string]bool
	// Dirty lists paths whose entry on a side still reads as the ancestor's
	// but whose content the caller found changed (a racily clean timestamp:
	// the file changed within the side's timestamp granularity of the sync).
	Dirty map[string]SideSet
	// Hold lists sides whose absences are not trusted this round (a root
	// emptied in one round, or in doubt): nothing is removed on the other
	// side because it is missing here.
	Hold SideSet
	// Census, if not nil, is TakeCensus(Ancestor, Windows, NFS, Dirty): a caller
	// that needs it before planning (to know whether any NFS path is new)
	// passes it so the ancestor is not walked twice.
	Census *Census
}

// Census is one pass over the ancestor: how many of its paths each tree
// holds, and the paths changed on either side since the last sync.
type Census struct {
	SeenWindows, SeenNFS int
	// ChangedWindows and ChangedNFS count the ancestor's paths whose entry
	// on that side changed (appeared, differs, or vanished).
	ChangedWindows, ChangedNFS int
	// Changed lists the changed paths, unless there were more than
	// maxCensusChanged (Overflow): then planning walks the ancestor again.
	Changed  []string
	Overflow bool
}

const maxCensusChanged = 1024

// Exact reports whether side's tree t is exactly what the ancestor says the
// side held after the last sync: no path changed, none new.
func (c *Census) Exact(s Side, t Tree) bool {
	if s == Windows {
		return c.ChangedWindows == 0 && c.SeenWindows == len(t)
	}
	return c.ChangedNFS == 0 && c.SeenNFS == len(t)
}

// TakeCensus walks the ancestor once, looking each path up in both trees.
// dirty is State.Dirty.
func TakeCensus(anc Ancestor, w, n Tree, dirty map[string]SideSet) *Census {
	c := &Census{}
	for p, a := range anc {
		we, okW := w[p]
		ne, okN := n[p]
		if okW {
			c.SeenWindows++
		}
		if okN {
			c.SeenNFS++
		}
		d := dirty[p]
		cw, cn := d.Has(Windows) || Changed(a.Windows, we), d.Has(NFS) || Changed(a.NFS, ne)
		if cw {
			c.ChangedWindows++
		}
		if cn {
			c.ChangedNFS++
		}
		if !c.Overflow && (cw || cn) {
			if len(c.Changed) == maxCensusChanged {
				c.Overflow, c.Changed = true, nil
			} else {
				c.Changed = append(c.Changed, p)
			}
		}
	}
	return c
}

// Result is the plan: actions in the order they must run, and the conflicts
// they resolve. Blocked lists paths that cannot be synced as things stand
// (a Windows file where an NFS client keeps its own files in a directory).
type Result struct {
	Actions   []Action
	Conflicts []Conflict
	Blocked   []string
}

// ConflictName is the name the Windows version of a conflicting path takes.
func ConflictName(p string, now time.Time) string {
	return p + ".conflict-windows-" + now.UTC().Format("20060102T150405Z")
}

// Reconcile plans the actions that bring the Windows and NFS trees together
// under the policy. It is pure: the same input gives the same plan.
func Reconcile(in State, pol Policy) Result {
	if settled(in, pol) {
		return Result{}
	}
	return reconcileAll(in, pol)
}

// settled reports, cheaply, that no path can need an action: every synced
// path is unchanged on both sides, and every unsynced one is skipped or (one
// way) an NFS client's own. A rescan that finds nothing new costs a few map
// lookups per path instead of a full plan.
func settled(in State, pol Policy) bool {
	if c := in.Census; c != nil && !c.Overflow {
		for _, p := range c.Changed {
			if !skippedIn(in.Skip, p) {
				return false
			}
		}
		return settledRest(in, pol, c.SeenWindows, c.SeenNFS)
	}
	seenW, seenN := 0, 0
	for p, a := range in.Ancestor {
		w, okW := in.Windows[p]
		n, okN := in.NFS[p]
		if okW {
			seenW++
		}
		if okN {
			seenN++
		}
		if (in.changed(Windows, p, a, w) || in.changed(NFS, p, a, n)) && !skippedIn(in.Skip, p) {
			return false
		}
	}
	return settledRest(in, pol, seenW, seenN)
}

// settledRest is settled after the ancestor's paths: the trees' paths the
// ancestor lacks (seenW and seenN of each tree's paths are in it).
func settledRest(in State, pol Policy, seenW, seenN int) bool {
	if seenW < len(in.Windows) {
		for p := range in.Windows {
			if _, ok := in.Ancestor[p]; !ok && !skippedIn(in.Skip, p) {
				return false
			}
		}
	}
	if seenN < len(in.NFS) {
		for p := range in.NFS {
			if _, ok := in.Ancestor[p]; ok {
				continue
			}
			if _, onW := in.Windows[p]; !onW && pol.Role != Output && !pol.Mirror {
				continue // left alone
			}
			if !skippedIn(in.Skip, p) {
				return false
			}
		}
	}
	return true
}

// changed is Changed for side s at p, counting a dirty path as changed.
func (in *State) changed(s Side, p string, a Pair, cur Entry) bool {
	return in.Dirty[p].Has(s) || Changed(a.Of(s), cur)
}

// NeedsContent lists the paths whose plan depends on whether the two sides'
// files hold the same bytes: both sides hold a file of the same size, and
// there is no ancestor, or (both ways) both sides changed it, or (one way)
// the NFS side changed it. Metadata alone never makes two such files one
// version (two same-size edits within a timestamp tick look alike); the
// caller compares their contents and passes the answers in State.Equal.
// Only changed or new paths are looked at, so a settled rescan asks nothing.
func NeedsContent(in State, pol Policy) []string {
	var out []string
	check := func(p string) {
		w, n := in.Windows[p], in.NFS[p]
		if w.Kind != File || n.Kind != File || w.Size != n.Size || skippedIn(in.Skip, p) {
			return
		}
		a, hasA := in.Ancestor[p]
		wC, nC := in.changed(Windows, p, a, w), in.changed(NFS, p, a, n)
		if !hasA || pol.Role == Output && wC && nC || pol.Role != Output && nC {
			out = append(out, p)
		}
	}
	c := in.Census
	if c != nil && !c.Overflow {
		for _, p := range c.Changed {
			check(p)
		}
	} else {
		for p := range in.Ancestor {
			check(p)
		}
	}
	// Paths both trees hold and the ancestor lacks.
	if c == nil || c.SeenWindows < len(in.Windows) && c.SeenNFS < len(in.NFS) {
		small, big := in.Windows, in.NFS
		if len(big) < len(small) {
			small, big = big, small
		}
		for p := range small {
			if _, ok := in.Ancestor[p]; ok {
				continue
			}
			if _, ok := big[p]; ok {
				check(p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// sameVersion reports whether the two sides' entries at p are one version:
// files only if NeedsContent's comparison found the same bytes, other kinds
// by SameContent.
func (in *State) sameVersion(p string, w, n Entry) bool {
	if w.Kind == File && n.Kind == File {
		return w.Size == n.Size && in.Equal[p]
	}
	return SameContent(w, n)
}

func skippedIn(skip map[string]string, p string) bool {
	if len(skip) == 0 {
		return false
	}
	for q := p; q != ""; q = Parent(q) {
		if _, ok := skip[q]; ok {
			return true
		}
	}
	return false
}

// reconcileAll plans every path (Reconcile without the settled shortcut).
func reconcileAll(in State, pol Policy) Result {
	r := reconciler{in: in, pol: pol}
	r.run()
	return r.res
}

type reconciler struct {
	in    State
	pol   Policy
	paths []string
	cur   int // index in paths of the path being planned
	// changedBelow[side] holds every directory with a changed path under it.
	changedBelow map[Side]map[string]bool
	plan         []Action
	dfs          []int32 // depth-first position of each plan entry's path
	res          Result
}

func (r *reconciler) tree(s Side) Tree {
	if s == Windows {
		return r.in.Windows
	}
	return r.in.NFS
}

// pathCompare orders paths depth-first: a directory is immediately followed by
// everything under it ('/' sorts before every other byte).
func pathCompare(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		return cmp.Compare(ca, cb)
	}
	return cmp.Compare(len(a), len(b))
}

func (r *reconciler) run() {
	// Every path once, without a set: the ancestor's, then the trees' paths
	// it lacks.
	r.paths = make([]string, 0, len(r.in.Ancestor)+len(r.in.Windows)/8+len(r.in.NFS)/8)
	for p := range r.in.Ancestor {
		r.paths = append(r.paths, p)
	}
	for p := range r.in.Windows {
		if _, ok := r.in.Ancestor[p]; !ok {
			r.paths = append(r.paths, p)
		}
	}
	for p := range r.in.NFS {
		if _, ok := r.in.Ancestor[p]; !ok {
			if _, ok := r.in.Windows[p]; !ok {
				r.paths = append(r.paths, p)
			}
		}
	}
	slices.SortFunc(r.paths, pathCompare)
	if len(r.in.Ancestor) == 0 {
		// A first sync plans about one action per path.
		r.plan = make([]Action, 0, len(r.paths))
		r.dfs = make([]int32, 0, len(r.paths))
	}
	if r.pol.Role == Output {
		r.changedBelow = map[Side]map[string]bool{Windows: {}, NFS: {}}
		for _, p := range r.paths {
			if r.skipped(p) {
				continue
			}
			a := r.in.Ancestor[p]
			for _, s := range []Side{Windows, NFS} {
				if r.in.changed(s, p, a, r.tree(s)[p]) {
					for d := Parent(p); d != "" && !r.changedBelow[s][d]; d = Parent(d) {
						r.changedBelow[s][d] = true
					}
				}
			}
		}
	}

	covered := "\x00" // a subtree already planned by a conflict or being skipped
	for i, p := range r.paths {
		r.cur = i
		if covered != "\x00" && Under(p, covered) {
			continue
		}
		if r.skipped(p) {
			covered = p
			continue
		}
		if r.pol.Role == Output {
			if r.twoWay(p) {
				covered = p
			}
		} else {
			r.oneWay(p)
		}
	}
	r.unpin()
	r.order()
}

func (r *reconciler) skipped(p string) bool { return skippedIn(r.in.Skip, p) }

func (r *reconciler) emit(a Action) { r.emitAt(a, r.cur) }

func (r *reconciler) emitAt(a Action, order int) {
	r.plan = append(r.plan, a)
	r.dfs = append(r.dfs, int32(order))
}

// propagate makes side to hold at p what the other side holds (src).
func (r *reconciler) propagate(p string, to Side, src, dst Entry) {
	switch {
	case src.Kind == Absent && dst.Kind == Absent:
		r.emit(Action{Op: Forget, Path: p})
	case src.Kind == Absent:
		if r.in.Hold.Has(to.Other()) {
			return // its absence is not trusted this round
		}
		r.emit(Action{Op: Remove, Path: p, To: to, Dest: dst})
	case src.Kind == Dir && dst.Kind == Dir:
		r.emit(Action{Op: Record, Path: p})
	case src.Kind == Dir:
		if dst.Kind != Absent {
			r.emit(Action{Op: Remove, Path: p, To: to, Dest: dst})
		}
		r.emit(Action{Op: Mkdir, Path: p, To: to, Source: src})
	default:
		if dst.Kind == Dir {
			r.emit(Action{Op: Remove, Path: p, To: to, Dest: dst})
			dst = Entry{}
		}
		r.emit(Action{Op: Copy, Path: p, To: to, Source: src, Dest: dst})
	}
}

// oneWay: Windows is authoritative for every path it holds.
func (r *reconciler) oneWay(p string) {
	a, hasA := r.in.Ancestor[p]
	w, n := r.in.Windows[p], r.in.NFS[p]
	wC, nC := r.in.changed(Windows, p, a, w), r.in.changed(NFS, p, a, n)
	if w.Kind != Absent {
		switch {
		case hasA && !wC && !nC:
		case (!hasA || nC) && r.in.sameVersion(p, w, n):
			r.emit(Action{Op: Record, Path: p})
		default:
			r.propagate(p, NFS, w, n)
		}
		return
	}
	switch {
	case n.Kind == Absent:
		if hasA {
			r.emit(Action{Op: Forget, Path: p})
		}
	case r.in.Hold.Has(Windows):
		// Windows's absences are not trusted this round: remove nothing.
	case !hasA || a.Windows.Kind == Absent:
		// Created by an NFS client: not ours unless mirroring.
		if r.pol.Mirror {
			r.emit(Action{Op: Remove, Path: p, To: NFS, Dest: n})
		} else if hasA {
			r.emit(Action{Op: Forget, Path: p})
		}
	case !nC || r.pol.Mirror:
		r.emit(Action{Op: Remove, Path: p, To: NFS, Dest: n})
	default:
		// Deleted on Windows after an NFS client changed our copy: the
		// client's version is theirs now.
		r.emit(Action{Op: Forget, Path: p})
	}
}

// twoWay plans p for the Output role. It returns true when it planned the
// whole subtree under p (a conflict), so the caller skips the subtree.
func (r *reconciler) twoWay(p string) bool {
	a := r.in.Ancestor[p]
	w, n := r.in.Windows[p], r.in.NFS[p]
	wC, nC := r.in.changed(Windows, p, a, w), r.in.changed(NFS, p, a, n)
	switch {
	case !wC && !nC:
		return false
	case wC && nC:
		if r.in.sameVersion(p, w, n) {
			if w.Kind == Absent {
				r.emit(Action{Op: Forget, Path: p})
			} else {
				r.emit(Action{Op: Record, Path: p})
			}
			return false
		}
		if w.Kind == Absent {
			r.propagate(p, Windows, n, w)
			return false
		}
		if n.Kind == Absent {
			r.propagate(p, NFS, w, n)
			return false
		}
		r.conflict(p)
		return true
	}
	from, to, src, dst := Windows, NFS, w, n
	if nC {
		from, to, src, dst = NFS, Windows, n, w
	}
	if dst.Kind == Dir && src.Kind != Dir && r.changedBelow[to][p] {
		if src.Kind == Absent {
			// Deleted on one side while the other changed something inside:
			// the changes win; the directory comes back.
			r.emit(Action{Op: Mkdir, Path: p, To: from, Source: dst})
			return false
		}
		r.conflict(p)
		return true
	}
	r.propagate(p, to, src, dst)
	return false
}

// conflict keeps both versions of p: the Windows version moves to the
// conflict name on Windows and is copied to NFS under that name; the NFS
// version (with its subtree) is copied to Windows under p.
func (r *reconciler) conflict(p string) {
	c := ConflictName(p, r.pol.Now)
	w, n := r.in.Windows[p], r.in.NFS[p]
	r.res.Conflicts = append(r.res.Conflicts, Conflict{Path: p, Renamed: c, Windows: w, NFS: n})
	r.emit(Action{Op: Rename, Path: p, To: Windows, Dest: w, NewPath: c})
	for i := r.cur; i < len(r.paths) && Under(r.paths[i], p); i++ {
		q := r.paths[i]
		if r.skipped(q) {
			continue
		}
		to := c + q[len(p):]
		if e, ok := r.in.Windows[q]; ok {
			act := Action{Op: Copy, Path: to, To: NFS, Source: e}
			if e.Kind == Dir {
				act.Op = Mkdir
			}
			r.emitAt(act, i)
		}
		if e, ok := r.in.NFS[q]; ok {
			act := Action{Op: Copy, Path: q, To: Windows, Source: e}
			if e.Kind == Dir {
				act.Op = Mkdir
			}
			r.emitAt(act, i)
		} else if _, ok := r.in.Ancestor[q]; ok {
			r.emitAt(Action{Op: Forget, Path: q}, i)
		}
	}
}

// unpin cancels the removal of a directory that still holds something that
// stays (a skipped path, an NFS client's own file). One way, a directory
// holding an NFS client's files is forgotten: it is the client's now. Both ways, the ancestor keeps it, so
// the next round plans the same no-op rather than re-creating it elsewhere.
func (r *reconciler) unpin() {
	removed := map[Side]map[string]bool{Windows: {}, NFS: {}}
	var dirRemovals bool
	for _, a := range r.plan {
		if a.Op == Remove {
			removed[a.To][a.Path] = true
			dirRemovals = dirRemovals || a.Dest.Kind == Dir
		}
	}
	if !dirRemovals {
		return
	}
	pinned := map[Side]map[string]bool{Windows: {}, NFS: {}}
	for _, s := range []Side{Windows, NFS} {
		for p := range r.tree(s) {
			if removed[s][p] {
				continue
			}
			for d := Parent(p); d != "" && !pinned[s][d]; d = Parent(d) {
				pinned[s][d] = true
			}
		}
	}
	// A directory kept only for a skipped path is removed in a later round.
	skipAbove := map[string]bool{}
	for p := range r.in.Skip {
		for d := Parent(p); d != "" && !skipAbove[d]; d = Parent(d) {
			skipAbove[d] = true
		}
	}
	drop := map[string]bool{}
	for i, a := range r.plan {
		if a.Op == Remove && a.Dest.Kind == Dir && pinned[a.To][a.Path] {
			drop[a.Path] = true
			r.plan[i] = Action{Op: Forget, Path: a.Path}
			if _, tracked := r.in.Ancestor[a.Path]; !tracked || r.pol.Role == Output || skipAbove[a.Path] {
				r.plan[i].Op = 0
			}
		}
	}
	kept, keptOrder := r.plan[:0], r.dfs[:0]
	for i, a := range r.plan {
		if a.Op == 0 {
			continue
		}
		if drop[a.Path] && (a.Op == Copy || a.Op == Mkdir) {
			r.res.Blocked = append(r.res.Blocked, a.Path)
			continue
		}
		kept, keptOrder = append(kept, a), append(keptOrder, r.dfs[i])
	}
	r.plan, r.dfs = kept, keptOrder
}

// order sorts the plan into the order it must run: renames; removals,
// deepest first; creations and copies, parents first; ancestor updates.
func (r *reconciler) order() {
	sort.Stable(byPhase{r.plan, r.dfs})
	r.res.Actions = r.plan
}

// byPhase sorts a plan and its depth-first positions together (in place: a
// first sync plans a Record for every path).
type byPhase struct {
	a     []Action
	order []int32
}

func phase(o Op) int {
	switch o {
	case Rename:
		return 0
	case Remove:
		return 1
	case Mkdir, Copy:
		return 2
	}
	return 3
}

func (p byPhase) Len() int { return len(p.a) }

func (p byPhase) Swap(i, j int) {
	p.a[i], p.a[j] = p.a[j], p.a[i]
	p.order[i], p.order[j] = p.order[j], p.order[i]
}

func (p byPhase) Less(i, j int) bool {
	pi, pj := phase(p.a[i].Op), phase(p.a[j].Op)
	if pi != pj {
		return pi < pj
	}
	if pi == 1 {
		return p.order[i] > p.order[j]
	}
	return p.order[i] < p.order[j]
}
