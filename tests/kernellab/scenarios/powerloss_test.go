//go:build kernellab

package scenarios

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// TestPowerLossKeepsCommittedWrites: nasd's export on ext4 over dm-flakey,
// the kernel client on it with the PVs' mount options. File a is written
// and fsynced (the client's COMMIT). Then the power fails: the device drops
// every write from then on, nasd is killed, and the filesystem is mounted
// again from what reached the device (ext4's journal replay). a must be
// there whole, and nasd started again on it must serve it to the client.
// With COMMIT not durable (an `async` export) a is lost here: its data
// was still in nasd's page cache. (A write the client had not committed
// yet is resent after the restart because the write verifier changes:
// TestUnstableWriteSurvivesKillAfterCommit; the kernel client commits its
// written-back pages too soon for this test to catch them uncommitted.)
func TestPowerLossKeepsCommittedWrites(t *testing.T) {
	require.NoError(t, node.LoadModules("loop", "dm-mod", "dm-flakey"))
	const size = 256 << 20
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	require.NoError(t, os.WriteFile(img, nil, 0o600))
	require.NoError(t, os.Truncate(img, size))
	loop := strings.TrimSpace(must(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { runOut("losetup", "-d", loop) })
	const dm = "nasd-powerloss"
	linear := fmt.Sprintf("0 %d linear %s 0", size/512, loop)
	must(t, "dmsetup", "create", dm, "--noudevsync", "--table", linear)
	t.Cleanup(func() { runOut("dmsetup", "remove", "--noudevsync", "--force", dm) })
	must(t, "dmsetup", "mknodes", dm) // no udev in the guest
	dev := "/dev/mapper/" + dm
	must(t, "mkfs.ext4", "-q", dev)
	fs := filepath.Join(dir, "fs")
	require.NoError(t, os.MkdirAll(fs, 0o755))
	must(t, "mount", dev, fs)
	t.Cleanup(func() { runOut("umount", "-l", fs) })
	export, state := filepath.Join(fs, "export"), filepath.Join(fs, "state")
	require.NoError(t, os.MkdirAll(export, 0o755))
	require.NoError(t, os.MkdirAll(state, 0o755))

	// Keep unsynced writes in the page cache, as a NAS with memory to
	// spare does: the guest's small memory would write them back at once,
	// and an export whose COMMIT does not sync would look durable.
	for knob, v := range map[string]string{"dirty_background_ratio": "50", "dirty_ratio": "80", "dirty_expire_centisecs": "360000"} {
		p := "/proc/sys/vm/" + knob
		old, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, []byte(v), 0o644))
		t.Cleanup(func() { os.WriteFile(p, old, 0o644) })
	}

	port := freePort(t)
	nasd := startPlainNasd(t, export, state, port)
	mnt := filepath.Join(dir, "client")
	opts := strings.Join(lab.Config.MountOptions, ",") + fmt.Sprintf(",port=%d,mountport=%d", port, port)
	require.NoError(t, node.Mount("127.0.0.1:/", mnt, opts))
	t.Cleanup(func() { runOut("umount", "-f", "-l", mnt) })

	a := randomBytes(t, 8<<20)
	fa, err := os.Create(filepath.Join(mnt, "a"))
	require.NoError(t, err)
	_, err = fa.Write(a)
	require.NoError(t, err)
	require.NoError(t, fa.Sync(), "fsync of a")
	require.NoError(t, fa.Close())
	// The power fails: nothing written from now on reaches the device
	// (--nolockfs: suspending must not flush the filesystem first).
	flakey := fmt.Sprintf("0 %d flakey %s 0 0 3600 1 drop_writes", size/512, loop)
	must(t, "dmsetup", "suspend", "--nolockfs", dm)
	must(t, "dmsetup", "load", dm, "--table", flakey)
	must(t, "dmsetup", "resume", "--noudevsync", dm)
	nasd.Process.Kill()
	nasd.Wait()
	must(t, "umount", fs) // its writes are dropped: what is left is what a reboot finds
	must(t, "dmsetup", "suspend", dm)
	must(t, "dmsetup", "load", dm, "--table", linear)
	must(t, "dmsetup", "resume", "--noudevsync", dm)
	must(t, "mount", dev, fs)

	got, err := os.ReadFile(filepath.Join(export, "a"))
	require.NoError(t, err, "a after the power loss")
	require.True(t, bytes.Equal(got, a), "a after the power loss: %d bytes, %d of them as written (want %d)", len(got), sameBytes(got, a), len(a))

	startPlainNasd(t, export, state, port)
	dropCaches(t) // read from nasd, not from the client's cache
	got, err = os.ReadFile(filepath.Join(mnt, "a"))
	require.NoError(t, err, "a through the client after nasd's restart")
	require.True(t, bytes.Equal(got, a), "a through the client after nasd's restart: %d bytes, %d as written", len(got), sameBytes(got, a))
}

// startPlainNasd runs nasd on export alone (no Windows side) on the
// guest's loopback, stopped with the test.
func startPlainNasd(t *testing.T, export, state string, port int) *exec.Cmd {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(node.LogsDir, "powerloss-nasd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { log.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(lab.Nasd, "serve", "--export", export, "--state", state, "--listen", addr,
		"--portmap-listen", "", "--http-listen", "", "--advertise-port", fmt.Sprint(port), "--options", "rw,sync,no_root_squash")
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	require.NoError(t, node.WaitTCP(addr, 30*time.Second), "nasd")
	return cmd
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runOut(name, args...)
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return out
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// sameBytes counts the leading bytes of got that match want.
func sameBytes(got, want []byte) int {
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	return n
}
