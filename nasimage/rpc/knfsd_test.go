package rpc_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
)

// The answers below are knfsd's (fs/nfsd): go-nfs answered otherwise.

// TestCommitOnReadOnlyExport: COMMIT on a read-only export is ROFS
// (knfsd opens the file for writing); go-nfs answered SERVERFAULT.
func TestCommitOnReadOnlyExport(t *testing.T) {
	opts := nfsfs.DefaultOptions()
	opts.ReadOnly = true
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	srv := nfstest.Start(t, nfstest.Options{Dir: dir, Export: &opts})
	c := nfstest.DialRaw(t, srv.Addr, "")
	_, f := c.Lookup(t, c.Mnt(t, "/"), "f")
	rep, err := c.Call(progNFS, 3, 21, X{}.Opaque(f).U64(0).U32(0))
	if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 30 || len(rep.Words) != 3 {
		t.Fatalf("COMMIT on a read-only export: %+v %v, want NFS3ERR_ROFS with empty wcc_data", rep.Words, err)
	}
}

// TestWrongFileType: READ or WRITE of a directory is ISDIR (go-nfs: IO),
// READ of a symlink INVAL, READLINK of a file INVAL; a directory operation
// through a handle that is not a directory is NOTDIR, a symlink to a
// directory included (CREATE through one created the file in the export
// root), as is RENAME into one.
func TestWrongFileType(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	os.Symlink("/", filepath.Join(dir, "toroot"))
	os.Symlink("d", filepath.Join(dir, "tod"))
	srv := nfstest.Start(t, nfstest.Options{Dir: dir})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, d := c.Lookup(t, root, "d")
	_, f := c.Lookup(t, root, "f")
	_, toroot := c.Lookup(t, root, "toroot")
	_, tod := c.Lookup(t, root, "tod")
	sattr := X{}.U32(0, 0, 0, 0, 0, 0)
	for _, tc := range []struct {
		name  string
		proc  uint32
		args  X
		want  uint32
		words int // failure body after the status
	}{
		{"READ of a directory", 6, X{}.Opaque(d).U64(0).U32(10), 21, 1},
		{"WRITE to a directory", 7, X{}.Opaque(d).U64(0).U32(1, 2).Opaque([]byte("x")), 21, 2},
		{"READ of a symlink", 6, X{}.Opaque(tod).U64(0).U32(10), 22, 1},
		{"READLINK of a file", 5, X{}.Opaque(f), 22, 1},
		{"CREATE in a symlink to the root", 8, append(X{}.Opaque(toroot).String("new").U32(0), sattr...), 20, 2},
		{"CREATE in a symlink to a directory", 8, append(X{}.Opaque(tod).String("new").U32(0), sattr...), 20, 2},
		{"MKDIR in a file", 9, append(X{}.Opaque(f).String("new"), sattr...), 20, 2},
		{"LOOKUP in a file", 3, X{}.Opaque(f).String("x"), 20, 1},
		{"REMOVE in a symlink", 12, X{}.Opaque(tod).String("x"), 20, 2},
		{"READDIR of a file", 16, X{}.Opaque(f).U64(0).U64(0).U32(4096), 20, 1},
		{"RENAME into a symlink", 14, X{}.Opaque(root).String("f").Opaque(tod).String("f"), 20, 4},
	} {
		rep, err := c.Call(progNFS, 3, tc.proc, tc.args)
		if err != nil || rep.AcceptStat != 0 || rep.Words[0] != tc.want || len(rep.Words) != 1+tc.words {
			t.Errorf("%s: %v %v, want status %d and %d words", tc.name, rep.Words, err, tc.want, tc.words)
		}
	}
	for _, p := range []string{"new", "d/new", "d/f"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was created", p)
		}
	}
	if st, data := readAll(t, c, f); st != 0 || string(data) != "x" {
		t.Errorf("READ of a file: %d %q", st, data)
	}
}

// readAll does a READ and returns the status and data.
func readAll(t *testing.T, c *nfstest.Raw, fh []byte) (uint32, []byte) {
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
	n := int(rep.Words[off/4+2])
	return 0, rep.Body[off+12 : off+12+n]
}

// TestLookupDotDotAtRoot: ".." of the export root is the root (go-nfs:
// ACCES); of a directory, its parent.
func TestLookupDotDotAtRoot(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	os.Mkdir(filepath.Join(srv.Dir, "d"), 0o755)
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	if st, fh := c.Lookup(t, root, ".."); st != 0 || !bytes.Equal(fh, root) {
		t.Fatalf("LOOKUP .. at the root: %d %x, want the root %x", st, fh, root)
	}
	_, d := c.Lookup(t, root, "d")
	if st, fh := c.Lookup(t, d, ".."); st != 0 || !bytes.Equal(fh, root) {
		t.Fatalf("LOOKUP .. in d: %d", st)
	}
}

// TestNames: names are decoded as knfsd does: empty, with a NUL or a
// slash: GARBAGE_ARGS; "." and ".." as a name to create EXIST, to remove
// ACCES, to rename or link PERM.
func TestNames(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	os.WriteFile(filepath.Join(srv.Dir, "f"), nil, 0o644)
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, f := c.Lookup(t, root, "f")
	sattr := X{}.U32(0, 0, 0, 0, 0, 0)
	for _, name := range []string{"", "a/b", "a\x00b"} {
		for proc, args := range map[uint32]X{
			3:  X{}.Opaque(root).String(name),
			8:  append(X{}.Opaque(root).String(name).U32(0), sattr...),
			12: X{}.Opaque(root).String(name),
			15: X{}.Opaque(f).Opaque(root).String(name),
		} {
			if rep, err := c.Call(progNFS, 3, proc, args); err != nil || rep.AcceptStat != 4 {
				t.Errorf("proc %d with name %q: %+v %v, want GARBAGE_ARGS", proc, name, rep, err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		proc uint32
		args X
		want uint32
	}{
		{"CREATE .", 8, append(X{}.Opaque(root).String(".").U32(0), sattr...), 17},
		{"MKDIR ..", 9, append(X{}.Opaque(root).String(".."), sattr...), 17},
		{"REMOVE .", 12, X{}.Opaque(root).String("."), 13},
		{"RMDIR ..", 13, X{}.Opaque(root).String(".."), 13},
		{"RENAME to ..", 14, X{}.Opaque(root).String("f").Opaque(root).String(".."), 1},
		{"LINK as .", 15, X{}.Opaque(f).Opaque(root).String("."), 1},
	} {
		rep, err := c.Call(progNFS, 3, tc.proc, tc.args)
		if err != nil || rep.AcceptStat != 0 || rep.Words[0] != tc.want {
			t.Errorf("%s: %v %v, want %d", tc.name, rep.Words, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(srv.Dir); len(entries) != 1 {
		t.Fatalf("export changed: %v", entries)
	}
}
