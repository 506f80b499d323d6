package sync

import (
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestStabilityWantsTwoScansAQuietPeriodApart(t *testing.T) {
	const quiet = 500 * time.Millisecond
	clock := sideClock{granularity: 10 * time.Millisecond}
	t0 := time.Now()
	fresh := reconcile.Entry{Kind: reconcile.File, Size: 1, ModTime: t0.UnixNano()}
	grown := reconcile.Entry{Kind: reconcile.File, Size: 2, ModTime: t0.Add(100 * time.Millisecond).UnixNano()}
	old := reconcile.Entry{Kind: reconcile.File, Size: 1, ModTime: t0.Add(-time.Hour).UnixNano()}
	synced := reconcile.Entry{Kind: reconcile.File, Size: 1, ModTime: t0.UnixNano() - 1}
	anc := reconcile.Ancestor{"synced": {Windows: synced}}
	var st stability
	check := func(tr reconcile.Tree, at time.Duration) map[string]string {
		busy, _ := st.check(tr, anc, reconcile.Windows, nil, clock, t0.Add(at), quiet)
		return busy
	}
	tr := reconcile.Tree{"f": fresh, "old": old, "synced": synced}
	if busy := check(tr, 0); len(busy) != 1 || busy["f"] == "" {
		t.Fatalf("first sight: %v (an old file and a synced one are stable, a fresh one is not)", busy)
	}
	if busy := check(tr, quiet/2); busy["f"] == "" {
		t.Fatal("stable after less than the quiet period")
	}
	tr["f"] = grown // still being written
	if busy := check(tr, quiet); busy["f"] == "" {
		t.Fatal("a file that changed between scans is stable")
	}
	if busy := check(tr, quiet+quiet/2); busy["f"] == "" {
		t.Fatal("stable less than a quiet period after its last change")
	}
	if busy := check(tr, 2*quiet+time.Millisecond); len(busy) != 0 {
		t.Fatalf("unchanged for a quiet period, still busy: %v", busy)
	}
	// A Windows clock an hour behind ours makes a fresh file look old: the
	// probed offset puts it right.
	behind := sideClock{granularity: 10 * time.Millisecond, offset: -time.Hour}
	st = stability{}
	busy, _ := st.check(reconcile.Tree{"f": old}, reconcile.Ancestor{}, reconcile.Windows, nil, behind, t0, quiet)
	if busy["f"] == "" {
		t.Fatal("a file written just now by a clock an hour behind counted as old")
	}
}

func TestProbeClock(t *testing.T) {
	c := probeClock(t.TempDir())
	if c.granularity != minGranularity {
		t.Fatalf("granularity %v on a local filesystem", c.granularity)
	}
	if c.offset > time.Second || c.offset < -time.Second {
		t.Fatalf("offset %v on a local filesystem", c.offset)
	}
	if c := probeClock("/nonexistent/dir"); c.granularity != 2*time.Second {
		t.Fatalf("a failed probe gives %v, want the coarse default", c.granularity)
	}
}
