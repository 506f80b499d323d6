package reconcile

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// world applies plans to in-memory trees the way the applier applies them to
// disks, checking each action's preconditions as the applier does. Copies to
// Windows come out with 2 s mtimes and 0777 modes (a FAT-like share), so the
// tests also prove a copy is never taken for a change.
type world struct {
	anc Ancestor
	w   Tree
	n   Tree
}

func newWorld(anc Ancestor, w, n Tree) *world {
	wd := &world{anc: maps.Clone(anc), w: maps.Clone(w), n: maps.Clone(n)}
	if wd.anc == nil {
		wd.anc = Ancestor{}
	}
	return wd
}

func (wd *world) tree(s Side) Tree {
	if s == Windows {
		return wd.w
	}
	return wd.n
}

func (wd *world) state() State {
	return State{Ancestor: wd.anc, Windows: wd.w, NFS: wd.n}
}

func (wd *world) record(p string) {
	wd.anc[p] = Pair{Windows: wd.w[p], NFS: wd.n[p]}
}

func (wd *world) apply(res Result) error {
	for _, a := range res.Actions {
		if err := wd.applyOne(a); err != nil {
			return fmt.Errorf("%s: %w", describe(a), err)
		}
	}
	return nil
}

func (wd *world) applyOne(a Action) error {
	dst := wd.tree(a.To)
	needParent := func(t Tree, p string) error {
		if d := Parent(p); d != "" && t[d].Kind != Dir {
			return fmt.Errorf("parent %q is %v", d, t[d].Kind)
		}
		return nil
	}
	switch a.Op {
	case Copy, Mkdir:
		src := wd.tree(a.To.Other())[a.Path]
		if src != a.Source {
			return fmt.Errorf("source is %+v, planned %+v", src, a.Source)
		}
		if a.Op == Mkdir {
			if dst[a.Path].Kind == Dir {
				break
			}
			if dst[a.Path].Kind != Absent {
				return fmt.Errorf("mkdir over %v", dst[a.Path].Kind)
			}
		} else if dst[a.Path] != a.Dest {
			return fmt.Errorf("dest is %+v, planned %+v", dst[a.Path], a.Dest)
		}
		if err := needParent(dst, a.Path); err != nil {
			return err
		}
		e := src
		if a.To == Windows && e.Kind == File {
			e.ModTime -= e.ModTime % 2e9
			e.Mode = 0o777
		}
		if e.Kind == Dir {
			e = Entry{Kind: Dir, Mode: 0o755}
		}
		dst[a.Path] = e
		wd.record(a.Path)
	case Remove:
		if dst[a.Path] != a.Dest {
			return fmt.Errorf("dest is %+v, planned %+v", dst[a.Path], a.Dest)
		}
		for q := range dst {
			if Under(q, a.Path) && q != a.Path {
				return fmt.Errorf("directory not empty: %q", q)
			}
		}
		delete(dst, a.Path)
		delete(wd.anc, a.Path)
	case Rename:
		if dst[a.Path] != a.Dest {
			return fmt.Errorf("dest is %+v, planned %+v", dst[a.Path], a.Dest)
		}
		if _, ok := dst[a.NewPath]; ok {
			return fmt.Errorf("rename target exists")
		}
		for q, e := range dst {
			if Under(q, a.Path) {
				delete(dst, q)
				dst[a.NewPath+q[len(a.Path):]] = e
			}
		}
	case Record:
		wd.record(a.Path)
	case Forget:
		delete(wd.anc, a.Path)
	default:
		return fmt.Errorf("unknown op")
	}
	return nil
}

// agree checks the two sides hold what the policy asks for.
func (wd *world) agree(pol Policy) error {
	for p, w := range wd.w {
		if n := wd.n[p]; !SameContent(w, n) {
			return fmt.Errorf("%q: windows %+v, nfs %+v", p, w, n)
		}
	}
	if pol.Role == Output || pol.Mirror {
		for p, n := range wd.n {
			if _, ok := wd.w[p]; !ok {
				return fmt.Errorf("%q: nfs %v not on windows", p, n.Kind)
			}
		}
	}
	return nil
}

func describe(a Action) string {
	switch a.Op {
	case Record, Forget:
		return a.Op.String() + " " + a.Path
	case Rename:
		return fmt.Sprintf("rename>%s %s %s", a.To, a.Path, a.NewPath)
	}
	return fmt.Sprintf("%s>%s %s", a.Op, a.To, a.Path)
}

func describeAll(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = describe(a)
	}
	return strings.Join(s, "; ")
}

// settle applies one plan, then checks the sides agree and that reconciling
// again plans nothing: no sync loops.
func settle(t *testing.T, wd *world, pol Policy, res Result) {
	t.Helper()
	if err := wd.apply(res); err != nil {
		t.Fatalf("apply %s: %v", describeAll(res.Actions), err)
	}
	if len(res.Blocked) == 0 {
		if err := wd.agree(pol); err != nil {
			t.Fatalf("after %s: sides disagree: %v", describeAll(res.Actions), err)
		}
	}
	again := reconcileAll(compared(wd.state(), pol), pol)
	if settled(compared(wd.state(), pol), pol) && len(again.Actions) != 0 {
		t.Fatalf("settled, but a full plan has %d actions", len(again.Actions))
	}
	if len(again.Actions) != 0 {
		t.Fatalf("after %s: second round planned %s", describeAll(res.Actions), describeAll(again.Actions))
	}
}

// compared answers NeedsContent the way the engine does by reading files:
// in these tests a file's size stands for its content unless a test says
// otherwise with its own State.Equal.
func compared(st State, pol Policy) State {
	if st.Equal != nil {
		return st
	}
	st.Equal = map[string]bool{}
	for _, p := range NeedsContent(st, pol) {
		st.Equal[p] = st.Windows[p].Size == st.NFS[p].Size
	}
	return st
}
