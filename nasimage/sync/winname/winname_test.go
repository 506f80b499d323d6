package winname

import (
	"maps"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestProblem(t *testing.T) {
	for name, bad := range map[string]bool{
		"report.txt": false, "a b": false, "CONSOLE": false, "com0": false, "lpt10.txt": false, "é.txt": false,
		"a:b": true, "a*": true, "q?": true, `"x"`: true, "<x>": true, "a|b": true, `a\b`: true,
		"tab\tname": true, "trailing.": true, "trailing ": true,
		"CON": true, "con.txt": true, "Nul": true, "aux.tar.gz": true, "COM1": true, "lpt9.log": true,
	} {
		if got := Problem(name) != ""; got != bad {
			t.Errorf("Problem(%q) = %q, want bad=%v", name, Problem(name), bad)
		}
	}
}

func TestUnsyncable(t *testing.T) {
	f := reconcile.Entry{Kind: reconcile.File}
	d := reconcile.Entry{Kind: reconcile.Dir}
	nfs := reconcile.Tree{
		"a.txt": f, "A.txt": f, // new twins: first in byte order stays
		"Old.doc": f, "old.doc": f, // the synced one stays
		"win.txt":  f,                  // Windows has WIN.TXT
		"bad:name": d, "bad:name/x": f, // the subtree is skipped through its parent
		"dir": d, "dir/ok": f,
	}
	windows := reconcile.Tree{"WIN.TXT": f, "Old.doc": f}
	anc := reconcile.Ancestor{"Old.doc": {}}
	got := Unsyncable(nfs, windows, anc)
	want := map[string]bool{"a.txt": true, "old.doc": true, "win.txt": true, "bad:name": true}
	if !maps.Equal(keys(got), want) {
		t.Fatalf("got %v", got)
	}
}

func keys(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}
