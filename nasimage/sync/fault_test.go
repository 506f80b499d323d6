package sync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

func temps(root string) []string {
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && scan.IsTemp(fi.Name()) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func bigContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	return b
}

// TestKillDuringCopy SIGKILLs the engine while it copies a large file: the
// destination never shows a partial file under the real name, and a restart
// removes the temp file and completes the copy.
func TestKillDuringCopy(t *testing.T) {
	for _, c := range []struct {
		role     reconcile.Role
		fromNFS  bool
		scenario string
	}{
		{reconcile.Input, false, "windows_to_nfs"},
		{reconcile.Output, true, "nfs_to_windows"},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			cfg := testConfig(t, c.role)
			src, dst := cfg.WindowsDir, cfg.NFSDir
			if c.fromNFS {
				src, dst = dst, src
			}
			data := bigContent(32 << 20)
			if err := os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			hc := helperConfig{Windows: cfg.WindowsDir, NFS: cfg.NFSDir, State: cfg.StateDir, Role: c.role.String(),
				Rescan: 50 * time.Millisecond, Quiet: 50 * time.Millisecond, ChunkDelay: 40 * time.Millisecond}
			hp := startHelper(t, hc, nil, "")
			eventually(t, "copy in progress", func() error {
				for _, tmp := range temps(dst) {
					// At least a chunk: the engine's clock probe at start
					// writes one-byte temp files too.
					if fi, err := os.Stat(tmp); err == nil && fi.Size() >= 1<<20 {
						return nil
					}
				}
				return fmt.Errorf("no temp file with data in %s", dst)
			})
			hp.kill(t)
			if _, err := os.Lstat(filepath.Join(dst, "big.bin")); !os.IsNotExist(err) {
				t.Fatalf("big.bin exists under its real name after the kill: %v", err)
			}
			left := temps(dst)
			if len(left) != 1 {
				t.Fatalf("temp files after kill: %v", left)
			}
			if fi, _ := os.Stat(left[0]); fi.Size() >= int64(len(data)) {
				t.Fatalf("temp file already complete (%d bytes): the kill came too late", fi.Size())
			}

			hc.ChunkDelay = 0
			hp = startHelper(t, hc, nil, "")
			hp.waitReady(t)
			got, err := os.ReadFile(filepath.Join(dst, "big.bin"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after restart: %d bytes, err %v", len(got), err)
			}
			if got, _ := os.ReadFile(filepath.Join(src, "big.bin")); !bytes.Equal(got, data) {
				t.Fatal("source damaged")
			}
			if left := append(temps(src), temps(dst)...); len(left) != 0 {
				t.Fatalf("temp files left after restart: %v", left)
			}
		})
	}
}

// TestPermissionDeniedIsRetried: a destination directory the engine cannot
// write to is reported, the source is left alone, other files still sync, and
// the copy happens once the directory becomes writable. Run as root, the
// engine runs as nobody (root ignores permissions).
func TestPermissionDeniedIsRetried(t *testing.T) {
	base, err := os.MkdirTemp("", "nassync-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	win, nfs, state := filepath.Join(base, "windows"), filepath.Join(base, "export"), filepath.Join(base, "state")
	for _, d := range []string{win, nfs, state, filepath.Join(nfs, "locked")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, win, "ok.txt", "ok")
	write(t, win, "locked/a.txt", "precious")
	srcFile := filepath.Join(win, "locked/a.txt")
	before, _ := os.Stat(srcFile)

	var cred *syscall.Credential
	binary := ""
	lockedDir := filepath.Join(nfs, "locked")
	var unlock func()
	if os.Geteuid() == 0 {
		const nobody = 65534
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		for _, d := range []string{nfs, state} {
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}
		// lockedDir stays root's 0755: nobody cannot create files in it.
		unlock = func() { os.Chown(lockedDir, nobody, nobody) }
		binary = filepath.Join(base, "sync.test")
		copyFile(t, os.Args[0], binary)
	} else {
		os.Chmod(lockedDir, 0o555)
		unlock = func() { os.Chmod(lockedDir, 0o755) }
	}
	hc := helperConfig{Windows: win, NFS: nfs, State: state, Role: "input", Rescan: 50 * time.Millisecond, Quiet: 50 * time.Millisecond}
	hp := startHelper(t, hc, cred, binary)
	hp.waitReady(t)
	if got := tree(nfs); got != "locked/ ok.txt=ok" {
		t.Fatalf("nfs: %s", got)
	}
	if !strings.Contains(hp.log(), "permission denied") {
		t.Fatalf("no permission error reported:\n%s", hp.log())
	}
	after, _ := os.Stat(srcFile)
	if b, _ := os.ReadFile(srcFile); string(b) != "precious" || !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("source touched")
	}
	unlock()
	eventually(t, "retried after the error", treeIs(nfs, "locked/ locked/a.txt=precious ok.txt=ok"))
	if got := tree(win); got != "locked/ locked/a.txt=precious ok.txt=ok" {
		t.Fatalf("windows: %s", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFullIsRetried fills the destination for real: it is a 1 MiB tmpfs,
// and a file that had been synced grows to 2 MiB on the source. The copy
// fails with ENOSPC: the error is reported, the destination keeps the old
// version (no partial file, no temp file left), the source is untouched,
// other files still sync, and once the file system grows the copy is made.
// Both directions: the export full (input), the Windows share full (output).
func TestDiskFullIsRetried(t *testing.T) {
	for _, full := range []reconcile.Side{reconcile.NFS, reconcile.Windows} {
		t.Run(full.String()+" full", func(t *testing.T) {
			role := reconcile.Input
			if full == reconcile.Windows {
				role = reconcile.Output
			}
			cfg := testConfig(t, role)
			src, dst := cfg.WindowsDir, cfg.NFSDir
			if full == reconcile.Windows {
				src, dst = dst, src
			}
			mountSmallFS(t, dst)
			logs := &lockedWriter{w: &strings.Builder{}}
			cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), nil))
			write(t, src, "report.bin", "v1")
			h := newHarness(t, cfg)
			h.run()
			eventually(t, "first version synced", treeIs(dst, "report.bin=v1"))

			big := bigContent(2 << 20)
			if err := os.WriteFile(filepath.Join(src, "report.bin"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Stat(filepath.Join(src, "report.bin"))
			write(t, src, "small.txt", "still synced")
			eventually(t, "disk-full error reported", func() error {
				if c := h.metric("nasd_sync_errors_total", "op", "copy"); c < 1 {
					return fmt.Errorf("copy errors = %v", c)
				}
				logs.mu.Lock()
				defer logs.mu.Unlock()
				if !strings.Contains(logs.w.(*strings.Builder).String(), "no space left on device") {
					return errors.New("no ENOSPC in the log")
				}
				return nil
			})
			eventually(t, "other files synced, old version kept", treeIs(dst, "report.bin=v1 small.txt=still synced"))
			if got := temps(dst); len(got) != 0 {
				t.Fatalf("temp files left on the full side: %v", got)
			}
			after, _ := os.Stat(filepath.Join(src, "report.bin"))
			if b, _ := os.ReadFile(filepath.Join(src, "report.bin")); !bytes.Equal(b, big) || !after.ModTime().Equal(before.ModTime()) {
				t.Fatal("source touched")
			}

			if err := unix.Mount("tmpfs", dst, "tmpfs", unix.MS_REMOUNT, "size=8m"); err != nil {
				t.Fatal(err)
			}
			eventually(t, "copied once there is room", func() error {
				return sameContent(filepath.Join(src, "report.bin"), filepath.Join(dst, "report.bin"))
			})
		})
	}
}

// mountSmallFS mounts a 1 MiB tmpfs on dir: a file system that really fills
// up. Mounting needs root (CI runs as root).
func mountSmallFS(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full file system is made with a tmpfs mount, which needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
		t.Fatalf("mount a 1 MiB tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}
