package nfsfs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

func link(t *testing.T, c *nfstest.Raw, fh, dir []byte, name string) uint32 {
	t.Helper()
	rep := call(t, c, 15, X{}.Opaque(fh).Opaque(dir).String(name))
	if len(rep.Words) != 4 {
		t.Fatalf("LINK reply %v: want status, post_op_attr, wcc_data", rep.Words)
	}
	return rep.Words[0]
}

// TestLink: NFSv3 LINK (refused with NOTSUPP before) makes a second name
// of the same file with the same handle; the handle stays valid while one
// name exists; errors as knfsd; nothing is linked outside the export or
// into a symlink.
func TestLink(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "export")
	write(t, dir, "f", "shared")
	write(t, dir, "taken", "")
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Symlink(base, filepath.Join(dir, "out"))
	srv := nfstest.Start(t, nfstest.Options{Dir: dir})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	f, d, out := lookup(t, c, root, "f"), lookup(t, c, root, "d"), lookup(t, c, root, "out")

	if st := link(t, c, f, d, "hard"); st != nfsOK {
		t.Fatalf("LINK f d/hard: %d", st)
	}
	if hard := lookup(t, c, d, "hard"); !bytes.Equal(hard, f) {
		t.Error("the new name has another handle")
	}
	fileIs(t, filepath.Join(dir, "d", "hard"), "shared")
	for _, tc := range []struct {
		name    string
		fh, dir []byte
		as      string
		want    uint32
	}{
		{"onto an existing name", f, root, "taken", 17},
		{"of a directory", d, root, "dlink", 1},
		{"into a symlink to outside the export", f, out, "escaped", 20},
		{"into a file", f, f, "x", 20},
	} {
		if st := link(t, c, tc.fh, tc.dir, tc.as); st != tc.want {
			t.Errorf("LINK %s: %d, want %d", tc.name, st, tc.want)
		}
	}
	if _, err := os.Lstat(filepath.Join(base, "escaped")); err == nil {
		t.Fatal("LINK created a name outside the export")
	}
	forged := append([]byte{}, d...)
	forged[30] ^= 1
	if st := link(t, c, f, forged, "x"); st != 10001 {
		t.Errorf("LINK into a forged directory handle: %d, want BADHANDLE", st)
	}

	// nlink > 1: removing one name keeps the handle.
	if st := remove(t, c, root, "f"); st != nfsOK {
		t.Fatal(st)
	}
	if st, data := read(t, c, f); st != nfsOK || string(data) != "shared" {
		t.Fatalf("READ after removing one of two names: %d %q", st, data)
	}
	if st := writeAt(t, c, f, 0, "S"); st != nfsOK {
		t.Fatalf("WRITE after removing one of two names: %d", st)
	}
	fileIs(t, filepath.Join(dir, "d", "hard"), "Shared")
	if st := remove(t, c, d, "hard"); st != nfsOK {
		t.Fatal(st)
	}
	if st := c.Getattr(t, f); st != nfsStale {
		t.Fatalf("GETATTR after removing the last name: %d, want STALE", st)
	}

	// A real client sees both names of a link.
	write(t, dir, "g", "gee")
	g := lookup(t, c, root, "g")
	if st := link(t, c, g, root, "g2"); st != nfsOK {
		t.Fatal(st)
	}
	out2 := nfstest.MustRun(t, 20*time.Second, "nfs-ls", nfstest.LibnfsURL(srv.Addr, "/"))
	if !strings.Contains(out2, " g\n") || !strings.Contains(out2, "g2") {
		t.Fatalf("nfs-ls after LINK:\n%s", out2)
	}
	if got := nfstest.MustRun(t, 20*time.Second, "nfs-cat", nfstest.LibnfsURL(srv.Addr, "/g2")); got != "gee" {
		t.Fatalf("nfs-cat g2: %q", got)
	}
	// go-nfs-client (it has no LINK) reads and writes through the new name.
	v := nfstest.Mount(t, srv.Addr, "/")
	w, err := v.OpenFile("g2", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("G")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	fileIs(t, filepath.Join(dir, "g"), "Gee")
}
