//go:build kernellab

package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// Throughput of the kernel client (Linux 6.1, the PV's mount options) on an
// output server's PV, against nasd, its knfsd twin and nfs-ganesha, all in
// the same guest on the same disk:
//   - write: bigMiB MiB written sequentially through the mount, then fsync;
//   - read: that file read back, the page cache dropped first (the client's
//     and, as the servers share the guest's kernel, the servers' too);
//   - tree: a tree of treeFiles small files copied into the mount with tar
//     (modes and mtimes kept; not cp -a, whose ACL copy ganesha 4.3
//     fails: see node.StartGanesha).
//
// The servers are interleaved: each round measures every case on each in
// turn, the order rotated every round; each sub-benchmark reports the mean
// of its rounds. b.N does not matter (a round takes 20-40 s in the guest).
func BenchmarkKernelClient(b *testing.B) {
	const (
		rounds    = 3
		bigMiB    = 256
		treeDirs  = 30
		treeFiles = 1500
	)
	servers := throughputServers(b)
	tree := smallTree(b, treeDirs, treeFiles)
	type key struct{ kase, server string }
	got := map[key][]float64{}
	add := func(kase, server string, v float64) { got[key{kase, server}] = append(got[key{kase, server}], v) }
	for r := 0; r < rounds; r++ {
		for i := range servers {
			tg := servers[(i+r)%len(servers)]
			dir := filepath.Join(tg.dir, fmt.Sprintf("lab-throughput-%d", r))
			sh(b, tg.dir, "rm -rf "+quote(dir)+" && mkdir "+quote(dir))

			t0 := time.Now()
			sh(b, dir, fmt.Sprintf("dd if=/dev/zero of=big bs=1M count=%d conv=fsync status=none", bigMiB))
			add("write", tg.name, bigMiB/time.Since(t0).Seconds())

			dropCaches(b)
			t0 = time.Now()
			out := sh(b, dir, "dd if=big of=/dev/null bs=1M")
			secs := time.Since(t0).Seconds()
			if want := strconv.Itoa(bigMiB<<20) + " bytes"; !strings.Contains(out, want) {
				b.Fatalf("%s: read back %q, want %s", tg.name, out, want)
			}
			add("read", tg.name, bigMiB/secs)

			t0 = time.Now()
			sh(b, dir, "mkdir tree && tar -C "+quote(tree)+" -cf - . | tar -C tree -xpf -")
			secs = time.Since(t0).Seconds()
			if n := strings.TrimSpace(sh(b, dir, "find tree -type f | wc -l")); n != strconv.Itoa(treeFiles) {
				b.Fatalf("%s: %s files copied, want %d", tg.name, n, treeFiles)
			}
			add("tree", tg.name, treeFiles/secs)

			sh(b, tg.dir, "rm -rf "+quote(dir))
		}
	}
	units := map[string]string{"write": "MiB/s", "read": "MiB/s", "tree": "files/s"}
	for _, kase := range []string{"write", "read", "tree"} {
		b.Run(kase, func(b *testing.B) {
			for _, tg := range servers {
				b.Run(tg.name, func(b *testing.B) {
					v := got[key{kase, tg.name}]
					sum := 0.0
					for _, x := range v {
						sum += x
					}
					b.Logf("rounds: %.1f %s", v, units[kase])
					b.ReportMetric(sum/float64(len(v)), units[kase])
					b.ReportMetric(float64(len(v)), "rounds")
					b.ReportMetric(0, "ns/op")
				})
			}
		})
	}
}

// throughputServers are the first writable output server's mounts of
// nasd, knfsd and nfs-ganesha (started here, mounted with the PV's
// options, stopped when the benchmark ends).
func throughputServers(b *testing.B) []target {
	var out []target
	for _, tg := range writable() {
		if tg.server.Role == spec.RoleOutput && (len(out) == 0 || tg.server.Name == out[0].server.Name) {
			out = append(out, tg)
		}
	}
	if len(out) == 0 {
		b.Skip("no writable output server in the config")
	}
	s := out[0].server
	g, err := node.StartGanesha(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Stop)
	dir := filepath.Join(node.AppsDir, "ganesha-"+s.Name)
	if err := node.Mount(g.Source(), dir, node.MountOptions(lab.Volume(s))); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { runOut("umount", dir) })
	return append(out, target{"ganesha", s, dir})
}

// smallTree writes n small files (64 B to 8 KiB) in dirs directories on
// the guest's tmpfs, owned by the app, and returns its root.
func smallTree(b *testing.B, dirs, n int) string {
	root := filepath.Join(os.TempDir(), "lab-small-tree")
	os.RemoveAll(root)
	b.Cleanup(func() { os.RemoveAll(root) })
	data := make([]byte, 8192)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	for i := 0; i < n; i++ {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i%dirs))
		f := filepath.Join(d, fmt.Sprintf("f%04d.txt", i))
		err := os.MkdirAll(d, 0o755)
		if err == nil {
			err = os.WriteFile(f, data[:64+(i*797)%(len(data)-64)], 0o644)
		}
		for _, p := range []string{root, d, f} {
			if err == nil {
				err = os.Chown(p, node.AppUID, node.AppGID)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return root
}
