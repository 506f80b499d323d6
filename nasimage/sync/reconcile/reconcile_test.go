package reconcile

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC)

const conflictX = "x.conflict-windows-20261128T010203Z"

func file(v int) Entry {
	return Entry{Kind: File, Mode: 0o644, Size: int64(v) * 10, ModTime: int64(v) * 10e9}
}

var dir = Entry{Kind: Dir, Mode: 0o755}

// sideState is one side's state of path "x" relative to the ancestor.
type sideState struct {
	name string
	e    Entry
}

var (
	absent   = sideState{"absent", Entry{}}
	newFile  = sideState{"new-file", file(1)}
	newDir   = sideState{"new-dir", dir}
	same     = sideState{"unchanged", Entry{}} // filled from the ancestor
	modified = sideState{"modified", file(2)}
	deleted  = sideState{"deleted", Entry{}}
	toDir    = sideState{"type-changed", dir}
	toFile   = sideState{"type-changed", file(2)}
)

// TestReconcileCombinations covers every (ancestor, windows, nfs) state of one
// path for each role. Expected plans are written as "op>side path".
func TestReconcileCombinations(t *testing.T) {
	type tc struct {
		anc    string // "", "file", "dir"
		w, n   sideState
		nDiff  bool   // both sides modified/created files, to different contents
		input  string // Input and Backup, no mirror
		mirror string // Input with Mirror; "=" means as input
		output string
	}
	conflictFile := "rename>windows x " + conflictX + "; copy>nfs " + conflictX + "; copy>windows x"
	cases := []tc{
		{anc: "", w: absent, n: newFile, input: "", mirror: "remove>nfs x", output: "copy>windows x"},
		{anc: "", w: absent, n: newDir, input: "", mirror: "remove>nfs x", output: "mkdir>windows x"},
		{anc: "", w: newFile, n: absent, input: "copy>nfs x", mirror: "=", output: "copy>nfs x"},
		{anc: "", w: newFile, n: newFile, input: "record x", mirror: "=", output: "record x"},
		{anc: "", w: newFile, n: newFile, nDiff: true, input: "copy>nfs x", mirror: "=", output: conflictFile},
		{anc: "", w: newFile, n: newDir, input: "remove>nfs x; copy>nfs x", mirror: "=",
			output: "rename>windows x " + conflictX + "; copy>nfs " + conflictX + "; mkdir>windows x"},
		{anc: "", w: newDir, n: absent, input: "mkdir>nfs x", mirror: "=", output: "mkdir>nfs x"},
		{anc: "", w: newDir, n: newFile, input: "remove>nfs x; mkdir>nfs x", mirror: "=",
			output: "rename>windows x " + conflictX + "; mkdir>nfs " + conflictX + "; copy>windows x"},
		{anc: "", w: newDir, n: newDir, input: "record x", mirror: "=", output: "record x"},

		{anc: "file", w: same, n: same, input: "", mirror: "=", output: ""},
		{anc: "file", w: same, n: modified, input: "copy>nfs x", mirror: "=", output: "copy>windows x"},
		{anc: "file", w: same, n: deleted, input: "copy>nfs x", mirror: "=", output: "remove>windows x"},
		{anc: "file", w: same, n: toDir, input: "remove>nfs x; copy>nfs x", mirror: "=", output: "remove>windows x; mkdir>windows x"},
		{anc: "file", w: modified, n: same, input: "copy>nfs x", mirror: "=", output: "copy>nfs x"},
		{anc: "file", w: modified, n: modified, input: "record x", mirror: "=", output: "record x"},
		{anc: "file", w: modified, n: modified, nDiff: true, input: "copy>nfs x", mirror: "=", output: conflictFile},
		{anc: "file", w: modified, n: deleted, input: "copy>nfs x", mirror: "=", output: "copy>nfs x"},
		{anc: "file", w: modified, n: toDir, input: "remove>nfs x; copy>nfs x", mirror: "=",
			output: "rename>windows x " + conflictX + "; copy>nfs " + conflictX + "; mkdir>windows x"},
		{anc: "file", w: deleted, n: same, input: "remove>nfs x", mirror: "=", output: "remove>nfs x"},
		{anc: "file", w: deleted, n: modified, input: "forget x", mirror: "remove>nfs x", output: "copy>windows x"},
		{anc: "file", w: deleted, n: deleted, input: "forget x", mirror: "=", output: "forget x"},
		{anc: "file", w: deleted, n: toDir, input: "forget x", mirror: "remove>nfs x", output: "mkdir>windows x"},
		{anc: "file", w: toDir, n: same, input: "remove>nfs x; mkdir>nfs x", mirror: "=", output: "remove>nfs x; mkdir>nfs x"},
		{anc: "file", w: toDir, n: modified, input: "remove>nfs x; mkdir>nfs x", mirror: "=",
			output: "rename>windows x " + conflictX + "; mkdir>nfs " + conflictX + "; copy>windows x"},
		{anc: "file", w: toDir, n: deleted, input: "mkdir>nfs x", mirror: "=", output: "mkdir>nfs x"},
		{anc: "file", w: toDir, n: toDir, input: "record x", mirror: "=", output: "record x"},

		{anc: "dir", w: same, n: same, input: "", mirror: "=", output: ""},
		{anc: "dir", w: same, n: deleted, input: "mkdir>nfs x", mirror: "=", output: "remove>windows x"},
		{anc: "dir", w: same, n: toFile, input: "remove>nfs x; mkdir>nfs x", mirror: "=", output: "remove>windows x; copy>windows x"},
		{anc: "dir", w: deleted, n: same, input: "remove>nfs x", mirror: "=", output: "remove>nfs x"},
		{anc: "dir", w: deleted, n: deleted, input: "forget x", mirror: "=", output: "forget x"},
		{anc: "dir", w: deleted, n: toFile, input: "forget x", mirror: "remove>nfs x", output: "copy>windows x"},
		{anc: "dir", w: toFile, n: same, input: "remove>nfs x; copy>nfs x", mirror: "=", output: "remove>nfs x; copy>nfs x"},
		{anc: "dir", w: toFile, n: deleted, input: "copy>nfs x", mirror: "=", output: "copy>nfs x"},
		{anc: "dir", w: toFile, n: toFile, nDiff: true, input: "copy>nfs x", mirror: "=", output: conflictFile},
		{anc: "dir", w: toFile, n: toFile, input: "record x", mirror: "=", output: "record x"},
	}
	for _, c := range cases {
		anc := Ancestor{}
		var ae Entry
		switch c.anc {
		case "file":
			ae = file(1)
		case "dir":
			ae = dir
		}
		if ae.Kind != Absent {
			anc["x"] = Pair{Windows: ae, NFS: ae}
		}
		build := func(s sideState, other bool) Tree {
			e := s.e
			if s == same {
				e = ae
			}
			if other && c.nDiff {
				e = file(3)
			}
			if e.Kind == Absent {
				return Tree{}
			}
			return Tree{"x": e}
		}
		st := State{Ancestor: anc, Windows: build(c.w, false), NFS: build(c.n, true)}
		ancName := c.anc
		if ancName == "" {
			ancName = "none"
		}
		name := fmt.Sprintf("ancestor=%s/windows=%s/nfs=%s", ancName, c.w.name, c.n.name)
		if c.nDiff {
			name += "/different"
		}
		mirror := c.mirror
		if mirror == "=" {
			mirror = c.input
		}
		for _, r := range []struct {
			pol  Policy
			want string
		}{
			{Policy{Role: Input, Now: now}, c.input},
			{Policy{Role: Backup, Now: now}, c.input},
			{Policy{Role: Input, Mirror: true, Now: now}, mirror},
			{Policy{Role: Output, Now: now}, c.output},
		} {
			label := r.pol.Role.String()
			if r.pol.Mirror {
				label += "-mirror"
			}
			t.Run(name+"/"+label, func(t *testing.T) {
				res := Reconcile(compared(st, r.pol), r.pol)
				if got := describeAll(res.Actions); got != r.want {
					t.Fatalf("plan\n got: %s\nwant: %s", got, r.want)
				}
				settle(t, newWorld(st.Ancestor, st.Windows, st.NFS), r.pol, res)
			})
		}
	}
}

func synced(paths map[string]Entry) (Ancestor, Tree, Tree) {
	anc, w, n := Ancestor{}, Tree{}, Tree{}
	for p, e := range paths {
		anc[p] = Pair{Windows: e, NFS: e}
		w[p], n[p] = e, e
	}
	return anc, w, n
}

func TestReconcileTrees(t *testing.T) {
	out := Policy{Role: Output, Now: now}
	in := Policy{Role: Input, Now: now}
	cases := []struct {
		name  string
		pol   Policy
		setup func(anc Ancestor, w, n Tree)
		want  string
	}{
		{"new nested tree on windows: parents first", in, func(anc Ancestor, w, n Tree) {
			w["d"], w["d/e"], w["d/e/f"], w["d/a"] = dir, dir, file(1), file(2)
		}, "mkdir>nfs d; copy>nfs d/a; mkdir>nfs d/e; copy>nfs d/e/f"},
		{"tree deleted on windows: deepest first", in, func(anc Ancestor, w, n Tree) {
			delete(w, "s")
			delete(w, "s/t")
			delete(w, "s/t/u")
		}, "remove>nfs s/t/u; remove>nfs s/t; remove>nfs s"},
		{"input leaves an NFS client's file and its directory alone", in, func(anc Ancestor, w, n Tree) {
			delete(w, "s")
			delete(w, "s/t")
			delete(w, "s/t/u")
			n["s/t/mine"] = file(5)
		}, "remove>nfs s/t/u; forget s; forget s/t"},
		{"output: deletion on windows loses to a new file inside on nfs", out, func(anc Ancestor, w, n Tree) {
			delete(w, "s")
			delete(w, "s/t")
			delete(w, "s/t/u")
			n["s/t/new"] = file(5)
		}, "remove>nfs s/t/u; mkdir>windows s; mkdir>windows s/t; copy>windows s/t/new"},
		{"output: directory replaced by a file on windows while nfs changed inside", out, func(anc Ancestor, w, n Tree) {
			delete(w, "s/t")
			delete(w, "s/t/u")
			w["s"] = file(4)
			n["s/t/u"] = file(6)
		}, "rename>windows s s.conflict-windows-20261128T010203Z; copy>nfs s.conflict-windows-20261128T010203Z; mkdir>windows s; mkdir>windows s/t; copy>windows s/t/u"},
		{"renamed file on windows", out, func(anc Ancestor, w, n Tree) {
			w["k2"] = w["k"]
			delete(w, "k")
		}, "remove>nfs k; copy>nfs k2"},
		{"renamed directory on nfs", out, func(anc Ancestor, w, n Tree) {
			for _, p := range []string{"s", "s/t", "s/t/u"} {
				n["r"+p[1:]] = n[p]
				delete(n, p)
			}
		}, "remove>windows s/t/u; remove>windows s/t; remove>windows s; mkdir>windows r; mkdir>windows r/t; copy>windows r/t/u"},
		{"a directory holding a skipped path is kept, and still ours", in, func(anc Ancestor, w, n Tree) {
			delete(w, "s")
			delete(w, "s/t")
			delete(w, "s/t/u")
			n["s/t/busy"] = file(5)
			delete(n, "s/t/u")
			anc["s/t/busy"] = Pair{Windows: file(5), NFS: file(5)}
			delete(anc, "s/t/u")
		}, ""},
		{"skipped path and its subtree are left alone", Policy{Role: Output, Now: now}, func(anc Ancestor, w, n Tree) {
			n["bad:name"] = dir
			n["bad:name/x"] = file(1)
			delete(n, "k")
		}, "remove>windows k"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			anc, w, n := synced(map[string]Entry{"k": file(1), "s": dir, "s/t": dir, "s/t/u": file(3)})
			c.setup(anc, w, n)
			st := State{Ancestor: anc, Windows: w, NFS: n, Skip: map[string]string{"bad:name": "illegal"}}
			if strings.Contains(c.name, "skipped path is kept") {
				st.Skip["s/t/busy"] = "still being written"
			}
			res := Reconcile(compared(st, c.pol), c.pol)
			if got := describeAll(res.Actions); got != c.want {
				t.Fatalf("plan\n got: %s\nwant: %s", got, c.want)
			}
			wd := newWorld(anc, w, n)
			if err := wd.apply(res); err != nil {
				t.Fatal(err)
			}
			if again := Reconcile(compared(State{Ancestor: wd.anc, Windows: wd.w, NFS: wd.n, Skip: st.Skip}, c.pol), c.pol); len(again.Actions) != 0 {
				t.Fatalf("second round planned %s", describeAll(again.Actions))
			}
			again := State{Ancestor: wd.anc, Windows: wd.w, NFS: wd.n, Skip: st.Skip, Census: TakeCensus(wd.anc, wd.w, wd.n, nil)}
			if res := Reconcile(compared(again, c.pol), c.pol); len(res.Actions) != 0 {
				t.Fatalf("second round with a census planned %s", describeAll(res.Actions))
			}
		})
	}
}

func TestConflictName(t *testing.T) {
	if got := ConflictName("dir/report.xlsx", time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))); got != "dir/report.xlsx.conflict-windows-20260102T020405Z" {
		t.Fatal(got)
	}
}

func TestPathCompareIsDepthFirst(t *testing.T) {
	p := []string{"a.txt", "a/b", "a", "a/b/c", "a-b", "b"}
	slices.SortFunc(p, pathCompare)
	if got := strings.Join(p, " "); got != "a a/b a/b/c a-b a.txt b" {
		t.Fatal(got)
	}
}

// universe is the set of paths random trees are drawn from.
var universe = []string{"a", "a/b", "a/b/c", "a/d", "e", "e/f", "g"}

func randomTree(rng *rand.Rand, base Tree, churn float64) Tree {
	t := Tree{}
	for _, p := range universe { // universe is in depth-first order
		if d := Parent(p); d != "" && t[d].Kind != Dir {
			continue
		}
		if e, ok := base[p]; ok && rng.Float64() >= churn {
			t[p] = e
			continue
		}
		if base != nil && rng.Float64() >= churn {
			continue // absent in base, stays absent
		}
		switch rng.IntN(5) {
		case 0, 1:
		case 2:
			t[p] = dir
		default:
			t[p] = file(1 + rng.IntN(3))
		}
	}
	return t
}

// TestReconcileProperties: for random ancestors and random changes on both
// sides, applying the plan makes the sides agree under the policy, and
// reconciling again right after plans nothing.
func TestReconcileProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pols := []Policy{{Role: Input, Now: now}, {Role: Input, Mirror: true, Now: now}, {Role: Output, Now: now}}
	for i := range 20000 {
		var anc Ancestor
		var base Tree
		if rng.IntN(4) > 0 {
			base = randomTree(rng, nil, 1)
			anc = Ancestor{}
			for p, e := range base {
				anc[p] = Pair{Windows: e, NFS: e}
			}
		}
		w := randomTree(rng, base, 0.3)
		n := randomTree(rng, base, 0.3)
		pol := pols[i%len(pols)]
		st := State{Ancestor: anc, Windows: w, NFS: n}
		res := Reconcile(compared(st, pol), pol)
		if full := reconcileAll(compared(st, pol), pol); settled(compared(st, pol), pol) && len(full.Actions) != 0 {
			t.Fatalf("case %d: settled, but a full plan has %d actions", i, len(full.Actions))
		}
		withCensus := st
		withCensus.Census = TakeCensus(anc, w, n, nil)
		if settled(compared(withCensus, pol), pol) != settled(compared(st, pol), pol) {
			t.Fatalf("case %d: settled with a census differs from without", i)
		}
		if a, b := describeAll(Reconcile(compared(withCensus, pol), pol).Actions), describeAll(res.Actions); a != b {
			t.Fatalf("case %d: plan with a census\n got: %s\nwant: %s", i, a, b)
		}
		if c := withCensus.Census; len(w) > 0 && (c.SeenWindows > len(w) || c.SeenNFS > len(n)) {
			t.Fatalf("case %d: census %+v counts more than the trees hold", i, c)
		}
		t.Run(fmt.Sprintf("case%d", i), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("policy %v mirror=%v\nancestor %v\nwindows %v\nnfs %v", pol.Role, pol.Mirror, anc, w, n)
				}
			}()
			settle(t, newWorld(anc, w, n), pol, res)
		})
		if t.Failed() {
			return
		}
	}
}
