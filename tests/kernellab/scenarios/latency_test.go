//go:build kernellab

package scenarios

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// Latency as a Linux app on the node sees it, through the kernel client with
// the PV's mount options (the attribute cache included), per iteration:
//   - WindowsToApp/listed: a file written behind the Windows share until an
//     app listing the directory finds it with its content;
//   - WindowsToApp/after-miss: the same, for an app that tried to open the
//     name just before it existed (the client caches that miss: acdirmin);
//   - AppToWindows: a file written and closed through the mount until it is
//     in the Windows directory with its content.
func BenchmarkWindowsToApp(b *testing.B) {
	s := firstWith(b, spec.RoleInput)
	win := filepath.Join(windowsDir(s), "bench")
	mnt := filepath.Join(node.MountPoint(s), "bench")
	node.WindowsMkdirAll(win)
	data := bytes.Repeat([]byte("w"), 1024)
	b.Run("listed", func(b *testing.B) {
		measure(b, 0, func(i int) time.Duration {
			name := fmt.Sprintf("listed-%d-%d.txt", b.N, i)
			node.WindowsWriteFile(filepath.Join(win, name), data)
			return pollFor(b, func() bool {
				entries, err := os.ReadDir(mnt)
				if err != nil || !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == name }) {
					return false
				}
				got, err := os.ReadFile(filepath.Join(mnt, name))
				return err == nil && bytes.Equal(got, data)
			})
		})
	})
	b.Run("after-miss", func(b *testing.B) {
		// Each iteration waits out the client's cache of the miss (up to
		// acdirmax, 60 s): a few are enough to show it.
		measure(b, 8, func(i int) time.Duration {
			name := fmt.Sprintf("miss-%d-%d.txt", b.N, i)
			os.ReadFile(filepath.Join(mnt, name)) // ENOENT: the client remembers it
			node.WindowsWriteFile(filepath.Join(win, name), data)
			return pollFor(b, func() bool {
				got, err := os.ReadFile(filepath.Join(mnt, name))
				return err == nil && bytes.Equal(got, data)
			})
		})
	})
}

func BenchmarkAppToWindows(b *testing.B) {
	s := firstWith(b, spec.RoleOutput)
	mnt := filepath.Join(node.MountPoint(s), "bench")
	win := filepath.Join(windowsDir(s), "bench")
	os.MkdirAll(mnt, 0o777)
	data := bytes.Repeat([]byte("a"), 1024)
	measure(b, 0, func(i int) time.Duration {
		name := fmt.Sprintf("out-%d-%d.txt", b.N, i)
		os.WriteFile(filepath.Join(mnt, name), data, 0o644) // close flushes it (close-to-open)
		return pollFor(b, func() bool {
			got, err := os.ReadFile(filepath.Join(win, name))
			return err == nil && bytes.Equal(got, data)
		})
	})
}

func firstWith(b *testing.B, role spec.Role) spec.Server {
	for _, s := range lab.Servers {
		if s.Role == role {
			return s
		}
	}
	b.Skipf("no %s server in the config", role)
	return spec.Server{}
}

// pollFor returns how long cond took to hold, polling every 20 ms, from the
// moment pollFor was called.
func pollFor(b *testing.B, cond func() bool) time.Duration {
	start := time.Now()
	for !cond() {
		if time.Since(start) > 2*time.Minute {
			b.Fatal("no result after 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// measure runs one change per iteration (at most limit when limit > 0) and
// reports p50, p99 and max.
func measure(b *testing.B, limit int, one func(i int) time.Duration) {
	n := b.N
	if limit > 0 && n > limit {
		n = limit
	}
	var d []time.Duration
	for i := 0; i < n; i++ {
		d = append(d, one(i))
	}
	slices.Sort(d)
	pct := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))]) / 1e6 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(d[len(d)-1])/1e6, "max-ms")
	b.ReportMetric(float64(n), "changes") // b.N is printed too, but at most limit were measured
	b.ReportMetric(0, "ns/op")
}
