//go:build kernellab

package scenarios

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// TestRestartUnderLoad: a reader and a writer run on the hard mount of each
// output server while its server restarts: in place (same emptyDir, the
// container restarted), as a new pod (new emptyDir, same Secret, export
// re-synced from Windows), as a new pod the clients reach before it is Ready
// (behind Windows files that make its initial sync take seconds), and knfsd
// restarting as the reference. The apps see no error, and nothing they
// fsynced is lost.
func TestRestartUnderLoad(t *testing.T) {
	for _, s := range serversWith(spec.RoleOutput) {
		pod := lab.Pods[s.Name]
		cases := []struct {
			name    string
			tg      target
			restart func() error
			ballast int // small files put on Windows first, sorting before the app's
		}{
			{"knfsd-restart", target{"knfsd", s, node.KnfsdMountPoint(s)}, node.RestartKnfsd, 0},
			{"nasd-container-restart", target{"nasd", s, node.MountPoint(s)}, pod.Restart, 0},
			{"nasd-pod-replacement", target{"nasd", s, node.MountPoint(s)}, pod.Replace, 0},
			{"nasd-pod-replacement-routed-at-start", target{"nasd", s, node.MountPoint(s)}, pod.ReplaceRoutedAtStart, 1000},
		}
		for _, c := range cases {
			t.Run(s.Name+"/"+c.name, func(t *testing.T) {
				t.Cleanup(func() { remountIfBroken(t, c.tg) })
				if c.tg.name == "nasd" {
					from := len(pod.Log())
					t.Cleanup(func() {
						if t.Failed() {
							t.Logf("nasd's log during the case:\n%s", lastLines(pod.Log()[from:], 80))
						}
					})
				}
				dir := workdir(t, c.tg)
				if c.tg.name == "nasd" {
					from := len(pod.Log())
					t.Cleanup(func() {
						if t.Failed() {
							identityReport(t, s, pod, dir, pod.Log()[from:])
						}
					})
				}
				ref := bytes.Repeat([]byte("reference data\n"), 20000)
				require.NoError(t, writeAsApp(filepath.Join(dir, "reference"), ref))
				if c.tg.name == "nasd" {
					// The reference must be on Windows before a new pod re-syncs from it.
					rel, _ := filepath.Rel(node.MountPoint(s), dir)
					eventually(t, "reference on Windows", hasContent(filepath.Join(windowsDir(s), rel, "reference"), ref))
					for i := 0; i < c.ballast; i++ {
						name := filepath.Join(windowsDir(s), rel, fmt.Sprintf("0-ballast-%05d", i))
						require.NoError(t, os.WriteFile(name, bytes.Repeat([]byte{'b'}, 1024), 0o644))
					}
				}
				cmd, out := startApp(t, "load", appArgs{Dir: dir, Duration: 40 * time.Second})
				time.Sleep(8 * time.Second)
				t0 := time.Now()
				require.NoError(t, c.restart())
				t.Logf("%s took %s", c.name, time.Since(t0).Round(time.Millisecond))
				require.NoError(t, cmd.Wait(), out.String())
				r := parseApp(t, "load", out.Bytes())
				t.Logf("reads %d, fsynced writes %d", r.Reads, r.Writes)
				assert.Empty(t, r.Errors, "errors at the application")
				assert.Greater(t, r.Writes, 0)
				got, err := os.ReadFile(filepath.Join(dir, "written"))
				require.NoError(t, err)
				assert.GreaterOrEqual(t, int64(len(got)), r.Fsynced, "fsynced bytes lost")
				for i := 0; i < r.Writes && (i+1)*4096 <= len(got); i++ {
					want := fmt.Sprintf("record %08d\n", i)
					if !bytes.HasPrefix(got[i*4096:], []byte(want)) {
						t.Fatalf("record %d is %q", i, got[i*4096:i*4096+16])
					}
				}
			})
		}
	}
}

// TestKill9DuringLargeWrite: nasd is killed (-9) while an app writes 96 MiB
// with an fsync every 8 MiB; the container restarts in place and the app,
// on its hard mount, finishes with every byte right.
func TestKill9DuringLargeWrite(t *testing.T) {
	for _, s := range serversWith(spec.RoleOutput) {
		t.Run(s.Name, func(t *testing.T) {
			pod := lab.Pods[s.Name]
			tg := target{"nasd", s, node.MountPoint(s)}
			t.Cleanup(func() { remountIfBroken(t, tg) })
			dir := workdir(t, tg)
			progress := filepath.Join("/tmp", "progress-"+s.Name)
			os.Remove(progress)
			cmd, out := startApp(t, "big-write", appArgs{Dir: dir, Size: 96 << 20, Progress: progress})
			deadline := time.Now().Add(3 * time.Minute)
			for fsynced(progress) < 16<<20 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			require.GreaterOrEqual(t, fsynced(progress), int64(16<<20), "the writer made no progress")
			before := fsynced(progress)
			require.NoError(t, pod.Kill())
			require.NoError(t, pod.Start(false))
			require.NoError(t, pod.WaitReady(2*time.Minute))
			require.NoError(t, cmd.Wait(), out.String())
			r := parseApp(t, "big-write", out.Bytes())
			t.Logf("killed after %d MiB fsynced; the app finished in %s", before>>20, r.Duration)
			assert.Empty(t, r.Errors)
			assert.Equal(t, int64(96<<20), r.Fsynced)
		})
	}
}

// remountIfBroken gives the next scenario a working mount after a failed
// one (what deleting the app pod does): a lazy unmount and a new mount.
func remountIfBroken(t *testing.T, tg target) {
	if _, err := os.ReadDir(tg.dir); err == nil {
		return
	}
	t.Logf("the mount %s is broken after this scenario: remounting it", tg.dir)
	runOut("umount", "-l", tg.dir)
	source := lab.Source(tg.server)
	if tg.name == "knfsd" {
		source = node.KnfsdSource(tg.server)
	}
	if err := node.Mount(source, tg.dir, node.MountOptions(lab.Volume(tg.server))); err != nil {
		t.Errorf("remount %s: %v", tg.dir, err)
	}
}

func fsynced(progress string) int64 {
	b, _ := os.ReadFile(progress)
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func writeAsApp(path string, data []byte) error {
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", node.AppUID), fmt.Sprintf("--regid=%d", node.AppGID), "--clear-groups",
		"sh", "-c", "cat > "+quote(path)+" && sync "+quote(path))
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// lastLines is the end of a log, n lines at most.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// identityReport logs what decides a file's identity in a new pod: the
// journal, the Windows copies and the export's files with their IDs.
func identityReport(t *testing.T, s spec.Server, pod *node.Pod, dir, log string) {
	rel, _ := filepath.Rel(node.MountPoint(s), dir)
	j, _ := os.ReadFile(filepath.Join(windowsDir(s), ".nasd-ids"))
	t.Logf("journal: %s", j)
	for _, root := range []string{windowsDir(s), filepath.Join(pod.EmptyDir, "export")} {
		entries, _ := os.ReadDir(filepath.Join(root, rel))
		for _, e := range append([]os.DirEntry{nil}, entries...) {
			p := filepath.Join(root, rel)
			if e != nil {
				p = filepath.Join(p, e.Name())
			}
			var st unix.Stat_t
			unix.Lstat(p, &st)
			id := make([]byte, 64)
			n, err := unix.Lgetxattr(p, "user.nasd.id", id)
			if err != nil {
				n = 0
			}
			t.Logf("%s size %d mtime %d.%09d ino %d id %x %v", p, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ino, id[:n], err)
		}
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "written") || strings.Contains(l, `"WARN"`) || strings.Contains(l, "flush") || strings.Contains(l, "journal") {
			t.Log(l)
		}
	}
}
