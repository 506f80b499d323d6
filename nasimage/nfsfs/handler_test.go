package nfsfs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
)

const progNFS = 100003

type X = nfstest.XDR

// read does an NFSv3 READ and returns the status and the data.
func read(t *testing.T, c *nfstest.Raw, fh []byte) (uint32, []byte) {
	t.Helper()
	rep, err := c.Call(progNFS, 3, 6, X{}.Opaque(fh).U64(0).U32(1<<16))
	if err != nil || rep.AcceptStat != 0 {
		t.Fatalf("READ: %+v %v", rep, err)
	}
	if rep.Words[0] != 0 {
		return rep.Words[0], nil
	}
	off := 8
	if rep.Words[1] == 1 {
		off += 84
	}
	// count, eof, then the data as an opaque
	n := int(rep.Words[off/4+2])
	return 0, rep.Body[off+12 : off+12+n]
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestForgedAndForeignHandles: a tampered handle gets NFS3ERR_BADHANDLE,
// a handle of another export (fsid) or of a removed file NFS3ERR_STALE.
func TestForgedAndForeignHandles(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	dir := t.TempDir()
	write(t, dir, "a/f", "x")
	srv := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, a := c.Lookup(t, root, "a")
	_, f := c.Lookup(t, a, "f")

	tampered := append([]byte{}, f...)
	tampered[20] ^= 1
	otherFS := nfsfs.NewHandleCodec(key, 99).Encode(fileid.New())
	otherKey := nfsfs.NewHandleCodec(bytes.Repeat([]byte{2}, 32), 0).Encode(fileid.New())
	// A valid handle for a path that was never handed out and does not
	// exist: authentic, but stale.
	never := nfsfs.NewHandleCodec(key, 0).Encode(fileid.New())
	for name, tc := range map[string]struct {
		fh   []byte
		want uint32
	}{
		"valid":            {f, 0},
		"tampered":         {tampered, 10001},
		"truncated":        {f[:16], 10001},
		"random 44 bytes":  {bytes.Repeat([]byte{0xab}, 44), 10001},
		"another fsid":     {otherFS, 70},
		"another secret":   {otherKey, 10001},
		"nonexistent path": {never, 70},
	} {
		if got := c.Getattr(t, tc.fh); got != tc.want {
			t.Errorf("%s: GETATTR status %d, want %d", name, got, tc.want)
		}
	}
	// Every procedure checks, not only GETATTR.
	if rep, _ := c.Call(progNFS, 3, 6, X{}.Opaque(tampered).U64(0).U32(10)); rep.Words[0] != 10001 || len(rep.Words) != 2 {
		t.Errorf("READ with tampered handle: %v", rep.Words)
	}
	if rep, _ := c.Call(progNFS, 3, 14, X{}.Opaque(tampered).String("f").Opaque(a).String("g")); rep.Words[0] != 10001 || len(rep.Words) != 5 {
		t.Errorf("RENAME with tampered handle: %v", rep.Words)
	}
	os.Remove(filepath.Join(dir, "a", "f"))
	if got := c.Getattr(t, f); got != 70 {
		t.Errorf("removed file: GETATTR status %d, want STALE", got)
	}
}

// TestRestartKeepsHandles: handles taken before a restart (same export,
// same state) work after it, including after the index had to be rebuilt.
func TestRestartKeepsHandles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "top.txt", "top")
	write(t, dir, "d1/d2/deep.txt", "deep")
	key, err := nfsfs.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, top := c.Lookup(t, root, "top.txt")
	_, d1 := c.Lookup(t, root, "d1")
	_, d2 := c.Lookup(t, d1, "d2")
	_, deep := c.Lookup(t, d2, "deep.txt")
	srv.Stop()

	srv2 := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	c2 := nfstest.DialRaw(t, srv2.Addr, "")
	for name, fh := range map[string][]byte{"root": root, "top": top, "d1": d1, "d2": d2, "deep": deep} {
		if st := c2.Getattr(t, fh); st != 0 {
			t.Errorf("%s: GETATTR after restart: status %d", name, st)
		}
	}
	if st, data := read(t, c2, deep); st != 0 || string(data) != "deep" {
		t.Fatalf("READ after restart: %d %q", st, data)
	}
}

// TestNoEscape: "..", absolute symlinks, relative symlinks and symlink
// chains pointing outside the export never reach outside files; names
// that climb are refused; writes through symlinks land inside.
func TestNoEscape(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "export")
	outside := filepath.Join(base, "outside")
	write(t, outside, "secret", "SECRET")
	write(t, dir, "inside.txt", "inside")
	links := map[string]string{
		"abs":        filepath.Join(outside, "secret"),
		"rel":        "../outside/secret",
		"deeprel":    "../../../../../../../../" + filepath.Join(outside, "secret"),
		"chain1":     "chain2",
		"chain2":     "sub/chain3",
		"sub/chain3": "../../outside/secret",
		"absdir":     outside,
		"reldir":     "../outside",
		"wlink":      filepath.Join(outside, "new"),
	}
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	srv := nfstest.Start(t, nfstest.Options{Dir: dir})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, sub := c.Lookup(t, root, "sub")

	for name := range links {
		t.Run("read "+name, func(t *testing.T) {
			parent, base := root, name
			if filepath.Dir(name) == "sub" {
				parent, base = sub, filepath.Base(name)
			}
			st, fh := c.Lookup(t, parent, base)
			if st != 0 {
				t.Fatalf("LOOKUP %s: %d", name, st)
			}
			if st, data := read(t, c, fh); st == 0 && bytes.Contains(data, []byte("SECRET")) {
				t.Fatalf("READ through %s returned the outside file", name)
			}
			// READDIR through a directory symlink lists nothing outside.
			rep, _ := c.Call(progNFS, 3, 16, X{}.Opaque(fh).U64(0).U64(0).U32(4096))
			if bytes.Contains(rep.Body, []byte("secret")) {
				t.Fatalf("READDIR through %s listed the outside directory", name)
			}
		})
	}
	// ".." of the root is the root itself (knfsd), never above it.
	if st, up := c.Lookup(t, root, ".."); st != 0 || !bytes.Equal(up, root) {
		t.Errorf("LOOKUP .. from the root: %d, want the root", st)
	}
	// Names with a slash are not names: GARBAGE_ARGS, as knfsd.
	for _, name := range []string{"../outside", "../outside/secret", "sub/../../outside/secret"} {
		rep, err := c.Call(progNFS, 3, 3, X{}.Opaque(root).String(name))
		if err != nil || rep.AcceptStat != 4 {
			t.Errorf("LOOKUP %q from the root: %+v %v, want GARBAGE_ARGS", name, rep, err)
		}
	}
	// LOOKUP ".." from a subdirectory gives the export root, never above.
	if st, up := c.Lookup(t, sub, ".."); st != 0 || !bytes.Equal(up, root) {
		t.Errorf("LOOKUP .. from sub: %d", st)
	}
	// Writing through the absolute symlink creates a file inside the
	// export (the link target resolved under the export root), not outside.
	st, w := c.Lookup(t, root, "wlink")
	if st != 0 {
		t.Fatal("LOOKUP wlink")
	}
	c.Call(progNFS, 3, 7, X{}.Opaque(w).U64(0).U32(3, 2).Opaque([]byte("pwn")))
	c.Call(progNFS, 3, 8, X{}.Opaque(root).String("../escaped").U32(0).U32(0, 0, 0, 0, 0, 0))
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("the outside directory changed: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(base, "escaped")); err == nil {
		t.Fatal("CREATE ../escaped created a file outside the export")
	}
	// Removing a symlink removes the link, not its target.
	os.Symlink("inside.txt", filepath.Join(dir, "victim"))
	rep, _ := c.Call(progNFS, 3, 12, X{}.Opaque(root).String("victim"))
	if rep.Words[0] != 0 {
		t.Fatalf("REMOVE symlink: %v", rep.Words)
	}
	if _, err := os.Stat(filepath.Join(dir, "inside.txt")); err != nil {
		t.Fatal("REMOVE of a symlink removed its target")
	}
}

// Test100kFiles: 100,000 files, every handle obtained through READDIRPLUS
// stays valid (go-nfs's stock handler makes handles beyond its cache limit
// stale), also after renaming their directory and after a restart that
// needs an index rebuild.
func Test100kFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 files: not in -short")
	}
	dir := fastTempDir(t)
	const dirs, per = 100, 1000
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, dirs)
	for d := range dirs {
		wg.Go(func() {
			p := filepath.Join(dir, fmt.Sprintf("d%03d", d))
			os.Mkdir(p, 0o755)
			for f := range per {
				if err := os.WriteFile(filepath.Join(p, fmt.Sprintf("f%04d", f)), nil, 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d files in %v", dirs*per, time.Since(start).Round(time.Millisecond))
	key := bytes.Repeat([]byte{9}, 32)
	srv := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	v := nfstest.Mount(t, srv.Addr, "/")
	start = time.Now()
	var handles [][]byte
	for d := range dirs {
		entries, err := v.ReadDirPlus(fmt.Sprintf("d%03d", d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.FileName != "." && e.FileName != ".." {
				handles = append(handles, e.Handle.FH)
			}
		}
	}
	if len(handles) != dirs*per {
		t.Fatalf("READDIRPLUS returned %d handles, want %d", len(handles), dirs*per)
	}
	t.Logf("READDIRPLUS of %d directories: %v", dirs, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	c := nfstest.DialRaw(t, srv.Addr, "")
	for i, st := range c.GetattrAll(t, handles) {
		if st != 0 {
			t.Fatalf("handle %d of %d: GETATTR status %d", i, len(handles), st)
		}
	}
	t.Logf("GETATTR of %d handles: %v", len(handles), time.Since(start).Round(time.Millisecond))
	// Renaming a directory keeps the handles of everything in it.
	start = time.Now()
	if err := v.Rename("d050", "moved"); err != nil {
		t.Fatal(err)
	}
	t.Logf("RENAME of a directory of %d files among %d: %v", per, dirs*per, time.Since(start).Round(time.Microsecond))
	for i, st := range c.GetattrAll(t, handles[50*per:51*per]) {
		if st != 0 {
			t.Fatalf("handle %d in the renamed directory: GETATTR status %d", i, st)
		}
	}
	srv.Stop()
	srv2 := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	c2 := nfstest.DialRaw(t, srv2.Addr, "")
	for i := 0; i < len(handles); i += 97 {
		if st := c2.Getattr(t, handles[i]); st != 0 {
			t.Fatalf("after restart, handle %d: GETATTR status %d", i, st)
		}
	}
}

// fastTempDir is a temporary directory on tmpfs when there is one: the
// 100,000-file tree is about the NFS server, not the disk's journal.
func fastTempDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "nasd-100k"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// TestAsyncExportCommits: with `async`, WRITE does not fsync and COMMIT
// (sent by go-nfs-client on Close) makes the data durable; both succeed
// and the data is on disk.
func TestAsyncExportCommits(t *testing.T) {
	opts := nfsfs.DefaultOptions()
	opts.Sync = false
	srv := nfstest.Start(t, nfstest.Options{Export: &opts})
	v := nfstest.Mount(t, srv.Addr, "/")
	f, err := v.OpenFile("a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("async "), 50000)
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(srv.Dir, "a")); !bytes.Equal(got, want) {
		t.Fatal("data not on disk after COMMIT")
	}
	commits := 0.0
	families, _ := srv.Registry.Gather()
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if mf.GetName() == "nasd_rpc_requests_total" && labels["procedure"] == "COMMIT" && labels["status"] == "OK" {
				commits += m.GetCounter().GetValue()
			}
		}
	}
	if commits == 0 {
		t.Fatal("no successful COMMIT counted")
	}
}
