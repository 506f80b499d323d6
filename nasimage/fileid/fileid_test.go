package fileid

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestIdentities: an ID is kept with the file (it follows a rename), a
// file without one gets a derived ID that depends on its path and
// version, and Carry hands an ID to a replacement.
func TestIdentities(t *testing.T) {
	root := t.TempDir()
	if !Supported(root) {
		t.Fatalf("%s has no user xattrs", root)
	}
	mt := time.Unix(1700000000, 5)
	put := func(rel, data string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
		os.Chtimes(p, mt, mt)
	}
	put("d/a", "v1")
	a, err := Get(root, "d/a")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Lstat(filepath.Join(root, "d/a"))
	if a != Derived("d/a", fi, "") {
		t.Fatal("a file without an ID does not get the derived one")
	}
	d, _ := Get(root, "d")
	os.Rename(filepath.Join(root, "d"), filepath.Join(root, "e"))
	if got, _ := Get(root, "e/a"); got != a {
		t.Fatal("the ID did not follow a rename of the directory above")
	}
	if got, _ := Get(root, "e"); got != d {
		t.Fatal("the directory's ID did not follow its rename")
	}
	// Same path, another version: another ID.
	put("b", "v1")
	b1, _ := Get(root, "b")
	os.Remove(filepath.Join(root, "b"))
	put("b", "version 2")
	if b2, _ := Get(root, "b"); b2 == b1 {
		t.Fatal("a file recreated with other content got the old ID")
	}
	// Same path and version in another, new export (a new pod re-filled by
	// the sync engine): same ID.
	other := t.TempDir()
	os.MkdirAll(filepath.Join(other, "d"), 0o755)
	os.WriteFile(filepath.Join(other, "d/a"), []byte("v1"), 0o644)
	os.Chtimes(filepath.Join(other, "d/a"), mt, mt)
	if got := mustGet(t, other, "d/a"); got != a {
		t.Fatal("the same version at the same path in a new export got another ID")
	}
	if got := mustGet(t, other, "d"); got != d {
		t.Fatal("the same directory in a new export got another ID")
	}
	put("c", "new")
	if err := Carry(root, "b", filepath.Join(root, "c")); err != nil {
		t.Fatal(err)
	}
	if mustGet(t, root, "c") != mustGet(t, root, "b") {
		t.Fatal("Carry did not hand the ID over")
	}
	if err := Carry(root, "missing", filepath.Join(root, "c")); err != nil {
		t.Fatalf("Carry from a missing file: %v", err)
	}
	if mustGet(t, root, "") != Root {
		t.Fatal("root ID")
	}
	os.Symlink("target", filepath.Join(root, "l"))
	l1 := mustGet(t, root, "l")
	os.Rename(filepath.Join(root, "l"), filepath.Join(root, "l2"))
	if mustGet(t, root, "l2") == l1 {
		t.Fatal("symlink IDs are derived from their path (documented): a renamed one changes")
	}
}

func mustGet(t *testing.T, root, rel string) ID {
	t.Helper()
	id, err := Get(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestNumberAndDerivedParts: the fileid attribute is the identity's first
// 8 bytes, never 0; DerivedFile and DerivedDir are what Derived gives.
func TestNumberAndDerivedParts(t *testing.T) {
	if n := (ID{}).Number(); n != 1 {
		t.Errorf("zero ID: Number %d, want 1", n)
	}
	if n := (ID{0, 0, 0, 0, 0, 0, 1, 2, 9}).Number(); n != 0x0102 {
		t.Errorf("Number %#x", n)
	}
	root := t.TempDir()
	p := filepath.Join(root, "f")
	os.WriteFile(p, []byte("abc"), 0o644)
	mt := time.Unix(1700000000, 42)
	os.Chtimes(p, mt, mt)
	fi, _ := os.Lstat(p)
	if Derived("f", fi, "") != DerivedFile("f", 3, mt.UnixNano()) {
		t.Error("DerivedFile differs from Derived")
	}
	di, _ := os.Lstat(root)
	if Derived("d", di, "") != DerivedDir("d") || DerivedDir("") != Root {
		t.Error("DerivedDir differs from Derived")
	}
	id := New()
	if err := Set(p, id); err != nil {
		t.Fatal(err)
	}
	if got, err := Peek(root, "f"); err != nil || got != id {
		t.Errorf("after Set: %x %v", got, err)
	}
}

// TestCarryKeepsTheOwner: a new version (the sync engine's temp file, made
// read-only as its Windows source) keeps the owner a client gave the file.
func TestCarryKeepsTheOwner(t *testing.T) {
	root := t.TempDir()
	if !Supported(root) {
		t.Skip("no user xattrs on", root)
	}
	old := filepath.Join(root, "f")
	if err := os.WriteFile(old, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	owner := []byte{0, 0, 3, 232, 0, 0, 3, 233} // 1000:1001
	if err := unix.Lsetxattr(old, OwnerAttr, owner, 0); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, ".tmp")
	if err := os.WriteFile(tmp, []byte("v2"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := Carry(root, "f", tmp); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	if n, err := unix.Lgetxattr(tmp, OwnerAttr, got); err != nil || n != 8 || string(got) != string(owner) {
		t.Fatalf("owner on the new version: %v %v %v", got, n, err)
	}
	if fi, _ := os.Stat(tmp); fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v, want 0444 kept", fi.Mode())
	}
}
