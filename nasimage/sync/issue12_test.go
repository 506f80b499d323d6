package sync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// Tests for the findings of issue 12, one per finding, each failing on the
// engine before the fix.

// setMtime gives rel under root the mtime t.
func setMtime(t *testing.T, root, rel string, mt time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(rel)), mt, mt); err != nil {
		t.Fatal(err)
	}
}

// Finding 1: two same-size edits within 2 s were taken for the same change:
// each side kept its own version forever, no conflict copy.
func TestSameSizeEditsOnBothSidesConflict(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	write(t, h.win, "x.txt", "original v0")
	setMtime(t, h.win, "x.txt", time.Now().Add(-time.Hour))
	h.round()
	if got := tree(h.nfs); got != "x.txt=original v0" {
		t.Fatalf("nfs: %s", got)
	}
	mt := time.Now().Add(-10 * time.Second)
	write(t, h.win, "x.txt", "windows  v1")
	write(t, h.nfs, "x.txt", "nfs-side v1")
	setMtime(t, h.win, "x.txt", mt)
	setMtime(t, h.nfs, "x.txt", mt.Add(time.Second))
	h.round()
	h.round()
	for _, root := range []string{h.win, h.nfs} {
		got := tree(root)
		if !strings.HasPrefix(got, "x.txt=nfs-side v1 x.txt.conflict-windows-") || !strings.HasSuffix(got, "Z=windows  v1") {
			t.Fatalf("%s: %s", root, tree(root))
		}
	}
	if c := h.metric("nasd_sync_conflicts_total"); c != 1 {
		t.Fatalf("conflicts = %v", c)
	}
}

// With no ancestor (a restart without state), two files of the same size
// and close mtimes are one version only if their bytes are equal.
func TestNoAncestorSameSizeComparesContent(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Input))
	mt := time.Now().Add(-time.Hour)
	write(t, h.win, "same.txt", "identical")
	write(t, h.nfs, "same.txt", "identical")
	write(t, h.win, "diff.txt", "windows")
	write(t, h.nfs, "diff.txt", "nfs-old")
	for _, p := range []string{"same.txt", "diff.txt"} {
		setMtime(t, h.win, p, mt)
		setMtime(t, h.nfs, p, mt)
	}
	h.round()
	if got := tree(h.nfs); got != "diff.txt=windows same.txt=identical" {
		t.Fatalf("nfs: %s", got)
	}
	if c := h.metric("nasd_sync_files_copied_total", "direction", "windows_to_nfs"); c != 1 {
		t.Fatalf("copied %v files, want only the different one", c)
	}
}

// Finding 5: names Windows cannot hold were copied.
func TestReservedAndInvalidNamesStayOnNFS(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.MaxWindowsPath = 40
	h := newHarness(t, cfg)
	bad := []string{"COM0", "LPT0.txt", "COM\u00b9", "lpt\u00b2.log", "CONIN$", "CONOUT$.txt", "bad\xffname.txt",
		"deep/" + strings.Repeat("p", 40)} // (a name over 255 UTF-16 units is over Linux's 255 bytes too)
	for _, p := range bad {
		write(t, h.nfs, p, "x")
	}
	write(t, h.nfs, "fine.txt", "x")
	h.round()
	h.round()
	if got := tree(h.win); got != "deep/ fine.txt=x" {
		t.Fatalf("windows: %s", got)
	}
	if n := h.metric("nasd_sync_skipped_names"); n != float64(len(bad)) {
		t.Fatalf("skipped names = %v, want %d", n, len(bad))
	}
}
