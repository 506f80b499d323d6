package sync

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

func TestInputWindowsChangesReachNFS(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Input))
	write(t, h.win, "a.txt", "a1")
	write(t, h.win, "d/e/f.txt", "f1")
	write(t, h.win, "Thumbs.db", "explorer")
	write(t, h.win, "~$report.docx", "office lock")
	h.run()
	// Ready means the initial sync is done: no waiting.
	if got, want := tree(h.nfs), "a.txt=a1 d/ d/e/ d/e/f.txt=f1"; got != want {
		t.Fatalf("after initial sync: %s, want %s", got, want)
	}

	write(t, h.win, "a.txt", "a2 longer")
	write(t, h.win, "d/g/h.txt", "h1")
	if err := os.Rename(filepath.Join(h.win, "d/e"), filepath.Join(h.win, "d/e2")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "changes, new dirs and a renamed dir", treeIs(h.nfs, "a.txt=a2 longer d/ d/e2/ d/e2/f.txt=f1 d/g/ d/g/h.txt=h1"))

	if err := os.RemoveAll(filepath.Join(h.win, "d")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted tree", treeIs(h.nfs, "a.txt=a2 longer"))
}

func TestInputLeavesNFSFilesAloneUnlessMirror(t *testing.T) {
	for _, mirror := range []bool{false, true} {
		t.Run(map[bool]string{false: "input", true: "mirror"}[mirror], func(t *testing.T) {
			cfg := testConfig(t, reconcile.Input)
			cfg.Mirror = mirror
			h := newHarness(t, cfg)
			write(t, h.win, "w.txt", "w")
			write(t, h.nfs, "app-output.txt", "mine")
			h.run()
			write(t, h.nfs, "later.txt", "also mine")
			write(t, h.win, "w2.txt", "w2")
			want := "app-output.txt=mine later.txt=also mine w.txt=w w2.txt=w2"
			if mirror {
				want = "w.txt=w w2.txt=w2"
			}
			eventually(t, "nfs side", treeIs(h.nfs, want))
			if got := tree(h.win); got != "w.txt=w w2.txt=w2" {
				t.Fatalf("windows side changed: %s", got)
			}
		})
	}
}

func TestOutputBothWays(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	write(t, h.win, "from-windows.txt", "w")
	h.run()
	eventually(t, "initial", treeIs(h.nfs, "from-windows.txt=w"))

	// An app writes results through NFS: many small writes, then a rename.
	f, err := os.Create(filepath.Join(h.nfs, "results.partial"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		f.WriteString(strings.Repeat("x", i))
		time.Sleep(5 * time.Millisecond)
	}
	f.Close()
	os.Rename(filepath.Join(h.nfs, "results.partial"), filepath.Join(h.nfs, "results.csv"))
	write(t, h.nfs, "run1/log/out.txt", "log")
	eventually(t, "nfs writes on windows", func() error {
		if err := treeIs(h.win, "from-windows.txt=w results.csv=<190 bytes> run1/ run1/log/ run1/log/out.txt=log")(); err != nil {
			return err
		}
		return sameContent(filepath.Join(h.win, "results.csv"), filepath.Join(h.nfs, "results.csv"))
	})

	// Windows edits and deletes; NFS deletes a tree.
	write(t, h.win, "from-windows.txt", "w2")
	os.Remove(filepath.Join(h.win, "results.csv"))
	os.RemoveAll(filepath.Join(h.nfs, "run1"))
	eventually(t, "both sides", func() error {
		if err := treeIs(h.nfs, "from-windows.txt=w2")(); err != nil {
			return err
		}
		return treeIs(h.win, "from-windows.txt=w2")()
	})
	if c := h.metric("nasd_sync_files_copied_total", "direction", "nfs_to_windows"); c < 2 {
		t.Fatalf("files copied nfs->windows = %v", c)
	}
}

// TestConflictKeepsBoth changes one file on both sides between two rounds.
func TestConflictKeepsBoth(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	write(t, h.win, "report.txt", "v1")
	h.round()
	write(t, h.win, "report.txt", "windows-edit")
	write(t, h.nfs, "report.txt", "nfs-edit-longer")
	h.round()
	h.round()
	for _, root := range []string{h.win, h.nfs} {
		got := tree(root)
		parts := strings.Fields(got)
		if len(parts) != 2 || parts[0] != "report.txt=nfs-edit-longer" ||
			!strings.HasPrefix(parts[1], "report.txt.conflict-windows-") || !strings.HasSuffix(parts[1], "Z=windows-edit") {
			t.Fatalf("%s: %s", root, got)
		}
	}
	if c := h.metric("nasd_sync_conflicts_total"); c != 1 {
		t.Fatalf("conflicts = %v", c)
	}
}

func TestRestartKeepsAncestor(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	write(t, h.win, "keep.txt", "k")
	write(t, h.win, "gone.txt", "g")
	h.run()
	eventually(t, "initial", treeIs(h.nfs, "gone.txt=g keep.txt=k"))
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// While nasd is down, Windows deletes a file: after the restart that is
	// a deletion, not a new file on NFS to copy back.
	os.Remove(filepath.Join(h.win, "gone.txt"))
	h = newHarness(t, h.cfg)
	h.run()
	if got := tree(h.nfs); got != "keep.txt=k" {
		t.Fatalf("nfs after restart: %s", got)
	}
	if got := tree(h.win); got != "keep.txt=k" {
		t.Fatalf("windows after restart: %s", got)
	}
	if c := h.metric("nasd_sync_files_copied_total", "direction", "windows_to_nfs") + h.metric("nasd_sync_files_copied_total", "direction", "nfs_to_windows"); c != 0 {
		t.Fatalf("restart copied %v files again", c)
	}
}

func TestShutdownFlushes(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.RescanInterval = time.Hour
	cfg.DisableNFSWatch = true
	h := newHarness(t, cfg)
	h.run()
	write(t, h.win, "late.txt", "written just before SIGTERM")
	write(t, h.nfs, "result.txt", "r")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if got := tree(h.nfs); got != "late.txt=written just before SIGTERM result.txt=r" {
		t.Fatalf("nfs: %s", got)
	}
	if got := tree(h.win); got != "late.txt=written just before SIGTERM result.txt=r" {
		t.Fatalf("windows: %s", got)
	}
}

func TestNamesWindowsCannotHoldAreSkipped(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	for _, p := range []string{"a:b.txt", "CON", "dir./x", "Case.txt", "case.txt", "fine.txt"} {
		write(t, h.nfs, p, "x")
	}
	h.round()
	h.round()
	if got := tree(h.win); got != "Case.txt=x fine.txt=x" {
		t.Fatalf("windows: %s", got)
	}
	if n := h.metric("nasd_sync_skipped_names"); n != 4 {
		t.Fatalf("skipped names = %v", n)
	}
	if got := tree(h.nfs); !strings.Contains(got, "a:b.txt=x") {
		t.Fatalf("nfs lost a skipped file: %s", got)
	}
}

func TestSymlinksAndModes(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Input))
	write(t, h.win, "script.sh", "#!/bin/sh")
	os.Chmod(filepath.Join(h.win, "script.sh"), 0o755)
	os.Symlink("script.sh", filepath.Join(h.win, "link"))
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(h.win, "script.sh"), mt, mt)
	h.round()
	if got := tree(h.nfs); got != "link->script.sh script.sh=#!/bin/sh" {
		t.Fatal(got)
	}
	fi, err := os.Stat(filepath.Join(h.nfs, "script.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(mt) {
		t.Fatalf("mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
}

// TestSettledRoundsSeeEveryChange: once both sides match the ancestor,
// rounds take the cheap path (scan.Unchanged, no trees). Each kind of change
// on either side must still be synced by the next round, and the cheap path
// must come back once the sides settle again. Rounds are run by hand with
// both sides unwatched, so every round reads both.
func TestSettledRoundsSeeEveryChange(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	write(t, h.win, "a.txt", "a")
	write(t, h.win, "d/b.txt", "b")
	write(t, h.win, "d/e/c.txt", "c")
	write(t, h.nfs, "n.txt", "n")
	settle := func(what string) {
		t.Helper()
		before := h.eng.settledRounds
		for range 4 {
			h.round()
		}
		if h.eng.settledRounds <= before {
			t.Fatalf("%s: no round took the cheap path", what)
		}
		if w, n := tree(h.win), tree(h.nfs); w != n {
			t.Fatalf("%s: sides differ:\nwindows %s\nnfs     %s", what, w, n)
		}
	}
	settle("initial")
	later := time.Now().Add(time.Hour)
	for _, c := range []struct {
		name   string
		change func() error
		want   string // both sides, after one round
	}{
		{"windows: same size, new content", func() error {
			write(t, h.win, "d/e/c.txt", "C")
			return os.Chtimes(filepath.Join(h.win, "d/e/c.txt"), later, later)
		}, "a.txt=a d/ d/b.txt=b d/e/ d/e/c.txt=C n.txt=n"},
		{"nfs: deleted file", func() error { return os.Remove(filepath.Join(h.nfs, "d/b.txt")) },
			"a.txt=a d/ d/e/ d/e/c.txt=C n.txt=n"},
		{"windows: new file deep down", func() error {
			write(t, h.win, "d/e/f/new.txt", "new")
			return nil
		}, "a.txt=a d/ d/e/ d/e/c.txt=C d/e/f/ d/e/f/new.txt=new n.txt=n"},
		{"nfs: file became a directory", func() error {
			if err := os.Remove(filepath.Join(h.nfs, "n.txt")); err != nil {
				return err
			}
			write(t, h.nfs, "n.txt/inside.txt", "i")
			return nil
		}, "a.txt=a d/ d/e/ d/e/c.txt=C d/e/f/ d/e/f/new.txt=new n.txt/ n.txt/inside.txt=i"},
		{"windows: deleted directory", func() error { return os.RemoveAll(filepath.Join(h.win, "d/e/f")) },
			"a.txt=a d/ d/e/ d/e/c.txt=C n.txt/ n.txt/inside.txt=i"},
		{"nfs: mtime only", func() error { return os.Chtimes(filepath.Join(h.nfs, "a.txt"), later, later) },
			"a.txt=a d/ d/e/ d/e/c.txt=C n.txt/ n.txt/inside.txt=i"},
	} {
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		h.round()
		for _, root := range []string{h.win, h.nfs} {
			if got := tree(root); got != c.want {
				t.Fatalf("%s: %s holds %s, want %s", c.name, root, got, c.want)
			}
		}
		settle(c.name)
	}
	fi, err := os.Stat(filepath.Join(h.win, "a.txt"))
	if err != nil || !fi.ModTime().Equal(later) {
		t.Fatalf("nfs mtime change not synced: %v %v", fi.ModTime(), err)
	}
}

// TestNFSAttributeChangesReachWindows: with the NFS side watched and its
// last read trusted, a change of mode or mtime alone (an NFS SETATTR: chmod,
// touch) must count as an event, not wait for the full-rescan interval.
func TestNFSAttributeChangesReachWindows(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.FullRescanInterval = time.Hour
	h := newHarness(t, cfg)
	write(t, h.nfs, "a.txt", "a")
	write(t, h.nfs, "b.txt", "b")
	h.run()
	eventually(t, "initial", treeIs(h.win, "a.txt=a b.txt=b"))
	time.Sleep(200 * time.Millisecond) // a few settled rounds: the NFS side is trusted

	later := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := os.Chmod(filepath.Join(h.nfs, "a.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(h.nfs, "b.txt"), later, later); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mode and mtime on Windows", func() error {
		a, err := os.Stat(filepath.Join(h.win, "a.txt"))
		if err != nil {
			return err
		}
		b, err := os.Stat(filepath.Join(h.win, "b.txt"))
		if err != nil {
			return err
		}
		if a.Mode().Perm() != 0o600 || !b.ModTime().Equal(later) {
			return fmt.Errorf("a.txt mode %v, b.txt mtime %v", a.Mode().Perm(), b.ModTime())
		}
		return nil
	})
}

// TestShutdownFlushSendsAppWritesFirst: on shutdown, what apps wrote (it
// exists only in the export: a new pod's emptyDir starts empty) reaches
// Windows before the Windows side's backlog is copied in, however large:
// a flush that runs out of time loses imports, never app data.
func TestShutdownFlushSendsAppWritesFirst(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.RescanInterval = time.Hour
	cfg.DisableNFSWatch = true
	cfg.FlushTimeout = time.Second
	h := newHarness(t, cfg)
	h.run()
	// Windows files sorting before the app's, more than a second's copying.
	for i := 0; i < 20000; i++ {
		write(t, h.win, fmt.Sprintf("0-ballast-%05d", i), "b")
	}
	write(t, h.nfs, "written.txt", "fsynced by the app")
	start := time.Now()
	h.stop() // may report the timeout: the backlog did not fit
	t.Logf("flush took %s", time.Since(start).Round(time.Millisecond))
	b, err := os.ReadFile(filepath.Join(h.win, "written.txt"))
	if err != nil || string(b) != "fsynced by the app" {
		t.Fatalf("the app's file on Windows after the flush: %q %v", b, err)
	}
}

// TestRoundLimitedToOneSide: a round limited to one side changes only it,
// and the next, unlimited round plans what it left.
func TestRoundLimitedToOneSide(t *testing.T) {
	h := newHarness(t, testConfig(t, reconcile.Output))
	write(t, h.win, "from-windows.txt", "w")
	write(t, h.nfs, "from-app.txt", "a")
	h.eng.onlyTo = reconcile.Windows
	h.round()
	if got := tree(h.win); got != "from-app.txt=a from-windows.txt=w" {
		t.Fatalf("windows after a round limited to it: %s", got)
	}
	if got := tree(h.nfs); got != "from-app.txt=a" {
		t.Fatalf("nfs changed by a round limited to Windows: %s", got)
	}
	h.eng.onlyTo = 0
	h.round()
	if got := tree(h.nfs); got != "from-app.txt=a from-windows.txt=w" {
		t.Fatalf("nfs after the next round: %s", got)
	}
}

// TestShutdownFlushIgnoresBackoff: a path whose last copy failed (often
// only because shutdown cancelled the round copying it) is still copied by
// the shutdown flush: its backoff would otherwise skip the last chance.
func TestShutdownFlushIgnoresBackoff(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.RescanInterval = time.Hour
	cfg.DisableNFSWatch = true
	h := newHarness(t, cfg)
	h.run()
	write(t, h.nfs, "written.txt", "fsynced by the app")
	h.eng.backoff["written.txt"] = retry{delay: time.Hour, next: time.Now().Add(time.Hour)}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if got := tree(h.win); got != "written.txt=fsynced by the app" {
		t.Fatalf("windows after the flush: %s", got)
	}
}
