package sync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
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

// emptyDir removes everything in dir but the engine's marker.
func emptyDir(t *testing.T, dir string, keepMarker bool) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if keepMarker && e.Name() == scan.MarkerName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// rootCase sets up an output pair in sync with three files on each side.
func rootCase(t *testing.T, role reconcile.Role) (*harness, *[]string) {
	cfg := testConfig(t, role)
	var health []string
	cfg.Health = func(p string) { health = append(health, p) }
	h := newHarness(t, cfg)
	write(t, h.win, "a.txt", "a")
	write(t, h.win, "d/b.txt", "b")
	write(t, h.nfs, "c.txt", "c") // from an NFS client (kept one way, synced both ways)
	h.round()
	h.round()
	return h, &health
}

func lastHealth(health *[]string) string {
	if len(*health) == 0 {
		return ""
	}
	return (*health)[len(*health)-1]
}

// Finding 2: an emptied or re-created Windows directory wiped the export;
// an empty export with the old state directory wiped Windows. Each way a
// root can vanish, for the output role (both ways) and input.
func TestVanishedRootDeletesNothing(t *testing.T) {
	const synced = "a.txt=a c.txt=c d/ d/b.txt=b"
	for _, role := range []reconcile.Role{reconcile.Output, reconcile.Input} {
		t.Run(role.String(), func(t *testing.T) {
			t.Run("windows content removed, marker kept", func(t *testing.T) {
				h, health := rootCase(t, role)
				emptyDir(t, h.win, true)
				h.round()
				h.round()
				if got := tree(h.nfs); got != synced {
					t.Fatalf("nfs: %s", got)
				}
				if h.metric("nasd_sync_halted", "side", "windows") != 1 || !strings.Contains(lastHealth(health), "emptied") {
					t.Fatalf("not reported: halted=%v health=%q", h.metric("nasd_sync_halted", "side", "windows"), lastHealth(health))
				}
				// An operator confirms: the deletions propagate.
				write(t, h.win, scan.ResumeName, "")
				h.round()
				wantNFS := ""
				if role == reconcile.Input {
					wantNFS = "c.txt=c"
				}
				if got := tree(h.nfs); got != wantNFS {
					t.Fatalf("nfs after resume: %s", got)
				}
				if _, err := os.Stat(filepath.Join(h.win, scan.ResumeName)); err == nil {
					t.Fatal("resume file left in place")
				}
				h.round()
				if h.metric("nasd_sync_halted", "side", "windows") != 0 || lastHealth(health) != "" {
					t.Fatalf("still halted after resume: %q", lastHealth(health))
				}
			})
			t.Run("windows content removed with the marker", func(t *testing.T) {
				h, health := rootCase(t, role)
				emptyDir(t, h.win, false)
				h.round()
				h.round()
				if got := tree(h.nfs); got != synced {
					t.Fatalf("nfs: %s", got)
				}
				if !strings.Contains(lastHealth(health), "marker") {
					t.Fatalf("health %q", lastHealth(health))
				}
			})
			t.Run("windows directory replaced by an empty one (mount gone)", func(t *testing.T) {
				h, health := rootCase(t, role)
				old := h.win + ".mounted"
				if err := os.Rename(h.win, old); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(h.win, 0o755); err != nil {
					t.Fatal(err)
				}
				write(t, h.nfs, "new-while-gone.txt", "n")
				h.round()
				h.round()
				if got := tree(h.win); got != "" {
					t.Fatalf("written into the empty mount point: %s", got)
				}
				if got := tree(h.nfs); !strings.HasPrefix(got, synced) {
					t.Fatalf("nfs: %s", got)
				}
				if h.metric("nasd_sync_halted", "side", "windows") != 1 || !strings.Contains(lastHealth(health), "marker") {
					t.Fatalf("not reported: %q", lastHealth(health))
				}
				// The mount comes back: the sync goes on by itself.
				os.Remove(h.win)
				if err := os.Rename(old, h.win); err != nil {
					t.Fatal(err)
				}
				h.round()
				h.round()
				if lastHealth(health) != "" {
					t.Fatalf("still halted: %q", lastHealth(health))
				}
				if got := tree(h.nfs); !strings.HasPrefix(got, synced) {
					t.Fatalf("nfs after the mount came back: %s", got)
				}
			})
			t.Run("windows directory replaced by another sync root", func(t *testing.T) {
				h, health := rootCase(t, role)
				other := t.TempDir()
				write(t, other, "x.txt", "someone else's")
				if err := writeMarker(other, newID()); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(h.win); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(other, h.win); err != nil {
					t.Fatal(err)
				}
				h.round()
				h.round()
				if got := tree(h.nfs); got != synced {
					t.Fatalf("nfs: %s", got)
				}
				if got := tree(h.win); got != "x.txt=someone else's" {
					t.Fatalf("windows: %s", got)
				}
				if !strings.Contains(lastHealth(health), "another sync root") {
					t.Fatalf("health %q", lastHealth(health))
				}
			})
			t.Run("windows directory removed", func(t *testing.T) {
				h, health := rootCase(t, role)
				if err := os.RemoveAll(h.win); err != nil {
					t.Fatal(err)
				}
				h.round()
				if got := tree(h.nfs); got != synced {
					t.Fatalf("nfs: %s", got)
				}
				if !strings.Contains(lastHealth(health), "unusable") {
					t.Fatalf("health %q", lastHealth(health))
				}
			})
			t.Run("export content removed, marker kept", func(t *testing.T) {
				h, _ := rootCase(t, role)
				emptyDir(t, h.nfs, true)
				h.round()
				h.round()
				if got := tree(h.win); got != "a.txt=a c.txt=c d/ d/b.txt=b" && role == reconcile.Output || got != "a.txt=a d/ d/b.txt=b" && role == reconcile.Input {
					t.Fatalf("windows: %s", got)
				}
				if role == reconcile.Input { // Windows is restored onto the export
					if got := tree(h.nfs); got != "a.txt=a d/ d/b.txt=b" {
						t.Fatalf("nfs: %s", got)
					}
				}
			})
			t.Run("new empty export, old state directory (a new pod)", func(t *testing.T) {
				h, _ := rootCase(t, role)
				winBefore := tree(h.win)
				if err := os.RemoveAll(h.nfs); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(h.nfs, 0o755); err != nil {
					t.Fatal(err)
				}
				h2 := newHarness(t, h.cfg) // the new pod: same state directory
				h2.round()
				h2.round()
				if got := tree(h2.win); got != winBefore {
					t.Fatalf("windows changed: %s, was %s", got, winBefore)
				}
				if got := tree(h2.nfs); got != winBefore {
					t.Fatalf("export not re-synced from Windows: %s", got)
				}
			})
			t.Run("new state directory, old export", func(t *testing.T) {
				h, _ := rootCase(t, role)
				winBefore, nfsBefore := tree(h.win), tree(h.nfs)
				cfg := h.cfg
				cfg.StateDir = filepath.Join(t.TempDir(), "new-state")
				h2 := newHarness(t, cfg)
				h2.round()
				h2.round()
				if tree(h2.win) != winBefore || tree(h2.nfs) != nfsBefore {
					t.Fatalf("changed: windows %s, nfs %s", tree(h2.win), tree(h2.nfs))
				}
				if c := h2.metric("nasd_sync_files_copied_total", "direction", "windows_to_nfs") + h2.metric("nasd_sync_files_copied_total", "direction", "nfs_to_windows"); c != 0 {
					t.Fatalf("copied %v files", c)
				}
			})
		})
	}
}

// Finding 3: half-written files reached the other side under their real
// names. A slow writer that pauses for less than the quiet period must never
// expose a partial version, in either direction, on a side without inotify
// (Windows; the NFS side with watching off).
func TestSlowWritersNeverExposePartialFiles(t *testing.T) {
	for _, fromNFS := range []bool{false, true} {
		name := map[bool]string{false: "windows to nfs", true: "nfs to windows (unwatched)"}[fromNFS]
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, reconcile.Output)
			cfg.QuietPeriod = 300 * time.Millisecond
			cfg.DisableNFSWatch = fromNFS
			h := newHarness(t, cfg)
			h.run()
			src, dst := h.win, h.nfs
			if fromNFS {
				src, dst = h.nfs, h.win
			}
			const chunks, size = 8, 64 << 10
			final := bigContent(chunks * size)
			stop := make(chan struct{})
			partial := make(chan int, 1)
			go func() { // the other side, read as an application would
				for {
					select {
					case <-stop:
						return
					default:
					}
					if b, err := os.ReadFile(filepath.Join(dst, "slow.bin")); err == nil && len(b) != len(final) {
						select {
						case partial <- len(b):
						default:
						}
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
			f, err := os.Create(filepath.Join(src, "slow.bin"))
			if err != nil {
				t.Fatal(err)
			}
			for i := range chunks {
				if _, err := f.Write(final[i*size : (i+1)*size]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(cfg.QuietPeriod / 3) // pauses shorter than the quiet period
			}
			f.Close()
			eventually(t, "complete copy", func() error { return sameContent(filepath.Join(src, "slow.bin"), filepath.Join(dst, "slow.bin")) })
			close(stop)
			select {
			case n := <-partial:
				t.Fatalf("a partial version (%d of %d bytes) appeared under the real name", n, len(final))
			default:
			}
		})
	}
}

// Finding 4: a same-size edit within one tick of a coarse timestamp (FAT,
// exFAT, SMB: 2 s or coarser) left size and mtime as they were and was never
// seen. Here the Windows share's tick is 300 ms and the test stamps mtimes
// the way such a share does.
func TestSameSizeEditWithinATimestampTick(t *testing.T) {
	const tick = 300 * time.Millisecond
	for _, role := range []reconcile.Role{reconcile.Input, reconcile.Output} {
		t.Run(role.String(), func(t *testing.T) {
			cfg := testConfig(t, role)
			cfg.Granularity = map[reconcile.Side]time.Duration{reconcile.Windows: tick}
			h := newHarness(t, cfg)
			for time.Since(time.Now().Truncate(tick)) < 50*time.Millisecond {
				time.Sleep(5 * time.Millisecond) // the copy's mtime is then not racy on the export
			}
			mt := time.Now().Truncate(tick)
			write(t, h.win, "x.txt", "windows  v1")
			setMtime(t, h.win, "x.txt", mt)
			h.round()
			if got := tree(h.nfs); got != "x.txt=windows  v1" {
				t.Fatalf("nfs: %s", got)
			}
			write(t, h.win, "x.txt", "windows  v2") // same size, same tick
			setMtime(t, h.win, "x.txt", mt)
			deadline := time.Now().Add(3 * time.Second)
			for tree(h.nfs) != "x.txt=windows  v2" && time.Now().Before(deadline) {
				h.round()
				time.Sleep(20 * time.Millisecond)
			}
			if got := tree(h.nfs); got != "x.txt=windows  v2" {
				t.Fatalf("the edit never reached nfs: %s", got)
			}
			if got := tree(h.win); got != "x.txt=windows  v2" {
				t.Fatalf("windows: %s", got)
			}
			// Once past its tick and compared, the entry is trusted: the
			// rounds compare nothing more.
			time.Sleep(tick + 2*racyMargin)
			h.round()
			n := h.metric("nasd_sync_content_compared_total")
			for range 3 {
				h.round()
			}
			if m := h.metric("nasd_sync_content_compared_total"); m != n {
				t.Fatalf("settled rounds compared %v more files", m-n)
			}
		})
	}
}
