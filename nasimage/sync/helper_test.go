package sync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/sync/watch"
)

// helperEnv makes the test binary run an engine instead of tests, so fault
// tests can SIGKILL a real process in the middle of a copy.
const helperEnv = "NASSYNC_HELPER"

type helperConfig struct {
	Windows, NFS, State string
	Role                string
	ChunkDelay          time.Duration
	Rescan, Quiet       time.Duration
	// RescanRounds > 0: after ready, run that many rounds and print their
	// CPU time and the peak RSS as JSON, then exit (the rescan benchmark).
	RescanRounds int
	WatchNFS     bool // with RescanRounds: the NFS side watched (the default)
	// IdleFor > 0: run the engine (Run, default settings), time the initial
	// sync, then measure CPU for IdleFor with nothing changing; print a
	// runResult as JSON (the first-sync benchmark).
	IdleFor time.Duration
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(helperMain(cfg))
	}
	os.Exit(m.Run())
}

func helperMain(raw string) int {
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	role, err := ParseRole(hc.Role)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	eng, err := New(Config{
		WindowsDir: hc.Windows, NFSDir: hc.NFS, StateDir: hc.State, Role: role,
		RescanInterval: hc.Rescan, QuietPeriod: hc.Quiet,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, nil)),
		copyChunkDelay: hc.ChunkDelay,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if hc.RescanRounds > 0 {
		return rescanBench(eng, hc.RescanRounds, hc.WatchNFS)
	}
	if hc.IdleFor > 0 {
		return firstSyncBench(eng, hc.IdleFor)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := eng.Run(ctx, func() { fmt.Println("READY") }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperProc is an engine running in a child process.
type helperProc struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	stderr *strings.Builder
	out    lockedWriter // stdout lines other than READY
	done   chan error
}

func (hp *helperProc) stdout() string {
	hp.out.mu.Lock()
	defer hp.out.mu.Unlock()
	return hp.out.w.(*strings.Builder).String()
}

func startHelper(t testing.TB, hc helperConfig, cred *syscall.Credential, binary string) *helperProc {
	t.Helper()
	raw, _ := json.Marshal(hc)
	if binary == "" {
		binary = os.Args[0]
	}
	cmd := exec.Command(binary, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	hp := &helperProc{cmd: cmd, ready: make(chan struct{}), stderr: &strings.Builder{}, done: make(chan error, 1)}
	hp.out.w = &strings.Builder{}
	cmd.Stderr = &lockedWriter{w: hp.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(hp.ready)
			} else {
				hp.out.Write(append(sc.Bytes(), '\n'))
			}
		}
		io.Copy(io.Discard, stdout)
		hp.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("helper log:\n%s", hp.log())
		}
	})
	return hp
}

func (hp *helperProc) log() string {
	lw := hp.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return hp.stderr.String()
}

func (hp *helperProc) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-hp.ready:
	case err := <-hp.done:
		t.Fatalf("helper exited before ready: %v\n%s", err, hp.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("helper not ready\n%s", hp.log())
	}
}

func (hp *helperProc) kill(t testing.TB) {
	t.Helper()
	hp.cmd.Process.Signal(syscall.SIGKILL)
	<-hp.done
}

// rescanResult is what a rescan helper prints.
type rescanResult struct {
	Paths        int
	Rounds       int
	CPUPerRound  time.Duration // user + system
	WallPerRound time.Duration
	MaxRSSKiB    int64
}

// runResult is what a first-sync helper prints.
type runResult struct {
	Paths          int
	FirstSync      time.Duration // Run start to ready
	FirstSyncCPU   time.Duration
	IdleCPUPercent float64 // of one core, over the idle period
	IdleRounds     int
	RescanInterval time.Duration // the adapted interval at the end
	LastScan       time.Duration
	MaxRSSKiB      int64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// firstSyncBench runs the engine as nasd does and measures the initial sync
// and then idle rounds.
func firstSyncBench(eng *Engine, idle time.Duration) int {
	ctx, cancel := context.WithCancel(context.Background())
	var res runResult
	t0, c0 := time.Now(), cpuTime()
	var c1 time.Duration
	var r1 int
	var t1 time.Time
	done := make(chan error, 1)
	go func() {
		done <- eng.Run(ctx, func() {
			t1, c1 = time.Now(), cpuTime()
			res.FirstSync, res.FirstSyncCPU = t1.Sub(t0), c1-c0
			r1 = eng.roundsTotal
			time.AfterFunc(idle, cancel)
		})
	}()
	<-ctx.Done()
	c2, t2 := cpuTime(), time.Now()
	res.IdleCPUPercent = 100 * float64(c2-c1) / float64(t2.Sub(t1))
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res.IdleRounds = eng.roundsTotal - r1 - 1 // the flush's round is no idle one
	res.Paths = len(eng.anc)
	res.RescanInterval, res.LastScan = eng.interval, eng.lastScan
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	res.MaxRSSKiB = ru.Maxrss
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// rescanBench syncs once (from the saved ancestor), then times rounds that
// find nothing to do: both sides fully scanned, reconciled, nothing applied.
func rescanBench(eng *Engine, rounds int, watched bool) int {
	if err := eng.open(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if watched {
		// The default: the NFS side is watched (from the start, as in Run),
		// so a periodic rescan reads Windows and trusts the NFS scan until an
		// event or the full-rescan interval.
		w, err := watch.New(eng.cfg.NFSDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer w.Close()
		eng.nfsW = w
	}
	for i := 0; i < 5; i++ {
		r, err := eng.round(context.Background(), i == 0, false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if r.planned == 0 {
			break
		}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, w0 := cpu(), time.Now()
	for range rounds {
		r, err := eng.round(context.Background(), false, false)
		if err != nil || r.planned != 0 {
			fmt.Fprintln(os.Stderr, "rescan round planned", r.planned, err)
			return 1
		}
	}
	res := rescanResult{Paths: len(eng.anc), Rounds: rounds,
		CPUPerRound: (cpu() - c0) / time.Duration(rounds), WallPerRound: time.Since(w0) / time.Duration(rounds)}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	res.MaxRSSKiB = ru.Maxrss
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}
