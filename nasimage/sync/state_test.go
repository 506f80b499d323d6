package sync

import (
	"fmt"
	"maps"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestAncestorRoundTrip(t *testing.T) {
	dir := t.TempDir()
	anc := reconcile.Ancestor{}
	for i := range 3*stateChunk + 5 {
		e := reconcile.Entry{Kind: reconcile.File, Size: int64(i), ModTime: int64(i) * 1e9, Mode: 0o644}
		anc[fmt.Sprintf("d/f%05d", i)] = reconcile.Pair{Windows: e, NFS: e}
	}
	anc["l"] = reconcile.Pair{Windows: reconcile.Entry{Kind: reconcile.Symlink, Target: "x"}, NFS: reconcile.Entry{Kind: reconcile.Symlink, Target: "x"}}
	if err := saveAncestor(dir, stateHeader{Windows: "/w", NFS: "/n", NFSID: "x"}, anc); err != nil {
		t.Fatal(err)
	}
	got, h, err := loadAncestor(dir, "/w", "/n")
	if err != nil || !maps.Equal(got, anc) || h.NFSID != "x" {
		t.Fatalf("round trip: %d entries, err %v", len(got), err)
	}
	// Other roots: start from scratch rather than see every file deleted.
	if other, _, err := loadAncestor(dir, "/w2", "/n"); err != nil || len(other) != 0 {
		t.Fatalf("foreign state used: %d entries, %v", len(other), err)
	}
	if empty, _, err := loadAncestor(t.TempDir(), "/w", "/n"); err != nil || len(empty) != 0 {
		t.Fatalf("missing state: %v %v", empty, err)
	}
}
