// Command nfsbench measures nasd against the stock go-nfs handler and, when
// installed, nfs-ganesha (VFS FSAL), with the same client
// (github.com/willscott/go-nfs-client) in the same run, and prints a table
// with ratios:
//
//	go run ./nasimage/cmd/nfsbench [-size 256] [-files 2000] [-ganesha=auto]
//
// Every server exports a fresh directory on the same filesystem. Transfers
// use 1 MiB calls for every server (go-nfs advertises 1 GiB, which the
// client would otherwise use as is).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	nfsc "github.com/willscott/go-nfs-client/nfs"
	nfsrpc "github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs/helpers"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
)

// server is one NFS server under test: where to MOUNT and where NFS is.
type server struct {
	name            string
	mountAddr, addr string
	dir             string // exported directory
	exportPath      string
	stop            func()
}

// result is one workload's outcome: a rate and its unit.
type result struct {
	rate float64
	unit string
}

func main() {
	sizeMiB := flag.Int("size", 256, "MiB written then read sequentially")
	files := flag.Int("files", 2000, "small files created, then stat'ed and read")
	ganesha := flag.String("ganesha", "auto", "auto: include nfs-ganesha if installed; off; on (fail if it cannot run)")
	runs := flag.Int("runs", 3, "rounds over all servers; the table shows the median (the machine is shared: single runs are noisy)")
	flag.Parse()

	root, err := os.MkdirTemp("", "nfsbench")
	check(err)
	defer os.RemoveAll(root)

	servers := []*server{startNasd(root, "nasd (sync)", true), startNasd(root, "nasd (async)", false), startStock(root)}
	if *ganesha != "off" {
		g, err := startGanesha(root)
		switch {
		case err == nil:
			servers = append(servers, g)
		case *ganesha == "on":
			check(err)
		default:
			fmt.Fprintf(os.Stderr, "nfs-ganesha skipped: %v\n", err)
		}
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()

	workloads := []string{
		fmt.Sprintf("seq write %d MiB", *sizeMiB), fmt.Sprintf("seq read %d MiB", *sizeMiB),
		fmt.Sprintf("create %d x 4 KiB", *files), "stat (LOOKUP+GETATTR)", "open+read 4 KiB",
	}
	all := map[string][][]result{}
	for round := range *runs {
		for _, s := range servers { // interleaved, so that load changes hit every server
			fmt.Fprintf(os.Stderr, "round %d: %s ...\n", round+1, s.name)
			all[s.name] = append(all[s.name], run(s, round, *sizeMiB, *files))
		}
	}
	results := map[string][]result{}
	for name, rounds := range all {
		results[name] = median(rounds)
	}
	fmt.Printf("%d rounds, median; %d CPUs\n\n", *runs, runtime.NumCPU())
	printTable(os.Stdout, servers, workloads, results)
}

// median takes, per workload, the median rate over the rounds.
func median(rounds [][]result) []result {
	out := make([]result, len(rounds[0]))
	for i := range out {
		var rates []float64
		for _, r := range rounds {
			rates = append(rates, r[i].rate)
		}
		sort.Float64s(rates)
		out[i] = result{rates[len(rates)/2], rounds[0][i].unit}
	}
	return out
}

// run runs every workload once in a fresh directory of the export.
func run(s *server, round, sizeMiB, files int) []result {
	v := mount(s)
	defer v.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var out []result

	// Sequential write, 1 MiB calls, then COMMIT (Close).
	start := time.Now()
	dir := fmt.Sprintf("round%d", round)
	_, err := v.Mkdir(dir, 0o755)
	check(err)
	f, err := v.OpenFile(dir+"/big", 0o644)
	check(err)
	for range sizeMiB {
		_, err := f.Write(buf)
		check(err)
	}
	check(f.Close())
	out = append(out, result{float64(sizeMiB) / time.Since(start).Seconds(), "MiB/s"})

	// Sequential read, 1 MiB calls.
	start = time.Now()
	r, err := v.Open(dir + "/big")
	check(err)
	n := 0
	for {
		k, err := r.Read(buf)
		n += k
		if err == io.EOF || k == 0 {
			break
		}
		check(err)
	}
	r.Close()
	if n != sizeMiB<<20 {
		check(fmt.Errorf("%s: read %d bytes, want %d", s.name, n, sizeMiB<<20))
	}
	out = append(out, result{float64(sizeMiB) / time.Since(start).Seconds(), "MiB/s"})

	// Small-file creates.
	small := buf[:4096]
	start = time.Now()
	for i := range files {
		f, err := v.OpenFile(fmt.Sprintf("%s/f%05d", dir, i), 0o644)
		check(err)
		_, err = f.Write(small)
		check(err)
		check(f.Close())
	}
	out = append(out, result{float64(files) / time.Since(start).Seconds(), "files/s"})

	// Stat every file by path.
	start = time.Now()
	for i := range files {
		_, err := v.Getattr(fmt.Sprintf("%s/f%05d", dir, i))
		check(err)
	}
	out = append(out, result{float64(files) / time.Since(start).Seconds(), "files/s"})

	// Open and read every file.
	start = time.Now()
	for i := range files {
		r, err := v.Open(fmt.Sprintf("%s/f%05d", dir, i))
		check(err)
		b, err := io.ReadAll(r)
		check(err)
		if len(b) != 4096 {
			check(fmt.Errorf("%s: small file read %d bytes", s.name, len(b)))
		}
	}
	out = append(out, result{float64(files) / time.Since(start).Seconds(), "files/s"})
	return out
}

// mount mounts the server's export with go-nfs-client (MOUNT and NFS may
// be on different ports, as with ganesha).
func mount(s *server) *nfsc.Target {
	auth := nfsrpc.NewAuthUnix("nfsbench", 0, 0).Auth()
	mc, err := nfstest.DialClient(s.mountAddr)
	check(err)
	defer mc.Close()
	m := &nfsc.Mount{Client: mc}
	fh, err := mntHandle(m, s.exportPath, auth)
	check(err)
	c, err := nfstest.DialClient(s.addr)
	check(err)
	v, err := nfsc.NewTargetWithClient(c, auth, fh, s.exportPath, time.Second)
	check(err)
	return v
}

// mntHandle does MOUNT MNT and returns the root handle.
func mntHandle(m *nfsc.Mount, path string, auth nfsrpc.Auth) ([]byte, error) {
	type mnt struct {
		nfsrpc.Header
		Dirpath string
	}
	res, err := m.Call(&mnt{nfsrpc.Header{Rpcvers: 2, Prog: nfsc.MountProg, Vers: nfsc.MountVers,
		Proc: nfsc.MountProc3MNT, Cred: auth, Verf: nfsrpc.AuthNull}, path})
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(res)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 || binary.BigEndian.Uint32(raw) != 0 {
		return nil, fmt.Errorf("MNT %s failed: % x", path, raw[:min(len(raw), 8)])
	}
	n := int(binary.BigEndian.Uint32(raw[4:]))
	if len(raw) < 8+n {
		return nil, fmt.Errorf("MNT %s: short reply", path)
	}
	return append([]byte(nil), raw[8:8+n]...), nil
}

func startNasd(root, name string, sync bool) *server {
	dir := filepath.Join(root, strings.NewReplacer(" ", "", "(", "-", ")", "").Replace(name))
	check(os.MkdirAll(dir, 0o755))
	opts := nfsfs.DefaultOptions()
	opts.Sync = sync
	srv := nfstest.Start(&benchTB{}, nfstest.Options{Dir: dir, Export: &opts})
	return &server{name: name, addr: srv.Addr, mountAddr: srv.Addr, dir: dir, exportPath: "/", stop: srv.Stop}
}

// startStock serves the directory with go-nfs as its README shows:
// NullAuthHandler over osfs, wrapped in the stock CachingHandler.
func startStock(root string) *server {
	dir := filepath.Join(root, "stock")
	check(os.MkdirAll(dir, 0o755))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	h := helpers.NewCachingHandler(helpers.NewNullAuthHandler(osfs.New(dir)), 1<<20)
	go func() { _ = nfs.Serve(l, h) }()
	return &server{name: "go-nfs stock", addr: l.Addr().String(), mountAddr: l.Addr().String(), dir: dir,
		exportPath: "/", stop: func() { l.Close() }}
}

func printTable(w io.Writer, servers []*server, workloads []string, results map[string][]result) {
	base := servers[0].name
	fmt.Fprintf(w, "| workload | %s |", strings.Join(names(servers), " | "))
	for _, s := range servers[1:] {
		fmt.Fprintf(w, " %s / %s |", base, s.name)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range 2*len(servers) - 1 {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for i, wl := range workloads {
		fmt.Fprintf(w, "| %s |", wl)
		for _, s := range servers {
			r := results[s.name][i]
			fmt.Fprintf(w, " %.0f %s |", r.rate, r.unit)
		}
		for _, s := range servers[1:] {
			fmt.Fprintf(w, " %.2fx |", results[base][i].rate/results[s.name][i].rate)
		}
		fmt.Fprintln(w)
	}
}

func names(servers []*server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.name)
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfsbench:", err)
		os.Exit(1)
	}
}

// benchTB lets nfstest.Start run outside a test.
type benchTB struct{ testing.TB }

func (*benchTB) Helper()                   {}
func (*benchTB) TempDir() string           { d, err := os.MkdirTemp("", "nfsbench"); check(err); return d }
func (*benchTB) Cleanup(func())            {}
func (*benchTB) Fatal(args ...any)         { check(fmt.Errorf("%s", fmt.Sprint(args...))) }
func (*benchTB) Fatalf(f string, a ...any) { check(fmt.Errorf(f, a...)) }
