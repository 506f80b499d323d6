package reconcile

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSameSizeEditsAreAConflict is finding 1 of issue 12: both sides edit a
// synced file to the same size within 2 s. Only the contents tell the two
// versions apart; metadata alone kept each side's version forever.
func TestSameSizeEditsAreAConflict(t *testing.T) {
	v0 := Entry{Kind: File, Mode: 0o644, Size: 12, ModTime: 100e9}
	w := Entry{Kind: File, Mode: 0o644, Size: 12, ModTime: 200e9}
	n := Entry{Kind: File, Mode: 0o644, Size: 12, ModTime: 201e9}
	pol := Policy{Role: Output, Now: now}
	for _, c := range []struct {
		name  string
		anc   Ancestor
		equal bool
		want  string
	}{
		{"different bytes", Ancestor{"x": {Windows: v0, NFS: v0}}, false,
			"rename>windows x " + conflictX + "; copy>nfs " + conflictX + "; copy>windows x"},
		{"same bytes", Ancestor{"x": {Windows: v0, NFS: v0}}, true, "record x"},
		{"no ancestor, different bytes", nil, false,
			"rename>windows x " + conflictX + "; copy>nfs " + conflictX + "; copy>windows x"},
		{"no ancestor, same bytes", nil, true, "record x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := State{Ancestor: c.anc, Windows: Tree{"x": w}, NFS: Tree{"x": n}}
			if got := NeedsContent(st, pol); !slices.Equal(got, []string{"x"}) {
				t.Fatalf("NeedsContent = %v", got)
			}
			st.Equal = map[string]bool{"x": c.equal}
			if got := describeAll(Reconcile(st, pol).Actions); got != c.want {
				t.Fatalf("plan\n got: %s\nwant: %s", got, c.want)
			}
			// Without an answer the files count as different.
			st.Equal = nil
			if got := describeAll(Reconcile(st, pol).Actions); c.equal && !strings.Contains(got, "rename") {
				t.Fatalf("unanswered comparison planned %s", got)
			}
		})
	}
	// One way: an NFS file of the same size as Windows's is only left in
	// place if the bytes are the same.
	in := Policy{Role: Input, Now: now}
	st := State{Windows: Tree{"x": w}, NFS: Tree{"x": n}, Equal: map[string]bool{"x": false}}
	if got := describeAll(Reconcile(st, in).Actions); got != "copy>nfs x" {
		t.Fatalf("input: %s", got)
	}
}

func TestNeedsContentAsksOnlyAboutChangedOrNewPaths(t *testing.T) {
	f := func(size int64, mt int64) Entry { return Entry{Kind: File, Size: size, ModTime: mt} }
	anc := Ancestor{
		"same":     {Windows: f(1, 1), NFS: f(1, 1)},
		"one-side": {Windows: f(1, 1), NFS: f(1, 1)},
		"both":     {Windows: f(1, 1), NFS: f(1, 1)},
		"sizes":    {Windows: f(1, 1), NFS: f(1, 1)},
	}
	w := Tree{"same": f(1, 1), "one-side": f(1, 5), "both": f(1, 5), "sizes": f(2, 5), "new": f(3, 3), "new-w": f(1, 1)}
	n := Tree{"same": f(1, 1), "one-side": f(1, 1), "both": f(1, 6), "sizes": f(1, 6), "new": f(3, 9)}
	st := State{Ancestor: anc, Windows: w, NFS: n}
	if got := NeedsContent(st, Policy{Role: Output}); !slices.Equal(got, []string{"both", "new"}) {
		t.Fatalf("output: %v", got)
	}
	st.Census = TakeCensus(anc, w, n, nil)
	if got := NeedsContent(st, Policy{Role: Output}); !slices.Equal(got, []string{"both", "new"}) {
		t.Fatalf("output with a census: %v", got)
	}
	// A dirty path (racy timestamp, content changed) counts as changed.
	st = State{Ancestor: anc, Windows: w, NFS: n, Dirty: map[string]SideSet{"one-side": Sides(NFS)}}
	if got := NeedsContent(st, Policy{Role: Output}); !slices.Equal(got, []string{"both", "new", "one-side"}) {
		t.Fatalf("output, dirty: %v", got)
	}
}

// TestDirtyCountsAsChanged: a racily clean entry whose content the engine
// found changed is planned as a change of that side.
func TestDirtyCountsAsChanged(t *testing.T) {
	e := Entry{Kind: File, Size: 12, ModTime: 100e9}
	anc := Ancestor{"x": {Windows: e, NFS: e}}
	for _, c := range []struct {
		pol   Policy
		dirty SideSet
		want  string
	}{
		{Policy{Role: Output, Now: now}, Sides(Windows), "copy>nfs x"},
		{Policy{Role: Output, Now: now}, Sides(NFS), "copy>windows x"},
		{Policy{Role: Output, Now: now}, Sides(Windows, NFS), "rename>windows x " + conflictX + "; copy>nfs " + conflictX + "; copy>windows x"},
		{Policy{Role: Input, Now: now}, Sides(Windows), "copy>nfs x"},
	} {
		st := State{Ancestor: anc, Windows: Tree{"x": e}, NFS: Tree{"x": e}, Dirty: map[string]SideSet{"x": c.dirty}}
		st.Census = TakeCensus(anc, st.Windows, st.NFS, st.Dirty)
		if got := describeAll(Reconcile(st, c.pol).Actions); got != c.want {
			t.Errorf("%v dirty %b: %s, want %s", c.pol.Role, c.dirty, got, c.want)
		}
	}
}

// TestHoldRemovesNothing: while a side's absences are not trusted (its root
// was emptied in one round), nothing is removed because it is missing there;
// other changes still flow.
func TestHoldRemovesNothing(t *testing.T) {
	anc, w, n := synced(map[string]Entry{"k": file(1), "s": dir, "s/t": file(3)})
	for _, pol := range []Policy{{Role: Output, Now: now}, {Role: Input, Now: now}, {Role: Input, Mirror: true, Now: now}} {
		st := State{Ancestor: anc, Windows: Tree{}, NFS: n, Hold: Sides(Windows)}
		if got := describeAll(Reconcile(st, pol).Actions); got != "" {
			t.Errorf("%v mirror=%v, windows emptied: %s", pol.Role, pol.Mirror, got)
		}
	}
	out := Policy{Role: Output, Now: now}
	n2 := Tree{"new": file(2)}
	st := State{Ancestor: anc, Windows: w, NFS: n2, Hold: Sides(NFS)}
	if got := describeAll(Reconcile(st, out).Actions); got != "copy>windows new" {
		t.Errorf("nfs emptied and a new file: %s", got)
	}
	st.Hold = 0
	if got := describeAll(Reconcile(st, out).Actions); !strings.Contains(got, "remove>windows k") {
		t.Errorf("released: %s", got)
	}
}

// cworld is an output pair whose files carry contents (version numbers),
// so that two versions of the same size and close mtimes are still two.
type cworld struct {
	anc  Ancestor
	tree map[Side]Tree
	data map[Side]map[string]int
	// synced is the version the ancestor records at a path (both sides
	// held it); snap is the data a plan was made from.
	synced map[string]int
	snap   map[Side]map[string]int
}

func (c *cworld) state() State {
	c.snap = map[Side]map[string]int{Windows: maps.Clone(c.data[Windows]), NFS: maps.Clone(c.data[NFS])}
	st := State{Ancestor: c.anc, Windows: c.tree[Windows], NFS: c.tree[NFS], Equal: map[string]bool{}}
	for _, p := range NeedsContent(st, Policy{Role: Output}) {
		st.Equal[p] = c.data[Windows][p] == c.data[NFS][p]
	}
	return st
}

// apply carries out a plan made from st, skipping an action whose
// preconditions no longer hold (the applier's ErrStale), as the engine does.
func (c *cworld) apply(st State, plan Result) {
	for _, a := range plan.Actions {
		dst := c.tree[a.To]
		switch a.Op {
		case Copy:
			src := c.tree[a.To.Other()]
			if src[a.Path] != a.Source || dst[a.Path] != a.Dest {
				continue
			}
			e := a.Source
			if a.To == Windows {
				e.ModTime -= e.ModTime % 2e9 // a FAT-like share
			}
			dst[a.Path] = e
			c.data[a.To][a.Path] = c.data[a.To.Other()][a.Path]
			c.synced[a.Path] = c.data[a.To][a.Path]
			if a.To == NFS {
				c.anc[a.Path] = Pair{Windows: a.Source, NFS: e}
			} else {
				c.anc[a.Path] = Pair{Windows: e, NFS: a.Source}
			}
		case Remove:
			if dst[a.Path] != a.Dest {
				continue
			}
			delete(dst, a.Path)
			delete(c.data[a.To], a.Path)
			delete(c.anc, a.Path)
			delete(c.synced, a.Path)
		case Rename:
			if dst[a.Path] != a.Dest {
				continue
			}
			if _, ok := dst[a.NewPath]; ok {
				continue
			}
			dst[a.NewPath], c.data[a.To][a.NewPath] = dst[a.Path], c.data[a.To][a.Path]
			delete(dst, a.Path)
			delete(c.data[a.To], a.Path)
		case Record:
			c.anc[a.Path] = Pair{Windows: st.Windows[a.Path], NFS: st.NFS[a.Path]}
			c.synced[a.Path] = c.snap[Windows][a.Path]
		case Forget:
			delete(c.anc, a.Path)
			delete(c.synced, a.Path)
		}
	}
}

// TestEveryLastVersionSurvives is the conflict property: for random
// interleavings of edits on both sides (same sizes, mtimes less than 2 s
// apart, edits landing between a plan and its application), every version a
// side held when the edits stopped exists on both sides once the sync is
// quiet, as the file or as one of its conflict copies.
func TestEveryLastVersionSurvives(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 11))
	paths := []string{"x", "y", "z"}
	for iter := range 5000 {
		c := &cworld{anc: Ancestor{}, tree: map[Side]Tree{Windows: {}, NFS: {}}, data: map[Side]map[string]int{Windows: {}, NFS: {}}, synced: map[string]int{}}
		version := 0
		clock := int64(1000e9)
		var log []string
		edit := func() {
			s := Side(1 + rng.IntN(2))
			p := paths[rng.IntN(len(paths))]
			if _, ok := c.tree[s][p]; ok && rng.IntN(4) == 0 {
				delete(c.tree[s], p)
				delete(c.data[s], p)
				log = append(log, fmt.Sprintf("%s: rm %s", s, p))
				return
			}
			version++
			clock += rng.Int64N(1.5e9) + 1 // within 2 s of the last edit
			size := int64(12)
			if rng.IntN(5) == 0 {
				size = 20
			}
			c.tree[s][p] = Entry{Kind: File, Mode: 0o644, Size: size, ModTime: clock}
			c.data[s][p] = version
			log = append(log, fmt.Sprintf("%s: write %s v%d", s, p, version))
		}
		round := func(i int, racing bool) int {
			st := c.state()
			plan := Reconcile(st, Policy{Role: Output, Now: time.Unix(int64(1e6+i), 0)})
			for racing && rng.IntN(3) == 0 {
				edit() // between the scan and the applying
			}
			c.apply(st, plan)
			return len(plan.Actions)
		}
		for i := range 1 + rng.IntN(8) {
			for range rng.IntN(4) {
				edit()
			}
			round(i, true)
		}
		// The versions each side held when the edits stopped, except the
		// synced one where the other side has moved on (edited or deleted
		// it after seeing it): that is the other side's change, not a loss.
		last := map[int]string{}
		for _, s := range []Side{Windows, NFS} {
			for p, v := range c.data[s] {
				if sv, ok := c.synced[p]; ok && sv == v && c.data[s.Other()][p] != v {
					continue
				}
				last[v] = p
			}
		}
		quiet := false
		for i := 100; i < 110 && !quiet; i++ {
			quiet = round(i, false) == 0
		}
		if !quiet {
			t.Fatalf("iteration %d: no quiet after 10 rounds\n%s", iter, strings.Join(log, "\n"))
		}
		for v, p := range last {
			base := p
			if i := strings.Index(p, ".conflict-windows-"); i >= 0 {
				base = p[:i]
			}
			for _, s := range []Side{Windows, NFS} {
				found := false
				for q, u := range c.data[s] {
					if u == v && (q == base || strings.HasPrefix(q, base+".conflict-windows-")) {
						found = true
					}
				}
				if !found {
					t.Fatalf("iteration %d: version %d (last at %s) missing on %s\nedits:\n%s\nwindows %v\nnfs %v",
						iter, v, p, s, strings.Join(log, "\n"), c.data[Windows], c.data[NFS])
				}
			}
		}
	}
}
