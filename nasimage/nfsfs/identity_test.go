package nfsfs_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/sync/apply"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

const (
	nfsOK    = 0
	nfsStale = 70
)

func call(t *testing.T, c *nfstest.Raw, proc uint32, args []byte) nfstest.Reply {
	t.Helper()
	rep, err := c.Call(progNFS, 3, proc, args)
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
		t.Fatalf("NFS proc %d: %+v %v", proc, rep, err)
	}
	return rep
}

func rename(t *testing.T, c *nfstest.Raw, fromDir []byte, from string, toDir []byte, to string) uint32 {
	t.Helper()
	return call(t, c, 14, X{}.Opaque(fromDir).String(from).Opaque(toDir).String(to)).Words[0]
}

func remove(t *testing.T, c *nfstest.Raw, dir []byte, name string) uint32 {
	t.Helper()
	return call(t, c, 12, X{}.Opaque(dir).String(name)).Words[0]
}

// create does an UNCHECKED CREATE with no attributes and returns the handle.
func create(t *testing.T, c *nfstest.Raw, dir []byte, name string) []byte {
	t.Helper()
	rep := call(t, c, 8, X{}.Opaque(dir).String(name).U32(0).U32(0, 0, 0, 0, 0, 0))
	if rep.Words[0] != 0 || rep.Words[1] != 1 {
		t.Fatalf("CREATE %s: %v", name, rep.Words[:2])
	}
	n := rep.Words[2]
	return append([]byte(nil), rep.Body[12:12+n]...)
}

// writeAt does a FILE_SYNC WRITE and returns the status.
func writeAt(t *testing.T, c *nfstest.Raw, fh []byte, off uint64, data string) uint32 {
	t.Helper()
	return call(t, c, 7, X{}.Opaque(fh).U64(off).U32(uint32(len(data)), 2).Opaque([]byte(data))).Words[0]
}

func lookup(t *testing.T, c *nfstest.Raw, dir []byte, name string) []byte {
	t.Helper()
	st, fh := c.Lookup(t, dir, name)
	if st != 0 {
		t.Fatalf("LOOKUP %s: status %d", name, st)
	}
	return fh
}

func fileIs(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("%s: %q %v, want %q", filepath.Base(path), got, err, want)
	}
}

// TestHandleFollowsRename: renaming a file, or a directory above it, keeps
// the handles valid (they named the path and went STALE).
func TestHandleFollowsRename(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "d/sub/f", "data")
	write(t, dir, "g", "g")
	srv := nfstest.Start(t, nfstest.Options{Dir: dir})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	d := lookup(t, c, root, "d")
	sub := lookup(t, c, d, "sub")
	f := lookup(t, c, sub, "f")
	g := lookup(t, c, root, "g")

	if st := rename(t, c, root, "g", sub, "g2"); st != nfsOK {
		t.Fatalf("RENAME g: %d", st)
	}
	if st := rename(t, c, root, "d", root, "e"); st != nfsOK {
		t.Fatalf("RENAME d: %d", st)
	}
	for name, fh := range map[string][]byte{"d": d, "sub": sub, "f": f, "g": g} {
		if st := c.Getattr(t, fh); st != nfsOK {
			t.Errorf("%s after the renames: GETATTR %d", name, st)
		}
	}
	if st, data := read(t, c, f); st != nfsOK || string(data) != "data" {
		t.Fatalf("READ e/sub/f through its old handle: %d %q", st, data)
	}
	if st := writeAt(t, c, g, 0, "G"); st != nfsOK {
		t.Fatalf("WRITE through g's handle after the rename: %d", st)
	}
	fileIs(t, filepath.Join(dir, "e", "sub", "g2"), "G")
}

// TestReplacedFileIsStale: a handle never reaches another file. Deleted
// and recreated (over NFS or behind nasd's back), or replaced by a rename
// over its name: STALE, and a WRITE through it changes nothing.
func TestReplacedFileIsStale(t *testing.T) {
	dir := t.TempDir()
	srv := nfstest.Start(t, nfstest.Options{Dir: dir})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")

	old := create(t, c, root, "f")
	if st := remove(t, c, root, "f"); st != nfsOK {
		t.Fatal(st)
	}
	recreated := create(t, c, root, "f")
	if bytes.Equal(old, recreated) {
		t.Fatal("a recreated file got the handle of the removed one")
	}
	if st := writeAt(t, c, old, 0, "wrong"); st != nfsStale {
		t.Fatalf("WRITE through the removed file's handle: %d, want STALE", st)
	}
	fileIs(t, filepath.Join(dir, "f"), "")

	// Behind nasd's back (the sync engine removing and copying a new version).
	write(t, dir, "w", "v1")
	w := lookup(t, c, root, "w")
	os.Remove(filepath.Join(dir, "w"))
	write(t, dir, "w", "version 2")
	if st := c.Getattr(t, w); st != nfsStale {
		t.Fatalf("GETATTR of a file replaced behind nasd's back: %d, want STALE", st)
	}

	// Editor pattern: mv a b; mv c a.
	write(t, dir, "a", "A")
	write(t, dir, "b", "B")
	write(t, dir, "c", "C")
	a, b, cc := lookup(t, c, root, "a"), lookup(t, c, root, "b"), lookup(t, c, root, "c")
	if rename(t, c, root, "a", root, "b") != nfsOK || rename(t, c, root, "c", root, "a") != nfsOK {
		t.Fatal("renames failed")
	}
	if st := c.Getattr(t, b); st != nfsStale {
		t.Errorf("handle of b, replaced by a rename over it: %d, want STALE", st)
	}
	if st := writeAt(t, c, a, 1, "+"); st != nfsOK {
		t.Errorf("WRITE through a's handle (now named b): %d", st)
	}
	if st := writeAt(t, c, cc, 1, "!"); st != nfsOK {
		t.Errorf("WRITE through c's handle (now named a): %d", st)
	}
	fileIs(t, filepath.Join(dir, "b"), "A+")
	fileIs(t, filepath.Join(dir, "a"), "C!")
	if now := lookup(t, c, root, "a"); !bytes.Equal(now, cc) {
		t.Error("LOOKUP a does not give c's handle")
	}
}

// TestLogRotation: mv app.log app.log.1 while the application keeps
// writing through its handle: the writes land in app.log.1, never in the
// new app.log.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	srv := nfstest.Start(t, nfstest.Options{Dir: dir})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	log := create(t, c, root, "app.log")
	writeAt(t, c, log, 0, "line1\n")
	if st := rename(t, c, root, "app.log", root, "app.log.1"); st != nfsOK {
		t.Fatal(st)
	}
	fresh := create(t, c, root, "app.log")
	if st := writeAt(t, c, log, 6, "line2\n"); st != nfsOK {
		t.Fatalf("WRITE after rotation: %d", st)
	}
	writeAt(t, c, fresh, 0, "new\n")
	fileIs(t, filepath.Join(dir, "app.log.1"), "line1\nline2\n")
	fileIs(t, filepath.Join(dir, "app.log"), "new\n")
}

// TestWriteRenameClose: go-nfs-client writes, the file is renamed, the
// client writes and closes through its open file: nothing is lost.
func TestWriteRenameClose(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	v := nfstest.Mount(t, srv.Addr, "/")
	f, err := v.OpenFile("draft", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("first half, ")); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename("draft", "final"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("second half")); err != nil {
		t.Fatalf("write after rename: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after rename: %v", err)
	}
	fileIs(t, filepath.Join(srv.Dir, "final"), "first half, second half")
	// And an uncached read through a handle taken before the rename.
	r, err := v.Open("final")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || string(b) != "first half, second half" {
		t.Fatalf("read: %q %v", b, err)
	}
}

// TestHandlesSurviveRestartAndPodReplacement: handles of files created
// over NFS survive a restart (the identity is kept with the file); handles
// of an unchanged tree survive a new, empty export re-filled by a copy (a
// new pod, the sync engine copying Windows again) with the same key; a
// file that changed meanwhile is STALE there.
func TestHandlesSurviveRestartAndPodReplacement(t *testing.T) {
	key := bytes.Repeat([]byte{5}, 32)
	windows := t.TempDir()
	write(t, windows, "in/a.csv", "a")
	write(t, windows, "in/b.csv", "b")
	mt := time.Unix(1700000000, 123456789)
	for _, p := range []string{"in/a.csv", "in/b.csv"} {
		os.Chtimes(filepath.Join(windows, p), mt, mt)
	}
	copyTree := func() string {
		dst := t.TempDir()
		filepath.Walk(windows, func(p string, fi os.FileInfo, err error) error {
			rel, _ := filepath.Rel(windows, p)
			if fi.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			data, _ := os.ReadFile(p)
			os.WriteFile(filepath.Join(dst, rel), data, 0o644)
			return os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
		})
		return dst
	}

	pod1 := copyTree()
	srv := nfstest.Start(t, nfstest.Options{Dir: pod1, Key: key})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	in := lookup(t, c, root, "in")
	a, b := lookup(t, c, in, "a.csv"), lookup(t, c, in, "b.csv")
	made := create(t, c, in, "out.txt")
	writeAt(t, c, made, 0, "made over NFS")
	srv.Stop()

	srv = nfstest.Start(t, nfstest.Options{Dir: pod1, Key: key})
	c = nfstest.DialRaw(t, srv.Addr, "")
	for name, fh := range map[string][]byte{"in": in, "a": a, "b": b, "created over NFS": made} {
		if st := c.Getattr(t, fh); st != nfsOK {
			t.Errorf("%s after a restart: GETATTR %d", name, st)
		}
	}
	srv.Stop()

	// A new pod: empty export, the tree copied again; b changed on Windows.
	write(t, windows, "in/b.csv", "b, edited")
	pod2 := copyTree()
	srv = nfstest.Start(t, nfstest.Options{Dir: pod2, Key: key})
	c = nfstest.DialRaw(t, srv.Addr, "")
	if got := c.Mnt(t, "/"); !bytes.Equal(got, root) {
		t.Error("root handle differs in the new export")
	}
	if st := c.Getattr(t, in); st != nfsOK {
		t.Errorf("directory handle in the new export: %d", st)
	}
	if st, data := read(t, c, a); st != nfsOK || string(data) != "a" {
		t.Errorf("unchanged file in the new export: READ %d %q", st, data)
	}
	if st := c.Getattr(t, b); st != nfsStale {
		t.Errorf("changed file in the new export: GETATTR %d, want STALE", st)
	}
}

// TestSyncUpdateKeepsHandle: the sync engine's applier replacing a file
// with a new Windows version (temp file + rename) carries the identity
// over: the client's handle reads the new content. A plain temp+rename
// (what the applier did before) makes it STALE.
func TestSyncUpdateKeepsHandle(t *testing.T) {
	windows, export := t.TempDir(), t.TempDir()
	write(t, windows, "r.txt", "v1")
	write(t, export, "r.txt", "v1")
	write(t, export, "plain.txt", "v1")
	srv := nfstest.Start(t, nfstest.Options{Dir: export})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	r, plain := lookup(t, c, root, "r.txt"), lookup(t, c, root, "plain.txt")

	write(t, windows, "r.txt", "version 2")
	src, _ := scan.Stat(windows, "r.txt")
	dst, _ := scan.Stat(export, "r.txt")
	ap := &apply.Applier{Windows: windows, NFS: export}
	if _, err := ap.Apply(context.Background(), reconcile.Action{Op: reconcile.Copy, Path: "r.txt", To: reconcile.NFS, Source: src, Dest: dst}); err != nil {
		t.Fatal(err)
	}
	if st, data := read(t, c, r); st != nfsOK || string(data) != "version 2" {
		t.Fatalf("READ through the handle after the sync replaced the file: %d %q", st, data)
	}
	tmp := filepath.Join(export, ".tmp-plain")
	os.WriteFile(tmp, []byte("v2"), 0o644)
	os.Rename(tmp, filepath.Join(export, "plain.txt"))
	if st := c.Getattr(t, plain); st != nfsStale {
		t.Fatalf("replaced without carrying the identity: GETATTR %d, want STALE", st)
	}
	// Carry on a file never looked up gives it the identity it would have
	// had: the one derived from the version it replaces.
	write(t, export, "unseen", "old")
	fi, _ := os.Lstat(filepath.Join(export, "unseen"))
	want := fileid.Derived("unseen", fi, "")
	write(t, export, ".tmp-unseen", "new")
	if err := fileid.Carry(export, "unseen", filepath.Join(export, ".tmp-unseen")); err != nil {
		t.Fatal(err)
	}
	if got, _ := fileid.Get(export, ".tmp-unseen"); got != want {
		t.Fatal("Carry of a file without an identity did not carry its derived one")
	}
}

// TestLearnedFileResolvesAtOnce: a file put in the export behind the NFS
// server's back (the sync engine copying a new pod's files in, with the
// identities it kept) resolves through its handle as soon as the server
// is told of it (Handler.Learn), although misses may not walk the export
// again so soon after the last walk.
func TestLearnedFileResolvesAtOnce(t *testing.T) {
	dir, key := t.TempDir(), bytes.Repeat([]byte{7}, 32)
	srv := nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	c := nfstest.DialRaw(t, srv.Addr, "")
	f := create(t, c, c.Mnt(t, "/"), "f")
	srv.Stop()

	// A new server (nothing cached): the index is walked, then f moves.
	srv = nfstest.Start(t, nfstest.Options{Dir: dir, Key: key})
	c = nfstest.DialRaw(t, srv.Addr, "")
	srv.Handler.Reindex()
	os.Mkdir(filepath.Join(dir, "elsewhere"), 0o755)
	if err := os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "elsewhere", "f")); err != nil {
		t.Fatal(err)
	}
	if st := c.Getattr(t, f); st != nfsStale {
		t.Fatalf("f, moved right after a walk: GETATTR %d, want STALE (walks are spaced)", st)
	}
	srv.Handler.Learn("elsewhere/f")
	if st := c.Getattr(t, f); st != nfsOK {
		t.Errorf("f once learned: GETATTR %d, want OK", st)
	}
}
