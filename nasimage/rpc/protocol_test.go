package rpc_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
)

const (
	progPortmap = 100000
	progNFS     = 100003
	progMount   = 100005
)

type X = nfstest.XDR

// TestRPCErrors: unknown programs, versions and procedures get the RPC
// error that lets clients decode the reply and negotiate.
func TestRPCErrors(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	c := nfstest.DialRaw(t, srv.Addr, "")
	cases := []struct {
		name             string
		prog, vers, proc uint32
		stat             uint32
		words            []uint32 // leading words of the body, if any
	}{
		{"unknown program", 123456, 1, 0, 1, nil},
		{"NLM is not served", 100021, 4, 0, 1, nil},
		{"NFS v4", progNFS, 4, 0, 2, []uint32{3, 3}},
		{"NFS v2", progNFS, 2, 0, 2, []uint32{3, 3}},
		{"NFS unknown procedure", progNFS, 3, 22, 3, nil},
		{"MOUNT v4", progMount, 4, 0, 2, []uint32{1, 3}},
		{"MOUNT unknown procedure", progMount, 3, 6, 3, nil},
		{"MOUNT v1 MNT", progMount, 1, 1, 2, []uint32{3, 3}},
		{"portmapper v5", progPortmap, 5, 0, 2, []uint32{2, 4}},
		{"portmapper CALLIT", progPortmap, 2, 5, 3, nil},
		{"NFS NULL works", progNFS, 3, 0, 0, nil},
		{"MOUNT NULL works", progMount, 3, 0, 0, nil},
		{"portmapper NULL works", progPortmap, 2, 0, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := c.Call(tc.prog, tc.vers, tc.proc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Denied || rep.AcceptStat != tc.stat {
				t.Fatalf("want accept_stat %d, got %+v", tc.stat, rep)
			}
			if tc.words != nil && fmt.Sprint(rep.Words) != fmt.Sprint(tc.words) {
				t.Fatalf("want body %v, got %v", tc.words, rep.Words)
			}
		})
	}
	t.Run("RPC version 3", func(t *testing.T) {
		if err := c.Send(nfstest.Call(7, 3, progNFS, 3, 0, nil)); err != nil {
			t.Fatal(err)
		}
		rep, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Denied || rep.RejectStat != 0 || fmt.Sprint(rep.Words) != "[2 2]" {
			t.Fatalf("want MSG_DENIED RPC_MISMATCH 2..2, got %+v", rep)
		}
	})
}

// TestPortmapper: PMAP v2 and RPCBIND v3/v4 answer NFS and MOUNT with the
// NFS port, on the NFS port and on the portmapper's own listener.
func TestPortmapper(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{Portmap: "127.0.0.1:0"})
	port := uint32(srv.Port)
	uaddr := fmt.Sprintf("127.0.0.1.%d.%d", port>>8, port&0xff)
	for _, addr := range []string{srv.Addr, srv.PortmapAddr} {
		c := nfstest.DialRaw(t, addr, "")
		getport := func(prog, vers, prot uint32) uint32 {
			rep, err := c.Call(progPortmap, 2, 3, X{}.U32(prog, vers, prot, 0))
			if err != nil || rep.AcceptStat != 0 || len(rep.Words) != 1 {
				t.Fatalf("GETPORT: %+v %v", rep, err)
			}
			return rep.Words[0]
		}
		if p := getport(progNFS, 3, 6); p != port {
			t.Errorf("%s GETPORT nfs v3 tcp = %d, want %d", addr, p, port)
		}
		if p := getport(progMount, 3, 6); p != port {
			t.Errorf("%s GETPORT mount v3 tcp = %d, want %d", addr, p, port)
		}
		if p := getport(progNFS, 3, 17); p != 0 {
			t.Errorf("GETPORT nfs udp = %d, want 0", p)
		}
		if p := getport(progNFS, 4, 6); p != 0 {
			t.Errorf("GETPORT nfs v4 = %d, want 0", p)
		}
		rep, err := c.Call(progPortmap, 2, 4, nil)
		if err != nil || rep.AcceptStat != 0 || len(rep.Words) != 7*5+1 {
			t.Fatalf("PMAP DUMP: %+v %v", rep, err)
		}
		for _, vers := range []uint32{3, 4} {
			for _, tc := range []struct {
				prog  uint32
				netid string
				want  string
			}{{progNFS, "tcp", uaddr}, {progMount, "tcp", uaddr}, {progNFS, "udp", ""}} {
				rep, err := c.Call(progPortmap, vers, 3, X{}.U32(tc.prog, 3).String(tc.netid).String("").String(""))
				if err != nil || rep.AcceptStat != 0 {
					t.Fatalf("GETADDR: %+v %v", rep, err)
				}
				n := binary.BigEndian.Uint32(rep.Body)
				if got := string(rep.Body[4 : 4+n]); got != tc.want {
					t.Errorf("RPCBIND v%d GETADDR %d/%s = %q, want %q", vers, tc.prog, tc.netid, got, tc.want)
				}
			}
		}
	}
	// The portmapper listener serves nothing but the portmapper.
	c := nfstest.DialRaw(t, srv.PortmapAddr, "")
	if rep, err := c.Call(progNFS, 3, 0, nil); err != nil || rep.AcceptStat != 1 {
		t.Fatalf("NFS on the portmapper port: want PROG_UNAVAIL, got %+v %v", rep, err)
	}
}

// TestMountProcedures: EXPORT, MNT (root, subdirectory, missing, file),
// DUMP, UMNT and UMNTALL.
func TestMountProcedures(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{ExportPath: "/exports/input1"})
	os.Mkdir(filepath.Join(srv.Dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(srv.Dir, "file"), nil, 0o644)
	c := nfstest.DialRaw(t, srv.Addr, "")

	rep, err := c.Call(progMount, 3, 5, nil)
	if err != nil || !bytes.Contains(rep.Body, []byte("/exports/input1")) || !bytes.Contains(rep.Body, []byte("*")) {
		t.Fatalf("EXPORT: %+v %v", rep, err)
	}
	mnt := func(path string) uint32 {
		rep, err := c.Call(progMount, 3, 1, X{}.String(path))
		if err != nil || rep.AcceptStat != 0 {
			t.Fatalf("MNT %s: %+v %v", path, rep, err)
		}
		return rep.Words[0]
	}
	for path, want := range map[string]uint32{
		"/exports/input1": 0, "/exports/input1/": 0, "/exports/input1/sub": 0,
		"/exports/input1/missing": 2, "/exports/input1/file": 20, "/": 2, "/exports": 2,
		"/exports/input1/../input2": 2,
	} {
		if got := mnt(path); got != want {
			t.Errorf("MNT %s = %d, want %d", path, got, want)
		}
	}
	dump := func() string {
		rep, err := c.Call(progMount, 3, 2, nil)
		if err != nil || rep.AcceptStat != 0 {
			t.Fatalf("DUMP: %+v %v", rep, err)
		}
		return string(rep.Body)
	}
	if d := dump(); !strings.Contains(d, "127.0.0.1") || !strings.Contains(d, "/exports/input1/sub") {
		t.Fatalf("DUMP after MNT: %q", d)
	}
	c.Call(progMount, 3, 3, X{}.String("/exports/input1/sub"))
	if d := dump(); strings.Contains(d, "/exports/input1/sub") {
		t.Fatalf("DUMP after UMNT still lists it: %q", d)
	}
	c.Call(progMount, 3, 4, nil)
	if d := dump(); strings.Contains(d, "127.0.0.1") {
		t.Fatalf("DUMP after UMNTALL: %q", d)
	}
}

// TestMultiFragmentRecord: a call split over several fragments is
// reassembled (go-nfs alone rejects it).
func TestMultiFragmentRecord(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	call := nfstest.Call(42, 2, progNFS, 3, 1, X{}.Opaque(root))
	var rec []byte
	for i, cut := range [][2]int{{0, 5}, {5, 30}, {30, len(call)}} {
		h := uint32(cut[1] - cut[0])
		if i == 2 {
			h |= 1 << 31
		}
		rec = binary.BigEndian.AppendUint32(rec, h)
		rec = append(rec, call[cut[0]:cut[1]]...)
	}
	for _, b := range rec { // one byte at a time, to exercise partial reads
		if _, err := c.Conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := c.Read()
	if err != nil || rep.XID != 42 || rep.AcceptStat != 0 || rep.Words[0] != 0 {
		t.Fatalf("GETATTR in 3 fragments: %+v %v", rep, err)
	}
}

// TestBadRecordsCloseOnlyThatConnection: an oversized, a truncated and an
// undecodable record each close their own connection; others keep going.
func TestBadRecordsCloseOnlyThatConnection(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{MaxRecord: 64 << 10})
	good := nfstest.DialRaw(t, srv.Addr, "")
	root := good.Mnt(t, "/")

	bad := map[string][]byte{
		"oversized": binary.BigEndian.AppendUint32(nil, 1<<31|(64<<10+1)),
		"oversized in fragments": append(binary.BigEndian.AppendUint32(nil, 40<<10),
			append(make([]byte, 40<<10), binary.BigEndian.AppendUint32(nil, 1<<31|40<<10)...)...),
		"not a call": append(binary.BigEndian.AppendUint32(nil, 1<<31|8), 0, 0, 0, 1, 0, 0, 0, 1),
		"short":      append(binary.BigEndian.AppendUint32(nil, 1<<31|6), 1, 2, 3, 4, 5, 6),
		"huge auth":  append(binary.BigEndian.AppendUint32(nil, 1<<31|32), X{}.U32(1, 0, 2, progNFS, 3, 1, 1, 5000)...),
	}
	for name, rec := range bad {
		t.Run(name, func(t *testing.T) {
			c := nfstest.DialRaw(t, srv.Addr, "")
			c.Conn.Write(rec)
			c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("want the server to close the connection, got n=%d err=%v", n, err)
			}
			if st := good.Getattr(t, root); st != 0 {
				t.Fatalf("other connection broken: GETATTR status %d", st)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		c := nfstest.DialRaw(t, srv.Addr, "")
		c.Conn.Write(append(binary.BigEndian.AppendUint32(nil, 1<<31|100), 1, 2, 3))
		c.Conn.Close()
		if st := good.Getattr(t, root); st != 0 {
			t.Fatalf("other connection broken: GETATTR status %d", st)
		}
	})
}

// TestAllowedNetworks: a client outside the allowed networks can list
// exports but MNT gets MNT3ERR_ACCES and NFS calls are refused and the
// connection closed; an allowed client works. (Loopback: any 127/8
// address can be the source.)
func TestAllowedNetworks(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	allowed := nfstest.DialRaw(t, srv.Addr, "127.0.0.2")
	root := allowed.Mnt(t, "/")
	if st := allowed.Getattr(t, root); st != 0 {
		t.Fatalf("allowed client: GETATTR %d", st)
	}

	out := nfstest.DialRaw(t, srv.Addr, "127.0.0.1")
	rep, err := out.Call(progMount, 3, 5, nil)
	if err != nil || !bytes.Contains(rep.Body, []byte("127.0.0.2/32")) {
		t.Fatalf("EXPORT from outside: %+v %v", rep, err)
	}
	rep, err = out.Call(progMount, 3, 1, X{}.String("/"))
	if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 13 {
		t.Fatalf("MNT from outside: want MNT3ERR_ACCES (13), got %+v %v", rep, err)
	}
	rep, err = out.Call(progNFS, 3, 1, X{}.Opaque(root))
	if err != nil || !rep.Denied || rep.RejectStat != 1 || rep.Words[0] != 5 {
		t.Fatalf("GETATTR from outside: want MSG_DENIED AUTH_ERROR AUTH_TOOWEAK, got %+v %v", rep, err)
	}
	if _, err := out.Read(); err == nil {
		t.Fatal("connection from outside should be closed after the refusal")
	}
	if st := allowed.Getattr(t, root); st != 0 {
		t.Fatalf("allowed client after refusal: GETATTR %d", st)
	}
}

// TestReadOnlyExport: every mutating procedure gets NFS3ERR_ROFS with a
// well-formed failure body; reads work.
func TestReadOnlyExport(t *testing.T) {
	opts := nfsfs.DefaultOptions()
	opts.ReadOnly = true
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	srv := nfstest.Start(t, nfstest.Options{Dir: dir, Export: &opts})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, f := c.Lookup(t, root, "f")
	sattr := X{}.U32(0, 0, 0, 0, 0, 0) // set nothing
	calls := []struct {
		name  string
		proc  uint32
		args  X
		words int // failure body words after the status
	}{
		{"SETATTR", 2, X{}.Opaque(f).U32(0, 0, 0, 0, 0, 0, 0), 2},
		{"WRITE", 7, X{}.Opaque(f).U64(0).U32(4, 2).Opaque([]byte("abcd")), 2},
		{"CREATE", 8, X{}.Opaque(root).String("new").U32(0).U32(0, 0, 0, 0, 0, 0), 2},
		{"MKDIR", 9, X{}.Opaque(root).String("nd").U32(0, 0, 0, 0, 0, 0), 2},
		{"SYMLINK", 10, append(X{}.Opaque(root).String("ln"), append(sattr, X{}.String("f")...)...), 2},
		{"MKNOD", 11, X{}.Opaque(root).String("fifo").U32(7).U32(0, 0, 0, 0, 0, 0), 2},
		{"REMOVE", 12, X{}.Opaque(root).String("f"), 2},
		{"RMDIR", 13, X{}.Opaque(root).String("d"), 2},
		{"RENAME", 14, X{}.Opaque(root).String("f").Opaque(root).String("g"), 4},
		{"LINK", 15, X{}.Opaque(f).Opaque(root).String("hard"), 3},
	}
	for _, tc := range calls {
		rep, err := c.Call(progNFS, 3, tc.proc, tc.args)
		if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
			t.Fatalf("%s: %+v %v", tc.name, rep, err)
		}
		if rep.Words[0] != 30 || len(rep.Words) != 1+tc.words {
			t.Errorf("%s: want NFS3ERR_ROFS (30) + %d words, got %v", tc.name, tc.words, rep.Words)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("read-only export changed: %v", entries)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "data" {
		t.Fatalf("file changed: %q", got)
	}
	// Reading works.
	rep, err := c.Call(progNFS, 3, 6, X{}.Opaque(f).U64(0).U32(100))
	if err != nil || rep.Words[0] != 0 || !bytes.Contains(rep.Body, []byte("data")) {
		t.Fatalf("READ on read-only export: %+v %v", rep, err)
	}
	v := nfstest.Mount(t, srv.Addr, "/")
	if _, err := v.Mkdir("x", 0o755); err == nil {
		t.Fatal("go-nfs-client mkdir on a read-only export succeeded")
	}
}

// TestPipelinedCalls: many calls written back to back on one connection
// are all answered (concurrently, by several go-nfs backends).
func TestPipelinedCalls(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	os.WriteFile(filepath.Join(srv.Dir, "big"), data, 0o644)
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, fh := c.Lookup(t, root, "big")
	const n = 32
	var batch []byte
	for i := range n {
		call := nfstest.Call(uint32(1000+i), 2, progNFS, 3, 6, X{}.Opaque(fh).U64(uint64(i)*32<<10).U32(32<<10))
		batch = binary.BigEndian.AppendUint32(batch, uint32(len(call))|1<<31)
		batch = append(batch, call...)
	}
	go c.Conn.Write(batch)
	seen := map[uint32]bool{}
	for range n {
		rep, err := c.Read()
		if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 0 {
			t.Fatalf("pipelined READ: %+v %v", rep.XID, err)
		}
		i := int(rep.XID - 1000)
		if !bytes.Contains(rep.Body, data[i*32<<10:(i+1)*32<<10]) {
			t.Fatalf("READ %d returned the wrong data", i)
		}
		seen[rep.XID] = true
	}
	if len(seen) != n {
		t.Fatalf("answered %d distinct calls, want %d", len(seen), n)
	}
}

// TestMalformedArgumentsNeverReachGoNFS: arguments that do not decode, or
// announce lengths beyond their bounds, get GARBAGE_ARGS from the front
// door (go-nfs would allocate the announced length first).
func TestMalformedArgumentsNeverReachGoNFS(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	for name, tc := range map[string]struct {
		proc uint32
		args X
	}{
		"LOOKUP with a 1.5 GB name":    {3, X{}.Opaque(root).U32(0x59300004)},
		"LOOKUP without a name":        {3, X{}.Opaque(root)},
		"READ without count":           {6, X{}.Opaque(root).U64(0)},
		"WRITE with data beyond":       {7, X{}.Opaque(root).U64(0).U32(4, 2, 1<<30)},
		"SYMLINK with a 64 KiB target": {10, X{}.Opaque(root).String("l").U32(0, 0, 0, 0, 0, 0).U32(65536)},
		"handle longer than 64 bytes":  {1, X{}.Opaque(make([]byte, 65))},
	} {
		rep, err := c.Call(progNFS, 3, tc.proc, tc.args)
		if err != nil || rep.Denied || rep.AcceptStat != 4 {
			t.Errorf("%s: want GARBAGE_ARGS, got %+v %v", name, rep, err)
		}
	}
	if st := c.Getattr(t, root); st != 0 {
		t.Fatalf("server unusable after garbage: %d", st)
	}
}

// TestPortmapperOverUDP: GETPORT and GETADDR answered over UDP datagrams,
// with the TCP mappings.
func TestPortmapperOverUDP(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.RPC.ServePortmapUDP(pc)
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(vers, proc uint32, args X) nfstest.Reply {
		c.Write(nfstest.Call(9, 2, progPortmap, vers, proc, args))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := nfstest.ParseReply(buf[:n])
		if err != nil || rep.AcceptStat != 0 {
			t.Fatalf("UDP reply: %+v %v", rep, err)
		}
		return rep
	}
	if rep := call(2, 3, X{}.U32(progNFS, 3, 6, 0)); rep.Words[0] != uint32(srv.Port) {
		t.Fatalf("GETPORT over UDP: %v, want %d", rep.Words, srv.Port)
	}
	if rep := call(2, 3, X{}.U32(progMount, 3, 17, 0)); rep.Words[0] != 0 {
		t.Fatalf("GETPORT mount/udp over UDP: %v, want 0", rep.Words)
	}
	if rep := call(4, 3, X{}.U32(progNFS, 3).String("tcp").String("").String("")); !strings.HasSuffix(string(rep.Body[4:4+rep.Words[0]]), fmt.Sprintf(".%d.%d", srv.Port>>8, srv.Port&0xff)) {
		t.Fatalf("GETADDR over UDP: %q", rep.Body)
	}
}

// TestMknodNotSupported: special files are refused with NFS3ERR_NOTSUPP
// by the front door.
func TestMknodNotSupported(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	rep, err := c.Call(progNFS, 3, 11, X{}.Opaque(root).String("fifo").U32(7).U32(0, 0, 0, 0, 0, 0))
	if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 10004 || len(rep.Words) != 3 {
		t.Errorf("MKNOD: want NFS3ERR_NOTSUPP, got %+v %v", rep, err)
	}
	if entries, _ := os.ReadDir(srv.Dir); len(entries) != 0 {
		t.Fatalf("export changed: %v", entries)
	}
}
