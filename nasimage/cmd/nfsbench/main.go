// Command nfsbench measures nasd against nfs-ganesha (VFS FSAL) and the
// stock go-nfs handler with a client none of them can hide behind: nfsload
// (libnfs/nfsload.c, Debian's libnfs, one TCP connection, up to 32 calls in
// flight). Every server is its own process, exporting a fresh directory of
// the same filesystem; every case runs on every server before the next case
// (interleaved, each run starting with the next server, sync(2) before
// every case), -runs times, and the table gives medians of the rate, of
// the server's CPU seconds (utime+stime from /proc) and of its peak RSS
// during the case (VmHWM after resetting it through clear_refs).
//
//	make bench-nfs   (builds nasd, nfsload and this, runs it in a private network namespace)
//	nfsbench -nasd bin/nasd -nfsload bin/nfsload [-runs 5] [-size 256] [-files 1000] [-ganesha auto|on|off] [-only syncwrite,create]
//
// nfs-ganesha registers with rpcbind on port 111: it is only started with
// -netns (the Makefile runs nfsbench in a new network namespace, where port
// 111 and everything else is private to the benchmark).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
)

// server is one NFS server under test, in its own process.
type server struct {
	name string
	url  string // libnfs URL of the export
	pid  int
	dir  string // exported directory
	stop func()
}

// benchCase is one row: an nfsload case at a depth.
type benchCase struct {
	row   string // the row's name in the table
	load  string // nfsload case
	depth int
	n     int
	prep  bool // not measured: prepares the next case
}

// sample is one case's outcome on one server.
type sample struct {
	rate  float64
	unit  string
	cpu   float64 // server CPU seconds
	rssKB int     // server peak RSS, KiB
}

func main() {
	nasdBin := flag.String("nasd", "bin/nasd", "nasd binary")
	loadBin := flag.String("nfsload", "bin/nfsload", "nfsload binary (gcc -O2 -o bin/nfsload nasimage/cmd/nfsbench/libnfs/nfsload.c -lnfs)")
	sizeMiB := flag.Int("size", 256, "MiB written then read sequentially")
	files := flag.Int("files", 1000, "small files per metadata case")
	syncWrites := flag.Int("syncwrites", 1000, "64 KiB FILE_SYNC writes (200, about 50 ms, moved the row by up to 15% between runs)")
	runs := flag.Int("runs", 5, "interleaved repetitions; the table gives medians")
	ganesha := flag.String("ganesha", "auto", "auto: include nfs-ganesha if installed and -netns; off; on (fail if it cannot run)")
	netns := flag.Bool("netns", false, "running in a private network namespace (ganesha and its rpcbind may bind any port)")
	stock := flag.Bool("stock", false, "include stock go-nfs: libnfs cannot mount it (go-nfs answers MOUNT EXPORT, which libnfs calls after MNT, with a PROG_MISMATCH without its version range, an undecodable reply)")
	only := flag.String("only", "", "comma-separated nfsload cases to run (read, write, writec, syncwrite, create, stat, openread, readdir, unlink); empty: all")
	serveStock := flag.String("serve-stock", "", "internal: serve this directory with stock go-nfs and print the address")
	flag.Parse()
	runtime.LockOSThread()
	if *serveStock != "" {
		stockMain(*serveStock)
		return
	}

	root, err := os.MkdirTemp("", "nfsbench")
	check(err)
	defer os.RemoveAll(root)
	stops = append(stops, func() { os.RemoveAll(root) })
	servers := []*server{startNasd(root, *nasdBin)}
	if *stock {
		servers = append(servers, startStock(root))
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	if *ganesha != "off" {
		g, err := startGanesha(root, *netns)
		switch {
		case err == nil:
			servers = append([]*server{servers[0], g}, servers[1:]...)
		case *ganesha == "on":
			check(err)
		default:
			fmt.Fprintf(os.Stderr, "nfs-ganesha skipped: %v\n", err)
		}
	}

	cases := []benchCase{
		{row: "seq write 1 MiB UNSTABLE, no COMMIT, d1", load: "write", depth: 1, n: *sizeMiB},
		{row: "seq write 1 MiB UNSTABLE, no COMMIT, d8", load: "write", depth: 8, n: *sizeMiB},
		{row: "seq write 1 MiB + COMMIT, d1", load: "writec", depth: 1, n: *sizeMiB},
		{row: "seq write 1 MiB + COMMIT, d8", load: "writec", depth: 8, n: *sizeMiB},
		{row: fmt.Sprintf("seq read %d MiB, d1", *sizeMiB), load: "read", depth: 1},
		{row: fmt.Sprintf("seq read %d MiB, d8", *sizeMiB), load: "read", depth: 8},
		{row: fmt.Sprintf("seq read %d MiB, d32", *sizeMiB), load: "read", depth: 32},
		{row: "64 KiB FILE_SYNC writes, d1", load: "syncwrite", depth: 1, n: *syncWrites},
		{row: "create+write 4 KiB+close, d1", load: "create", depth: 1, n: *files},
		{row: "stat, d1", load: "stat", depth: 1, n: *files},
		{row: "stat, d8", load: "stat", depth: 8, n: *files},
		{row: "stat, d32", load: "stat", depth: 32, n: *files},
		{row: "open+read 4 KiB+close, d1", load: "openread", depth: 1, n: *files},
		{row: "open+read 4 KiB+close, d8", load: "openread", depth: 8, n: *files},
		{row: fmt.Sprintf("list the %d files' directory, d1", *files), load: "readdir", depth: 1, n: 20},
		{row: "unlink, d1", load: "unlink", depth: 1, n: *files},
		{row: "create+write 4 KiB+close, d8", load: "create", depth: 8, n: *files},
		{row: "unlink, d8", load: "unlink", depth: 8, n: *files},
		{load: "create", depth: 8, n: *files, prep: true},
		{row: "unlink, d32", load: "unlink", depth: 32, n: *files},
	}
	if *only != "" {
		keep := cases[:0]
		for _, c := range cases {
			for _, l := range strings.Split(*only, ",") {
				if c.load == l {
					keep = append(keep, c)
					break
				}
			}
		}
		cases = keep
	}
	all := map[string]map[string][]sample{} // server -> row -> samples
	for _, s := range servers {
		all[s.name] = map[string][]sample{}
	}
	for run := range *runs {
		for _, c := range cases {
			// Each run starts with another server: whoever goes first in a
			// case meets the state the previous case left (page cache,
			// writeback, journal).
			for k := range servers {
				s := servers[(k+run)%len(servers)]
				// The filesystem is shared: write back what the previous
				// case left dirty, so that no server's fsync pays for it.
				syscall.Sync()
				smp, err := measure(s, c, *loadBin)
				check(err)
				if !c.prep {
					all[s.name][c.row] = append(all[s.name][c.row], smp)
					fmt.Fprintf(os.Stderr, "run %d %-14s %-40s %8.1f %s\n", run+1, s.name, c.row, smp.rate, smp.unit)
				}
			}
		}
	}
	fmt.Printf("nfsload (libnfs), one connection; %d interleaved runs, medians; %d CPUs; %s\n\n",
		*runs, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	printTable(os.Stdout, servers, cases, all)
	// The client must not be what limits the table: its best read.
	for _, s := range servers {
		best, row := 0.0, ""
		for _, c := range cases {
			for _, smp := range all[s.name][c.row] {
				if c.load == "read" && smp.rate > best {
					best, row = smp.rate, c.row
				}
			}
		}
		fmt.Printf("\nbest single read from %s: %.0f MiB/s (%.2f GB/s, %s)", s.name, best, best*(1<<20)/1e9, row)
	}
	fmt.Println()
}

// measure runs one case against s and samples the server's CPU and peak RSS.
func measure(s *server, c benchCase, loadBin string) (sample, error) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.pid), []byte("5"), 0) // reset VmHWM
	cpu0, err := cpuSeconds(s.pid)
	if err != nil {
		return sample{}, err
	}
	out, err := exec.Command(loadBin, s.url, c.load, strconv.Itoa(c.depth), strconv.Itoa(c.n)).CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("%s: nfsload %s %d: %v: %s", s.name, c.load, c.depth, err, out)
	}
	cpu1, err := cpuSeconds(s.pid)
	if err != nil {
		return sample{}, err
	}
	var smp sample
	if _, err := fmt.Sscanf(string(out), "%f %s", &smp.rate, &smp.unit); err != nil {
		return sample{}, fmt.Errorf("%s: nfsload said %q", s.name, out)
	}
	smp.cpu = cpu1 - cpu0
	smp.rssKB, err = peakRSS(s.pid)
	return smp, err
}

// cpuSeconds is a process's utime+stime (all threads).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces), from 3.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// peakRSS is VmHWM in KiB.
func peakRSS(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmHWM")
}

// startNasd runs the real nasd binary (sync, the default) on loopback.
func startNasd(root, bin string) *server {
	dir, state := filepath.Join(root, "nasd"), filepath.Join(root, "nasd-state")
	check(os.MkdirAll(dir, 0o755))
	check(os.MkdirAll(state, 0o755))
	// no_root_squash as ganesha's export: nfsload calls as root (the
	// credential checks still run for every call).
	cmd := serverCmd(bin, "serve", "--export", dir, "--state", state, "--listen", "127.0.0.1:0", "--options", "rw,sync,no_root_squash",
		"--portmap-listen", "", "--http-listen", "", "--advertise-port", "0")
	stderr, err := cmd.StderrPipe()
	check(err)
	check(cmd.Start())
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "serving" {
				addr <- line["nfs"].(string)
			}
		}
	}()
	select {
	case a := <-addr:
		return procServer("nasd (sync)", cmd, dir, a, a, "/")
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		check(errors.New("nasd did not start within 20 s"))
	}
	return nil
}

// startStock runs this binary with -serve-stock: go-nfs as its README
// shows (NullAuthHandler over osfs in the stock CachingHandler).
func startStock(root string) *server {
	dir := filepath.Join(root, "stock")
	check(os.MkdirAll(dir, 0o755))
	self, err := os.Executable()
	check(err)
	cmd := serverCmd(self, "-serve-stock", dir)
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	check(err)
	a := strings.TrimSpace(line)
	return procServer("go-nfs stock", cmd, dir, a, a, "/")
}

func stockMain(dir string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	fmt.Println(l.Addr().String())
	h := helpers.NewCachingHandler(helpers.NewNullAuthHandler(osfs.New(dir)), 1<<20)
	nfs.Log.SetLevel(nfs.FatalLevel)
	check(nfs.Serve(l, h))
}

// procServer describes a server process whose NFS and MOUNT are at addr
// and mountAddr.
func procServer(name string, cmd *exec.Cmd, dir, addr, mountAddr, export string) *server {
	_, port, _ := net.SplitHostPort(addr)
	_, mport, _ := net.SplitHostPort(mountAddr)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }
	stops = append(stops, stop)
	return &server{name: name, pid: cmd.Process.Pid, dir: dir,
		url:  fmt.Sprintf("nfs://127.0.0.1%s?nfsport=%s&mountport=%s&version=3", export, port, mport),
		stop: stop}
}

func printTable(w io.Writer, servers []*server, cases []benchCase, all map[string]map[string][]sample) {
	base := servers[0].name
	fmt.Fprintf(w, "| case | %s |", strings.Join(names(servers), " | "))
	for _, s := range servers[1:] {
		fmt.Fprintf(w, " %s / %s |", shortName(base), shortName(s.name))
	}
	fmt.Fprintf(w, " server CPU s (%s) | peak RSS MiB (%s) |\n", shortNames(servers), shortNames(servers))
	fmt.Fprint(w, "|---|")
	for range 2*len(servers) + 1 {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, c := range cases {
		if c.prep {
			continue
		}
		med := map[string]sample{}
		for _, s := range servers {
			med[s.name] = medians(all[s.name][c.row])
		}
		fmt.Fprintf(w, "| %s |", c.row)
		for _, s := range servers {
			fmt.Fprintf(w, " %.0f %s |", med[s.name].rate, med[s.name].unit)
		}
		for _, s := range servers[1:] {
			fmt.Fprintf(w, " %.2f |", med[base].rate/med[s.name].rate)
		}
		var cpu, rss []string
		for _, s := range servers {
			cpu = append(cpu, fmt.Sprintf("%.2f", med[s.name].cpu))
			rss = append(rss, fmt.Sprintf("%.0f", float64(med[s.name].rssKB)/1024))
		}
		fmt.Fprintf(w, " %s | %s |\n", strings.Join(cpu, " / "), strings.Join(rss, " / "))
	}
}

// medians takes the median of each field separately.
func medians(ss []sample) sample {
	med := func(get func(sample) float64) float64 {
		var v []float64
		for _, s := range ss {
			v = append(v, get(s))
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return sample{
		rate:  med(func(s sample) float64 { return s.rate }),
		unit:  ss[0].unit,
		cpu:   med(func(s sample) float64 { return s.cpu }),
		rssKB: int(med(func(s sample) float64 { return float64(s.rssKB) })),
	}
}

func names(servers []*server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.name)
	}
	return out
}

func shortName(n string) string { return strings.Fields(n)[0] }

func shortNames(servers []*server) string {
	var out []string
	for _, s := range servers {
		out = append(out, shortName(s.name))
	}
	return strings.Join(out, " / ")
}

// stops are the started servers' stop functions, run by check before it
// exits (os.Exit skips main's defers).
var stops []func()

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfsbench:", err)
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		os.Exit(1)
	}
}

// server processes die with nfsbench, whatever ends it (main's thread is
// locked: the death signal follows the thread that started them).
func serverCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
