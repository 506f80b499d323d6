package sync

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
					if fi, err := os.Stat(tmp); err == nil && fi.Size() > 0 {
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
