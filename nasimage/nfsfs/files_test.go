package nfsfs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
)

// TestWriteStability: with `sync`, an UNSTABLE WRITE is answered UNSTABLE
// without an fsync, COMMIT syncs, DATA_SYNC and FILE_SYNC WRITEs sync
// before their reply and are answered as asked. With `async` nothing is
// synced (knfsd's async) and every WRITE is answered as asked.
func TestWriteStability(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			opts := nfsfs.DefaultOptions()
			opts.Sync = sync
			srv := nfstest.Start(t, nfstest.Options{Export: &opts})
			os.WriteFile(filepath.Join(srv.Dir, "f"), nil, 0o644)
			c := nfstest.DialRaw(t, srv.Addr, "")
			_, fh := c.Lookup(t, c.Mnt(t, "/"), "f")
			syncs := func() int64 { return srv.Handler.Syncs() }
			want := func(n int64) int64 {
				if sync {
					return n
				}
				return 0
			}
			for how, name := range []string{"UNSTABLE", "DATA_SYNC", "FILE_SYNC"} {
				before := syncs()
				st, committed, _ := c.Write(t, fh, uint64(10*how), []byte(name), uint32(how))
				if st != 0 || committed != uint32(how) {
					t.Fatalf("%s WRITE: status %d, committed %d", name, st, committed)
				}
				if got := syncs() - before; got != want(min(int64(how), 1)) {
					t.Errorf("%s WRITE made %d fsyncs", name, got)
				}
			}
			before := syncs()
			if st, _ := c.Commit(t, fh); st != 0 {
				t.Fatalf("COMMIT: %d", st)
			}
			if got := syncs() - before; got != want(1) {
				t.Errorf("COMMIT made %d fsyncs", got)
			}
			if b, _ := os.ReadFile(filepath.Join(srv.Dir, "f")); !bytes.Contains(b, []byte("FILE_SYNC")) {
				t.Fatalf("file: %q", b)
			}
		})
	}
}

// TestOpenFileCache: the data path's cached descriptors never serve a
// file that is gone: removed over NFS, removed or replaced behind nasd's
// back, the handle is STALE; a file renamed keeps its handle; the cache
// stays bounded.
func TestOpenFileCache(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	for _, n := range []string{"nfsgone", "gone", "replaced", "renamed"} {
		os.WriteFile(filepath.Join(srv.Dir, n), []byte("data of "+n), 0o644)
	}
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	fhs := map[string][]byte{}
	for _, n := range []string{"nfsgone", "gone", "replaced", "renamed"} {
		_, fhs[n] = c.Lookup(t, root, n)
		if st, got, _ := c.Read3(t, fhs[n], 0, 100); st != 0 || string(got) != "data of "+n {
			t.Fatalf("READ %s: %d %q", n, st, got)
		}
	}
	if srv.Handler.OpenFiles() != 4 {
		t.Fatalf("%d files open after reading 4", srv.Handler.OpenFiles())
	}
	rep, err := c.Call(100003, 3, 12, nfstest.XDR{}.Opaque(root).String("nfsgone")) // REMOVE
	if err != nil || rep.Words[0] != 0 {
		t.Fatalf("REMOVE: %+v %v", rep, err)
	}
	os.Remove(filepath.Join(srv.Dir, "gone"))
	tmp := filepath.Join(srv.Dir, ".tmp")
	os.WriteFile(tmp, []byte("another file"), 0o644)
	os.Rename(tmp, filepath.Join(srv.Dir, "replaced"))
	os.Rename(filepath.Join(srv.Dir, "renamed"), filepath.Join(srv.Dir, "moved"))
	for _, n := range []string{"nfsgone", "gone", "replaced"} {
		if st, got, _ := c.Read3(t, fhs[n], 0, 100); st != 70 {
			t.Errorf("READ of %s: status %d %q, want STALE", n, st, got)
		}
		if st := c.Getattr(t, fhs[n]); st != 70 {
			t.Errorf("GETATTR of %s: status %d, want STALE", n, st)
		}
	}
	if st, got, _ := c.Read3(t, fhs["renamed"], 0, 100); st != 0 || string(got) != "data of renamed" {
		t.Errorf("READ after rename: %d %q", st, got)
	}
	for i := range 200 {
		n := fmt.Sprintf("many%d", i)
		os.WriteFile(filepath.Join(srv.Dir, n), []byte(n), 0o644)
		_, fh := c.Lookup(t, root, n)
		if st, got, _ := c.Read3(t, fh, 0, 100); st != 0 || string(got) != n {
			t.Fatalf("READ %s: %d %q", n, st, got)
		}
	}
	if n := srv.Handler.OpenFiles(); n > 128 {
		t.Fatalf("%d files open", n)
	}
}

// TestDataPathAttributes: GETATTR, READ and WRITE (the front door's data
// path) answer the same attributes as go-nfs's LOOKUP for the same file,
// before and after it is cached.
func TestDataPathAttributes(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	os.WriteFile(filepath.Join(srv.Dir, "f"), []byte("0123456789"), 0o640)
	os.Mkdir(filepath.Join(srv.Dir, "d"), 0o750)
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	lookupAttr := func(name string) ([]byte, []byte) {
		rep, err := c.Call(100003, 3, 3, nfstest.XDR{}.Opaque(root).String(name))
		if err != nil || rep.Words[0] != 0 {
			t.Fatalf("LOOKUP %s: %+v %v", name, rep, err)
		}
		n := int(rep.Words[1])
		o := 8 + (n+3)&^3
		if rep.Body[o+3] != 1 {
			t.Fatalf("LOOKUP %s: no attributes", name)
		}
		return rep.Body[8 : 8+n], rep.Body[o+4 : o+4+84]
	}
	getattr := func(fh []byte) []byte {
		rep, err := c.Call(100003, 3, 1, nfstest.XDR{}.Opaque(fh))
		if err != nil || rep.Words[0] != 0 {
			t.Fatalf("GETATTR: %+v %v", rep, err)
		}
		return rep.Body[4 : 4+84]
	}
	for _, name := range []string{"f", "d"} {
		fh, want := lookupAttr(name)
		if got := getattr(fh); !bytes.Equal(got, want) {
			t.Errorf("%s: GETATTR %x\nLOOKUP %x", name, got, want)
		}
	}
	fh, _ := lookupAttr("f")
	c.Read3(t, fh, 0, 4) // now cached
	_, want := lookupAttr("f")
	if got := getattr(fh); !bytes.Equal(got, want) {
		t.Errorf("cached: GETATTR %x\nLOOKUP %x", got, want)
	}
}
