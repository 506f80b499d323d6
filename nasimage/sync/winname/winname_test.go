package winname

import (
	"maps"
	"strings"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestProblem(t *testing.T) {
	long := strings.Repeat("a", 255)
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"report.txt", false}, {"a b", false}, {"CONSOLE", false}, {"é.txt", false},
		{"COM10", false}, {"lpt10.txt", false}, {"COMA", false}, {"COM", false}, {"CONIN", false},
		{"COM\u2074", false}, // superscript 4 is no digit to Windows
		{"xCON", false}, {"CON-1.txt", false}, {".CON", false},
		{long, false}, {strings.Repeat("é", 255), false}, // 255 UTF-16 units, 510 bytes
		{strings.Repeat("😀", 127) + "a", false}, // 255 units: each emoji is a surrogate pair

		{"a:b", true}, {"a*", true}, {"q?", true}, {`"x"`, true}, {"<x>", true}, {"a|b", true}, {`a\b`, true},
		{"tab\tname", true}, {"trailing.", true}, {"trailing ", true},
		{"CON", true}, {"con.txt", true}, {"Nul", true}, {"aux.tar.gz", true}, {"PRN", true},
		{"COM0", true}, {"COM1", true}, {"com9.log", true}, {"LPT0.txt", true}, {"lpt9.log", true},
		{"COM\u00b9", true}, {"com\u00b2.txt", true}, {"LPT\u00b3", true}, {"lpt\u00b9.dat", true},
		{"CONIN$", true}, {"conout$", true}, {"CONOUT$.txt", true}, {"con .txt", true}, {"NUL .", true},
		{"bad\xffname", true}, {"\xc3", true}, // not UTF-8
		{long + "a", true}, {strings.Repeat("é", 256), true}, {strings.Repeat("😀", 128), true},
	} {
		if got := Problem(c.name) != ""; got != c.bad {
			t.Errorf("Problem(%q) = %q, want bad=%v", c.name, Problem(c.name), c.bad)
		}
	}
}

func TestPathProblem(t *testing.T) {
	for _, c := range []struct {
		rel string
		max int
		bad bool
	}{
		{"a/b.txt", 0, false},
		{strings.Repeat("a/", 16383) + "b", 0, false}, // 32,767 units
		{strings.Repeat("a/", 16384), 0, true},
		{strings.Repeat("x", 200), 200, false},
		{strings.Repeat("x", 201), 200, true},
		{strings.Repeat("😀", 100), 200, false}, // 200 units, 400 bytes
		{strings.Repeat("😀", 101), 200, true},
	} {
		if got := PathProblem(c.rel, c.max) != ""; got != c.bad {
			t.Errorf("PathProblem(%d bytes, %d) = %q, want bad=%v", len(c.rel), c.max, PathProblem(c.rel, c.max), c.bad)
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
	got := Unsyncable(nfs, windows, anc, 0)
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
