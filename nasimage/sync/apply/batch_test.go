package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestBatchCopiesAndRefusesStalePlans(t *testing.T) {
	ap, w, n := setup(t)
	b := ap.NewBatch()
	var want []string
	for i := range 20 {
		p := fmt.Sprintf("f%02d", i)
		os.WriteFile(filepath.Join(w, p), []byte(p), 0o640)
		a := reconcile.Action{Op: reconcile.Copy, Path: p, To: reconcile.NFS, Source: stat(t, w, p)}
		if !Batchable(a) {
			t.Fatal("a file copy is batchable")
		}
		b.Add(a)
		want = append(want, p)
	}
	// After planning: one source changes, one destination appears.
	os.WriteFile(filepath.Join(w, "f03"), []byte("changed after the scan"), 0o640)
	os.WriteFile(filepath.Join(n, "f07"), []byte("an NFS client's"), 0o644)
	res := b.Run(context.Background())
	if len(res) != len(want) || b.Len() != 0 {
		t.Fatalf("%d results, %d left", len(res), b.Len())
	}
	for i, r := range res {
		p := want[i]
		switch p {
		case "f03", "f07":
			if !errors.Is(r.Err, ErrStale) {
				t.Fatalf("%s: %v, want stale", p, r.Err)
			}
		default:
			if r.Err != nil {
				t.Fatalf("%s: %v", p, r.Err)
			}
			if b, _ := os.ReadFile(filepath.Join(n, p)); string(b) != p {
				t.Fatalf("%s holds %q", p, b)
			}
			if dst := stat(t, n, p); r.Outcome.Pair.NFS != dst || r.Outcome.Pair.Windows != r.Action.Source {
				t.Fatalf("%s: pair %+v, dst %+v", p, r.Outcome.Pair, dst)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(n, "f07")); string(b) != "an NFS client's" {
		t.Fatalf("a destination that appeared was replaced: %q", b)
	}
	if _, err := os.Stat(filepath.Join(n, "f03")); err == nil {
		t.Fatal("a stale copy was installed")
	}
	ents, _ := os.ReadDir(n)
	if len(ents) != len(want)-1 {
		t.Fatalf("%d entries on nfs (temp files left?)", len(ents))
	}
}
