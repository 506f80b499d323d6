package rpc_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// dirEntry is one READDIR(PLUS) entry as a raw client decodes it.
type dirEntry struct {
	fileid uint64
	name   string
	cookie uint64
	attr   []byte // fattr3, nil if absent
	handle []byte // nil if absent
}

// dirPage is one READDIR(PLUS) reply.
type dirPage struct {
	status  uint32
	size    int // bytes from the status to eof
	verf    uint64
	entries []dirEntry
	eof     bool
}

// readdir sends one READDIRPLUS (plus) or READDIR (count is maxcount;
// dircount is only sent with plus) and decodes the reply.
func readdir(t testing.TB, c *nfstest.Raw, plus bool, dir []byte, cookie, verf uint64, dircount, count uint32) dirPage {
	t.Helper()
	args := nfstest.XDR{}.Opaque(dir).U64(cookie).U64(verf)
	proc := uint32(16)
	if plus {
		args, proc = args.U32(dircount), 17
	}
	rep, err := c.Call(100003, 3, proc, args.U32(count))
	if err != nil || rep.AcceptStat != 0 {
		t.Fatalf("READDIR: %+v %v", rep, err)
	}
	b := rep.Body
	be := binary.BigEndian
	p := dirPage{status: be.Uint32(b), size: len(b)}
	if p.status != 0 {
		return p
	}
	off := 4
	if be.Uint32(b[off:]) == 1 {
		off += 84
	}
	off += 4
	p.verf = be.Uint64(b[off:])
	off += 8
	opaque := func() []byte {
		n := int(be.Uint32(b[off:]))
		v := b[off+4 : off+4+n]
		off += 4 + (n+3)&^3
		return v
	}
	for be.Uint32(b[off:]) == 1 {
		off += 4
		var e dirEntry
		e.fileid = be.Uint64(b[off:])
		off += 8
		e.name = string(opaque())
		e.cookie = be.Uint64(b[off:])
		off += 8
		if plus {
			if be.Uint32(b[off:]) == 1 {
				e.attr = b[off+4 : off+88]
				off += 84
			}
			off += 4
			if be.Uint32(b[off:]) == 1 {
				off += 4
				e.handle = opaque()
			} else {
				off += 4
			}
		}
		p.entries = append(p.entries, e)
	}
	p.eof = be.Uint32(b[off+4:]) == 1
	if off+8 != len(b) {
		t.Fatalf("READDIR reply: %d bytes after eof", len(b)-off-8)
	}
	return p
}

// listAll lists dir with READDIRPLUS (or READDIR) pages of count bytes,
// each continuing from the last cookie and verifier, and returns every
// entry and the number of calls.
func listAll(t testing.TB, c *nfstest.Raw, plus bool, dir []byte, dircount, count uint32) ([]dirEntry, int) {
	t.Helper()
	var all []dirEntry
	var cookie, verf uint64
	for calls := 1; ; calls++ {
		p := readdir(t, c, plus, dir, cookie, verf, dircount, count)
		if p.status != 0 {
			t.Fatalf("READDIR page %d (cookie %d): status %d", calls, cookie, p.status)
		}
		if p.size > int(count) {
			t.Fatalf("READDIR reply of %d bytes for maxcount %d", p.size, count)
		}
		all = append(all, p.entries...)
		if p.eof {
			return all, calls
		}
		if len(p.entries) == 0 {
			t.Fatalf("READDIR page %d: no entries and not eof", calls)
		}
		cookie, verf = p.entries[len(p.entries)-1].cookie, p.verf
	}
}

func makeFiles(t testing.TB, dir string, n int) map[string]bool {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("file-%05d.txt", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	return want
}

// onceEach checks that names holds every wanted name exactly once, and
// nothing else but "." and "..".
func onceEach(t *testing.T, what string, names []string, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
		if !want[n] && n != "." && n != ".." {
			t.Errorf("%s: unexpected entry %q", what, n)
		}
	}
	for n := range want {
		if seen[n] != 1 {
			t.Errorf("%s: %q listed %d times", what, n, seen[n])
		}
	}
}

// TestReaddirPlusPaging lists a directory of 5,000 files with
// go-nfs-client (pages of 4 KiB: many READDIRPLUS calls, each continuing
// the last): every name once, each with the handle and attributes LOOKUP
// gives.
func TestReaddirPlusPaging(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	want := makeFiles(t, filepath.Join(srv.Dir, "big"), 5000)
	v := nfstest.Mount(t, srv.Addr, "/")
	entries, err := v.ReadDirPlus("big")
	if err != nil {
		t.Fatalf("READDIRPLUS: %v", err)
	}
	calls := metricValue(t, srv.Registry, "nasd_rpc_requests_total", "procedure=READDIRPLUS", "status=OK")
	if calls < 2 {
		t.Errorf("5,000 entries in %v READDIRPLUS calls of 4 KiB", calls)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.FileName)
	}
	onceEach(t, "go-nfs-client", names, want)

	// The same listing, raw (go-nfs-client's pages): each entry's
	// handle is LOOKUP's, its attributes GETATTR's.
	c := nfstest.DialRaw(t, srv.Addr, "")
	_, big := c.Lookup(t, c.Mnt(t, "/"), "big")
	raw, _ := listAll(t, c, true, big, 512, 4096)
	for i, e := range raw {
		if i%250 != 2 {
			continue
		}
		_, fh := c.Lookup(t, big, e.name)
		if !bytes.Equal(e.handle, fh) {
			t.Errorf("%s: READDIRPLUS handle %x, LOOKUP %x", e.name, e.handle, fh)
		}
		rep, err := c.Call(100003, 3, 1, nfstest.XDR{}.Opaque(fh))
		if err != nil || rep.Words[0] != 0 || !bytes.Equal(rep.Body[4:88], e.attr) {
			t.Errorf("%s: READDIRPLUS attributes %x, GETATTR %x %v", e.name, e.attr, rep.Body, err)
		}
	}
}

// TestReaddirLikeGoNFS lists the same directory through the data path and
// through go-nfs (READDIRPLUS and READDIR): the same entries with the
// same cookies, fileids, attributes and handles ("." with its attributes,
// ".." with its fileid only).
func TestReaddirLikeGoNFS(t *testing.T) {
	dir := t.TempDir()
	makeFiles(t, filepath.Join(dir, "sub"), 300)
	if err := os.Mkdir(filepath.Join(dir, "sub", "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file-00001.txt", filepath.Join(dir, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	list := func(goNFS, plus bool) map[uint64]dirEntry {
		srv := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key, GoNFS: goNFS})
		c := nfstest.DialRaw(t, srv.Addr, "")
		_, sub := c.Lookup(t, c.Mnt(t, "/"), "sub")
		entries, _ := listAll(t, c, plus, sub, 8192, 32768)
		m := map[uint64]dirEntry{}
		for _, e := range entries {
			if _, dup := m[e.cookie]; dup {
				t.Fatalf("cookie %d twice", e.cookie)
			}
			m[e.cookie] = e
		}
		srv.Stop()
		return m
	}
	for _, plus := range []bool{true, false} {
		ours, theirs := list(false, plus), list(true, plus)
		if len(ours) != len(theirs) || len(ours) != 300+2+2 {
			t.Fatalf("plus %v: %d entries, go-nfs %d", plus, len(ours), len(theirs))
		}
		for ck, g := range theirs {
			e := ours[ck]
			if e.name != g.name || e.fileid != g.fileid || !bytes.Equal(e.attr, g.attr) || !bytes.Equal(e.handle, g.handle) ||
				(e.attr == nil) != (g.attr == nil) || (e.handle == nil) != (g.handle == nil) {
				t.Errorf("plus %v cookie %d: %q fileid %x attr %x handle %x; go-nfs %q %x %x %x",
					plus, ck, e.name, e.fileid, e.attr, e.handle, g.name, g.fileid, g.attr, g.handle)
			}
		}
	}
}

// TestReaddirLimits: no reply is larger than maxcount (READDIRPLUS) or
// count (READDIR), whatever the size; a maxcount too small for one entry
// is TOOSMALL; a cookie continuing a listing whose verifier the directory
// no longer has is BAD_COOKIE; a listing continued while the directory
// changes stays the listing it began as.
func TestReaddirLimits(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	sub := filepath.Join(srv.Dir, "sub")
	want := makeFiles(t, sub, 400)
	c := nfstest.DialRaw(t, srv.Addr, "")
	_, dir := c.Lookup(t, c.Mnt(t, "/"), "sub")
	for _, plus := range []bool{true, false} {
		for _, count := range []uint32{400, 1000, 1500, 4096, 10000, 65536} {
			entries, calls := listAll(t, c, plus, dir, count, count)
			names := make([]string, len(entries))
			for i, e := range entries {
				names[i] = e.name
			}
			onceEach(t, fmt.Sprintf("plus %v count %d (%d calls)", plus, count, calls), names, want)
		}
		// dircount limits the names, fileids and cookies alone.
		if _, calls := listAll(t, c, true, dir, 1024, 65536); plus && calls < 400*28/1024 {
			t.Errorf("dircount 1024: 400 entries in %d calls", calls)
		}
		for _, count := range []uint32{0, 50, 150} {
			if p := readdir(t, c, plus, dir, 0, 0, count, count); p.status != 10005 {
				t.Errorf("plus %v maxcount %d: status %d, want TOOSMALL (10005)", plus, count, p.status)
			}
		}
	}

	first := readdir(t, c, true, dir, 0, 0, 4096, 4096)
	if first.eof || len(first.entries) < 3 {
		t.Fatalf("first page: %d entries, eof %v", len(first.entries), first.eof)
	}
	last := first.entries[len(first.entries)-1].cookie
	if p := readdir(t, c, true, dir, last, first.verf^1, 4096, 4096); p.status != 10003 {
		t.Errorf("unknown verifier: status %d, want BAD_COOKIE (10003)", p.status)
	}
	if p := readdir(t, c, true, c.Mnt(t, "/"), last, first.verf, 4096, 4096); p.status != 10003 {
		t.Errorf("another directory's verifier: status %d, want BAD_COOKIE (10003)", p.status)
	}
	// The directory changes under the listing: its pages, continued
	// with their verifier, still list every name it began with once.
	if err := os.WriteFile(filepath.Join(sub, "aaa-new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sub, "file-00399.txt")); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range first.entries {
		names = append(names, e.name)
	}
	cookie, verf := last, first.verf
	for {
		p := readdir(t, c, true, dir, cookie, verf, 4096, 4096)
		if p.status != 0 {
			t.Fatalf("continuing after a change: status %d", p.status)
		}
		for _, e := range p.entries {
			names = append(names, e.name)
		}
		if p.eof {
			break
		}
		cookie, verf = p.entries[len(p.entries)-1].cookie, p.verf
	}
	delete(want, "file-00399.txt") // gone: not listed
	onceEach(t, "continued across a change", names, want)
	// A new listing sees the change.
	entries, _ := listAll(t, c, true, dir, 65536, 65536)
	fresh := strings.Builder{}
	for _, e := range entries {
		fresh.WriteString(e.name + "\n")
	}
	if !strings.Contains(fresh.String(), "aaa-new\n") || strings.Contains(fresh.String(), "file-00399.txt") {
		t.Errorf("a new listing does not show the change")
	}
}

// TestLibnfsList lists a directory of 1,000 files with libnfs's nfs-ls:
// every name once.
func TestLibnfsList(t *testing.T) {
	nfstest.RequireTool(t, "nfs-ls")
	srv := nfstest.Start(t, nfstest.Options{})
	want := makeFiles(t, filepath.Join(srv.Dir, "d"), 1000)
	out := nfstest.MustRun(t, 60*time.Second, "nfs-ls", nfstest.LibnfsURL(srv.Addr, "/d"))
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		names = append(names, f[len(f)-1])
	}
	onceEach(t, "nfs-ls", names, want)
	if n := metricValue(t, srv.Registry, "nasd_rpc_requests_total", "procedure=READDIRPLUS", "status=OK"); n < 1 {
		t.Errorf("nfs-ls sent no READDIRPLUS")
	}
}

// BenchmarkReaddirPlus lists a directory of 1,000 files with READDIRPLUS
// in 32 KiB pages (one op: the whole listing).
func BenchmarkReaddirPlus(b *testing.B) {
	srv := nfstest.Start(b, nfstest.Options{})
	makeFiles(b, filepath.Join(srv.Dir, "d"), 1000)
	c := nfstest.DialRaw(b, srv.Addr, "")
	_, dir := c.Lookup(b, c.Mnt(b, "/"), "d")
	for b.Loop() {
		if entries, _ := listAll(b, c, true, dir, 8192, 32768); len(entries) != 1002 {
			b.Fatalf("%d entries", len(entries))
		}
	}
}
