package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// BenchmarkLatency measures, with the default settings (rescan 1 s, quiet
// period 500 ms, NFS side watched, Windows side not), the time from a change
// on one side until the new file is readable on the other: Windows -> NFS
// read through an NFS client, NFS (written through an NFS client) -> the
// Windows directory. Changes come at random moments (a pause of 0-1 s,
// untimed, before each). One iteration is one change; run with -benchtime 100x
// for p50/p99 over 100 changes (make bench-sync).
func BenchmarkLatency(b *testing.B) {
	for _, dir := range []string{"windows_to_nfs", "nfs_to_windows"} {
		for _, size := range []int{1 << 10, 10 << 20} {
			b.Run(fmt.Sprintf("%s/%s", dir, sizeName(size)), func(b *testing.B) {
				benchLatency(b, dir == "nfs_to_windows", size)
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func benchLatency(b *testing.B, fromNFS bool, size int) {
	base := b.TempDir()
	cfg := Config{WindowsDir: filepath.Join(base, "windows"), NFSDir: filepath.Join(base, "export"),
		StateDir: filepath.Join(base, "state"), Role: reconcile.Output, Logger: slog.New(slog.DiscardHandler)}
	os.MkdirAll(cfg.WindowsDir, 0o755)
	os.MkdirAll(cfg.NFSDir, 0o755)
	eng, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv := nfstest.Start(b, nfstest.Options{Dir: cfg.NFSDir})
	v := nfstest.Mount(b, srv.Addr, "/")
	runEngine(b, eng)

	data := bigContent(size)
	var lat []time.Duration
	b.ResetTimer()
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	for i := range b.N {
		// A random pause (not timed) so changes do not fall in step with the
		// engine's timers and with the rounds our own copies trigger.
		b.StopTimer()
		time.Sleep(time.Duration(rng.Int64N(int64(time.Second))))
		b.StartTimer()
		data[0], data[len(data)-1] = byte(i), byte(i>>8)
		name := fmt.Sprintf("change-%04d.bin", i)
		var start time.Time
		if fromNFS {
			nfsWrite(b, v, name, data)
			start = time.Now()
			waitFor(b, func() bool {
				fi, err := os.Stat(filepath.Join(cfg.WindowsDir, name))
				if err != nil || fi.Size() != int64(size) {
					return false
				}
				got, err := os.ReadFile(filepath.Join(cfg.WindowsDir, name))
				return err == nil && bytes.Equal(got, data)
			})
		} else {
			if err := os.WriteFile(filepath.Join(cfg.WindowsDir, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			waitFor(b, func() bool {
				fi, _, err := v.Lookup(name)
				if err != nil || fi.Size() != int64(size) {
					return false
				}
				got, err := nfsRead(v, name)
				return err == nil && bytes.Equal(got, data)
			})
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	// Nearest rank: the p99 of 100 changes is the 99th fastest.
	pct := func(p float64) time.Duration { return lat[max(0, int(math.Ceil(p*float64(len(lat))))-1)] }
	b.ReportMetric(float64(pct(0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}

// runEngine starts eng and stops it when the benchmark ends.
func runEngine(b *testing.B, eng *Engine) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- eng.Run(ctx, func() { close(ready) }) }()
	<-ready
	b.Cleanup(func() { cancel(); <-done })
}

func waitFor(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("change not visible after 60 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkRescan100k: CPU time and peak RSS of the engine rescanning
// 100,000 unchanged files, measured in a child engine process so the numbers
// are the engine's alone. "default": the periodic rescan with the default
// settings (Windows scanned, the watched NFS side's scan trusted);
// "both-sides": both sides fully scanned. "first-sync" is the run that builds
// the ancestor from nothing (every path recorded); the others start from the
// saved ancestor, as after a restart. NASSYNC_FIXTURE reuses a tree made by
// an earlier run.
func BenchmarkRescan100k(b *testing.B) {
	base := os.Getenv("NASSYNC_FIXTURE")
	if base == "" {
		base = b.TempDir()
	}
	win, nfs, state := filepath.Join(base, "windows"), filepath.Join(base, "export"), filepath.Join(base, "state")
	if _, err := os.Stat(win); err != nil {
		makeFixture(b, base)
	}
	os.RemoveAll(state)
	for _, c := range []struct {
		name    string
		watched bool
	}{{"first-sync", true}, {"default", true}, {"both-sides", false}} {
		b.Run(c.name, func(b *testing.B) {
			var res rescanResult
			for range b.N {
				hp := startHelper(b, helperConfig{Windows: win, NFS: nfs, State: state, Role: "output", RescanRounds: 10, WatchNFS: c.watched}, nil, "")
				if err := <-hp.done; err != nil {
					b.Fatalf("rescan helper: %v\n%s", err, hp.log())
				}
				if err := json.Unmarshal([]byte(hp.stdout()), &res); err != nil {
					b.Fatalf("rescan helper output %q: %v\n%s", hp.stdout(), err, hp.log())
				}
			}
			b.ReportMetric(float64(res.Paths), "paths")
			b.ReportMetric(float64(res.CPUPerRound.Milliseconds()), "cpu-ms/rescan")
			b.ReportMetric(float64(res.WallPerRound.Milliseconds()), "wall-ms/rescan")
			b.ReportMetric(float64(res.MaxRSSKiB)/1024, "peak-rss-MiB")
		})
	}
}

// makeFixture writes 100 directories of 1,000 one-byte files on both sides,
// identical (same mtimes), in parallel.
func makeFixture(b *testing.B, base string) {
	mt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg gosync.WaitGroup
	errs := make(chan error, 200)
	for _, side := range []string{"windows", "export"} {
		for d := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dir := filepath.Join(base, side, fmt.Sprintf("dir%03d", d))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					errs <- err
					return
				}
				for f := range 1000 {
					p := filepath.Join(dir, fmt.Sprintf("file%04d.dat", f))
					if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
						errs <- err
						return
					}
					os.Chtimes(p, mt, mt)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkFirstSync: an input server's first sync of n files (directories
// of 1,000 one-KiB files, Windows side a local directory, empty export),
// then idle rescans with the default settings, in a child engine process as
// nasd runs it (Run: the NFS side watched, the rescan interval adapted to the
// scan cost). Reports the time to ready, its CPU, the idle CPU as a share of
// one core, the adapted interval, the last scan's wall time and the peak RSS
// of the whole process life. NASSYNC_IDLE sets the idle period (default 30 s),
// NASSYNC_BENCH_DIR where the trees are made (default the test's temp dir).
func BenchmarkFirstSync(b *testing.B) {
	idle := 30 * time.Second
	if v := os.Getenv("NASSYNC_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		idle = d
	}
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			base := b.TempDir()
			if d := os.Getenv("NASSYNC_BENCH_DIR"); d != "" { // e.g. a tmpfs
				var err error
				if base, err = os.MkdirTemp(d, "firstsync"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(base)
			}
			makeWindowsFixture(b, filepath.Join(base, "windows"), n)
			var res runResult
			for i := range b.N {
				nfs, state := filepath.Join(base, fmt.Sprintf("export%d", i)), filepath.Join(base, fmt.Sprintf("state%d", i))
				os.MkdirAll(nfs, 0o755)
				hp := startHelper(b, helperConfig{Windows: filepath.Join(base, "windows"), NFS: nfs, State: state, Role: "input", IdleFor: idle}, nil, "")
				if err := <-hp.done; err != nil {
					b.Fatalf("first-sync helper: %v\n%s", err, hp.log())
				}
				if err := json.Unmarshal([]byte(hp.stdout()), &res); err != nil {
					b.Fatalf("first-sync helper output %q: %v\n%s", hp.stdout(), err, hp.log())
				}
				os.RemoveAll(nfs)
				os.RemoveAll(state)
			}
			b.ReportMetric(float64(res.Paths), "paths")
			b.ReportMetric(res.FirstSync.Seconds(), "first-sync-s")
			b.ReportMetric(res.FirstSyncCPU.Seconds(), "first-sync-cpu-s")
			b.ReportMetric(res.IdleCPUPercent, "idle-cpu-%")
			b.ReportMetric(float64(res.IdleRounds), "idle-rounds")
			b.ReportMetric(res.RescanInterval.Seconds(), "interval-s")
			b.ReportMetric(float64(res.LastScan.Milliseconds()), "scan-ms")
			b.ReportMetric(float64(res.MaxRSSKiB)/1024, "peak-rss-MiB")
		})
	}
}

// makeWindowsFixture writes n one-KiB files in directories of 1,000, with
// an old mtime, in parallel.
func makeWindowsFixture(b *testing.B, dir string, n int) {
	mt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	data := bytes.Repeat([]byte("x"), 1024)
	var wg gosync.WaitGroup
	errs := make(chan error, n/1000+1)
	for d := 0; d*1000 < n; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := filepath.Join(dir, fmt.Sprintf("dir%03d", d))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				errs <- err
				return
			}
			for f := 0; f < 1000 && d*1000+f < n; f++ {
				p := filepath.Join(sub, fmt.Sprintf("file%04d.dat", f))
				if err := os.WriteFile(p, data, 0o644); err != nil {
					errs <- err
					return
				}
				os.Chtimes(p, mt, mt)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
