//go:build kernellab

package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// syncDeadline bounds how long a change may take to reach the other side
// through the kernel client: nasd's rescan and quiet period, plus the
// client's attribute cache (acdirmax 60 s for a name it already looked up).
const syncDeadline = 90 * time.Second

// windowsDir is a server's Windows directory behind the share (where a
// tester's Windows machine writes).
func windowsDir(s spec.Server) string { return filepath.Join(node.Backing, s.Name) }

func serversWith(roles ...spec.Role) []spec.Server {
	var out []spec.Server
	for _, s := range lab.Servers {
		for _, r := range roles {
			if s.Role == r {
				out = append(out, s)
			}
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < syncDeadline {
		if last = cond(); last == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s: %v", what, syncDeadline, last)
	return 0
}

// listAncestors lists every directory from the mount point down to path's
// parent, as `ls` does: an app that lists a directory sees its current
// entries, while a name it looked up before may stay cached (negative or
// positive) for up to acdirmax. The latency benchmark measures both.
func listAncestors(path string) {
	for _, root := range []string{node.AppsDir, node.Backing} {
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		dir := root
		for _, part := range strings.Split(rel, string(filepath.Separator)) {
			dir = filepath.Join(dir, part)
			os.ReadDir(dir)
		}
	}
}

func hasContent(path string, want []byte) func() error {
	return func() error {
		listAncestors(path)
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%d bytes of other content", len(got))
		}
		return nil
	}
}

func isGone(path string) func() error {
	return func() error {
		listAncestors(path)
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	}
}

// TestWindowsReachesApps: create, modify (other size and same size), rename
// and delete in nested directories on the Windows side, seen by an app on
// every server that exports Windows files.
func TestWindowsReachesApps(t *testing.T) {
	for _, s := range lab.Servers {
		t.Run(s.Name, func(t *testing.T) {
			win := filepath.Join(windowsDir(s), "from-windows")
			mnt := filepath.Join(node.MountPoint(s), "from-windows")
			require.NoError(t, node.WindowsMkdirAll(filepath.Join(win, "a", "b")))
			require.NoError(t, node.WindowsWriteFile(filepath.Join(win, "a", "b", "f.txt"), []byte("version 1")))
			took := eventually(t, "create", hasContent(filepath.Join(mnt, "a", "b", "f.txt"), []byte("version 1")))
			t.Logf("create seen after %s", took)

			require.NoError(t, node.WindowsWriteFile(filepath.Join(win, "a", "b", "f.txt"), []byte("version 2, longer")))
			eventually(t, "modify", hasContent(filepath.Join(mnt, "a", "b", "f.txt"), []byte("version 2, longer")))
			time.Sleep(1100 * time.Millisecond) // a new mtime second
			require.NoError(t, node.WindowsWriteFile(filepath.Join(win, "a", "b", "f.txt"), []byte("version 3, LONGER")))
			eventually(t, "same-size modify", hasContent(filepath.Join(mnt, "a", "b", "f.txt"), []byte("version 3, LONGER")))

			require.NoError(t, os.Rename(filepath.Join(win, "a", "b"), filepath.Join(win, "a", "c")))
			eventually(t, "rename dir", hasContent(filepath.Join(mnt, "a", "c", "f.txt"), []byte("version 3, LONGER")))
			eventually(t, "renamed away", isGone(filepath.Join(mnt, "a", "b")))

			require.NoError(t, os.RemoveAll(filepath.Join(win, "a")))
			eventually(t, "delete", isGone(filepath.Join(mnt, "a")))
		})
	}
}

// TestAppsReachWindows: what an app writes through the kernel client on an
// output server reaches the Windows directory: create, modify, rename and
// delete in nested directories.
func TestAppsReachWindows(t *testing.T) {
	for _, s := range serversWith(spec.RoleOutput) {
		t.Run(s.Name, func(t *testing.T) {
			tg := target{"nasd", s, node.MountPoint(s)}
			dir := workdir(t, tg)
			rel, _ := filepath.Rel(node.MountPoint(s), dir)
			win := filepath.Join(windowsDir(s), rel)
			sh(t, dir, "mkdir -p r/s && printf 'result 1' > r/s/out.txt && sync")
			took := eventually(t, "create", hasContent(filepath.Join(win, "r", "s", "out.txt"), []byte("result 1")))
			t.Logf("create reached Windows after %s", took)
			sh(t, dir, "printf 'result 2, longer' > r/s/out.txt")
			eventually(t, "modify", hasContent(filepath.Join(win, "r", "s", "out.txt"), []byte("result 2, longer")))
			sh(t, dir, "mv r/s r/t")
			eventually(t, "rename", hasContent(filepath.Join(win, "r", "t", "out.txt"), []byte("result 2, longer")))
			eventually(t, "renamed away", isGone(filepath.Join(win, "r", "s")))
			sh(t, dir, "rm -rf r")
			eventually(t, "delete", isGone(filepath.Join(win, "r")))
		})
	}
}

// TestReadOnlyRefusesEveryWrite: on read-only servers every kind of write
// fails. As kubelet mounts the PV (ro) the client refuses with EROFS; with
// the same export mounted read-write, the server's own answers are what the
// app sees, and they must be knfsd's, errno for errno.
func TestReadOnlyRefusesEveryWrite(t *testing.T) {
	for _, s := range lab.Servers {
		if !s.ReadOnly {
			continue
		}
		require.NoError(t, node.WindowsWriteFile(filepath.Join(windowsDir(s), "existing.txt"), []byte("backup")))
		require.NoError(t, node.WindowsMkdirAll(filepath.Join(windowsDir(s), "existing-dir")))
		require.NoError(t, os.WriteFile(filepath.Join(node.KnfsdExport(s), "existing.txt"), []byte("backup"), 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(node.KnfsdExport(s), "existing-dir"), 0o755))
		eventually(t, "backup file", hasContent(filepath.Join(node.MountPoint(s), "existing.txt"), []byte("backup")))

		v := lab.Volume(s)
		v.ReadOnly = false // the same export, mounted read-write
		nasdRW := mountRW(t, "rw-"+s.Name, lab.Source(s), node.MountOptions(v))
		knfsdRW := mountRW(t, "rw-knfsd-"+s.Name, node.KnfsdSource(s), node.MountOptions(v))

		t.Run(s.Name+"/as-kubelet-mounts-it", func(t *testing.T) {
			for op, err := range tryWrites(node.MountPoint(s)) {
				assert.ErrorIs(t, err, syscall.EROFS, "nasd %s", op)
			}
			for op, err := range tryWrites(node.KnfsdMountPoint(s)) {
				assert.ErrorIs(t, err, syscall.EROFS, "knfsd %s", op)
			}
		})
		t.Run(s.Name+"/server-side-as-knfsd", func(t *testing.T) {
			want := tryWrites(knfsdRW)
			got := tryWrites(nasdRW)
			for op, kerr := range want {
				require.Error(t, kerr, "knfsd allowed %s", op)
				assert.Equal(t, errnoOf(kerr), errnoOf(got[op]), "%s: knfsd %v, nasd %v", op, kerr, got[op])
			}
		})
		for _, dir := range []string{node.MountPoint(s), node.KnfsdMountPoint(s)} {
			got, err := os.ReadFile(filepath.Join(dir, "existing.txt"))
			assert.NoError(t, err)
			assert.Equal(t, "backup", string(got), "the file is unchanged in %s", dir)
		}
	}
}

func mountRW(t *testing.T, name, source, options string) string {
	t.Helper()
	dir := filepath.Join(node.AppsDir, name)
	require.NoError(t, node.Mount(source, dir, options))
	t.Cleanup(func() { runOut("umount", dir) })
	return dir
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// tryWrites attempts every kind of write in dir (which holds existing.txt
// and existing-dir) and returns each one's error.
func tryWrites(dir string) map[string]error {
	f := filepath.Join(dir, "existing.txt")
	d := filepath.Join(dir, "existing-dir")
	writes := map[string]func() error{
		"create":   func() error { return closeErr(os.OpenFile(filepath.Join(dir, "new"), os.O_CREATE|os.O_WRONLY, 0o644)) },
		"open-rw":  func() error { return closeErr(os.OpenFile(f, os.O_WRONLY, 0)) },
		"truncate": func() error { return os.Truncate(f, 0) },
		"mkdir":    func() error { return os.Mkdir(filepath.Join(dir, "newdir"), 0o755) },
		"rmdir":    func() error { return syscall.Rmdir(d) },
		"unlink":   func() error { return syscall.Unlink(f) },
		"rename":   func() error { return os.Rename(f, f+".2") },
		"chmod":    func() error { return os.Chmod(f, 0o600) },
		"chown":    func() error { return os.Chown(f, 1, 1) },
		"utimes":   func() error { return os.Chtimes(f, time.Unix(1, 0), time.Unix(1, 0)) },
		"symlink":  func() error { return os.Symlink("x", filepath.Join(dir, "sl")) },
		"link":     func() error { return os.Link(f, filepath.Join(dir, "hl")) },
		"mkfifo":   func() error { return syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644) },
	}
	out := map[string]error{}
	for name, w := range writes {
		out[name] = w()
	}
	return out
}

func closeErr(f *os.File, err error) error {
	if err == nil {
		f.Close()
	}
	return err
}
