package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	nfsc "github.com/willscott/go-nfs-client/nfs"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// nobodyDirs makes an export and a state directory that uid 65534 owns,
// reachable by it, and lets it run the nasd binary.
func nobodyDirs(t *testing.T) (export, state string) {
	t.Helper()
	base, err := os.MkdirTemp("", "nasd-owner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	export, state = filepath.Join(base, "export"), filepath.Join(base, "state")
	for _, d := range []string{export, state} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatalf("chown (this test runs nasd as uid 65534 and needs root): %v", err)
		}
	}
	// A share every client may write in (credentials are checked).
	os.Chmod(export, 0o777)
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(nasdBin), 0o755)
	return export, state
}

// TestOwnerOverride: nasd running as an unprivileged uid (as in the pod)
// lets the owner write a file whatever its mode, as knfsd does: git, tar
// and cp create a file 0444 and write through the handle they got (git
// commit failed with "error when closing loose object file: Permission
// denied"). A 0444 file nasd does not own stays unwritable.
func TestOwnerOverride(t *testing.T) {
	nfstest.RequireTool(t, "setpriv")
	export, state := nobodyDirs(t)
	if err := os.WriteFile(filepath.Join(export, "roots"), []byte("root's"), 0o444); err != nil {
		t.Fatal(err)
	}
	p := startNasdVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, export, state, "--portmap-udp=false")
	v := nfstest.Mount(t, p.nfs, "/")

	f, err := v.OpenFile("object", 0o444) // CREATE with mode 0444, then WRITE
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("loose object")); err != nil {
		t.Fatalf("write to a 0444 file its owner created: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	fileIs(t, filepath.Join(export, "object"), "loose object")
	fi, err := os.Stat(filepath.Join(export, "object"))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode after the write: %v %v, want 0444", fi.Mode(), err)
	}
	// Truncating (SETATTR size) is a write too.
	_, fh, err := v.Lookup("object")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetAttr(fh, nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 5}}); err != nil {
		t.Fatalf("truncate a 0444 file its owner created: %v", err)
	}
	fileIs(t, filepath.Join(export, "object"), "loose")

	c := nfstest.DialRaw(t, p.nfs, "")
	st, roots := c.Lookup(t, c.Mnt(t, "/"), "roots")
	if st != 0 {
		t.Fatalf("LOOKUP roots: %d", st)
	}
	data := []byte("overwritten")
	rep, err := c.Call(100003, 3, 7, nfstest.XDR{}.Opaque(roots).U64(0).U32(uint32(len(data)), 2).Opaque(data))
	if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 13 {
		t.Fatalf("WRITE to a 0444 file nasd's uid does not own: %+v %v, want NFS3ERR_ACCES", rep.Words, err)
	}
	fileIs(t, filepath.Join(export, "roots"), "root's")
}

func fileIs(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Fatalf("%s: %q %v, want %q", filepath.Base(path), got, err, want)
	}
}

// TestCreatedFilesBelongToCaller: a file or directory created over NFS
// belongs to the caller's AUTH_UNIX uid/gid (root squashed to anonuid), as
// with knfsd: nasd, unprivileged, records the owner and reports it in the
// CREATE reply and every later attribute; SETATTR changes it. (With nasd's
// uid as owner, git refused the repository and cp -a could not chmod.)
func TestCreatedFilesBelongToCaller(t *testing.T) {
	nfstest.RequireTool(t, "setpriv")
	export, state := nobodyDirs(t)
	p := startNasdVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, export, state, "--portmap-udp=false")
	owner := func(v *nfsc.Target, path string) (uint32, uint32) {
		t.Helper()
		fi, _, err := v.Lookup(path)
		if err != nil {
			t.Fatal(err)
		}
		a := fi.(*nfsc.Fattr)
		return a.UID, a.GID
	}
	app := nfstest.MountAs(t, p.nfs, "/", 1000, 1001)
	if _, err := app.Mkdir("repo", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := app.OpenFile("repo/a.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("a"))
	f.Close()
	for _, name := range []string{"repo", "repo/a.txt"} {
		if u, g := owner(app, name); u != 1000 || g != 1001 {
			t.Errorf("%s owned by %d:%d, want 1000:1001", name, u, g)
		}
	}
	entries, err := app.ReadDirPlus("repo")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.FileName == "a.txt" && (e.Attr.Attr.UID != 1000 || e.Attr.Attr.GID != 1001) {
			t.Errorf("READDIRPLUS: a.txt owned by %d:%d", e.Attr.Attr.UID, e.Attr.Attr.GID)
		}
	}
	if fi, err := os.Lstat(filepath.Join(export, "repo", "a.txt")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("on disk: %v %v (nasd keeps owning it)", fi, err)
	}

	// The replies carry the owner (clients cache it): MKDIR's from go-nfs,
	// CREATE's from the front door (go-nfs sent no attributes there).
	c := nfstest.DialRaw(t, p.nfs, "")
	root := c.Mnt(t, "/")
	sattr := nfstest.XDR{}.U32(0, 0, 0, 0, 0, 0)
	for _, tc := range []struct {
		proc  uint32
		args  nfstest.XDR
		attrs bool
	}{
		{8, append(nfstest.XDR{}.Opaque(root).String("raw").U32(0), sattr...), true},
		{9, append(nfstest.XDR{}.Opaque(root).String("rawdir"), sattr...), true},
	} {
		rep, err := c.CallAs(1000, 1001, 100003, 3, tc.proc, tc.args)
		if err != nil || rep.Words[0] != 0 || rep.Words[1] != 1 {
			t.Fatalf("proc %d: %v %v", tc.proc, rep.Words, err)
		}
		attrs := 3 + int(rep.Words[2]+3)/4 // status, handle_follows, fh
		if got := rep.Words[attrs] == 1; got != tc.attrs {
			t.Fatalf("proc %d: object attributes follow: %v", tc.proc, got)
		}
		if tc.attrs && (rep.Words[attrs+4] != 1000 || rep.Words[attrs+5] != 1001) {
			t.Errorf("proc %d reply attributes: uid %d gid %d, want 1000 1001", tc.proc, rep.Words[attrs+4], rep.Words[attrs+5])
		}
	}
	if fi, err := os.Stat(filepath.Join(export, "rawdir")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("MKDIR without a mode: %v %v, want 0755 (go-nfs made 0341)", fi.Mode(), err)
	}
	for _, name := range []string{"raw", "rawdir"} {
		if u, g := owner(app, name); u != 1000 || g != 1001 {
			t.Errorf("%s owned by %d:%d, want 1000:1001", name, u, g)
		}
	}

	// root is squashed; SETATTR gives a file away.
	admin := nfstest.Mount(t, p.nfs, "/")
	g, err := admin.OpenFile("rootfile", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if u, _ := owner(admin, "rootfile"); u != 65534 {
		t.Errorf("a file root created is owned by %d, want 65534 (root_squash)", u)
	}
	// Only root gives a file away (knfsd: PERM); root is squashed here.
	_, fh, _ := app.Lookup("repo/a.txt")
	chown := caller{t, c, 1000, 1001, nil}.setattr(fh, nfstest.XDR{}.U32(0, 1, 2000, 0, 0, 0, 0))
	want(t, "chown by the owner to another uid", chown, permS)
	if u, g := owner(app, "repo/a.txt"); u != 1000 || g != 1001 {
		t.Errorf("after a refused chown: %d:%d, want 1000:1001", u, g)
	}
}

// TestModeDeniesNasd: a client making its file unreadable and unwritable
// (chmod 000) keeps a valid handle: nasd, the owner on disk, still reads
// the file's identity and owner.
func TestModeDeniesNasd(t *testing.T) {
	nfstest.RequireTool(t, "setpriv")
	export, state := nobodyDirs(t)
	p := startNasdVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, export, state, "--portmap-udp=false")
	app := nfstest.MountAs(t, p.nfs, "/", 1000, 1000)
	f, err := app.OpenFile("locked", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	_, fh, err := app.Lookup("locked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.SetAttr(fh, nfsc.Sattr3{Mode: nfsc.SetMode{SetIt: true, Mode: 0}}); err != nil {
		t.Fatal(err)
	}
	a, err := app.GetAttr(fh)
	if err != nil {
		t.Fatalf("GETATTR after chmod 000: %v", err)
	}
	if a.UID != 1000 || a.Mode().Perm() != 0 {
		t.Fatalf("after chmod 000: uid %d mode %v", a.UID, a.Mode())
	}
}

// TestCreateExistingKeepsOwner: an UNCHECKED CREATE of an existing file
// (which truncates it) does not give it to the caller.
func TestCreateExistingKeepsOwner(t *testing.T) {
	nfstest.RequireTool(t, "setpriv")
	export, state := nobodyDirs(t)
	p := startNasdVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, export, state, "--portmap-udp=false")
	c := nfstest.DialRaw(t, p.nfs, "")
	root := c.Mnt(t, "/")
	create := func(uid uint32) {
		rep, err := c.CallAs(uid, uid, 100003, 3, 8, nfstest.XDR{}.Opaque(root).String("f").U32(0).U32(0, 0, 0, 0, 0, 0))
		if err != nil || rep.Words[0] != 0 {
			t.Fatalf("CREATE as %d: %v %v", uid, rep.Words, err)
		}
	}
	create(1000)
	create(2000)
	v := nfstest.Mount(t, p.nfs, "/")
	fi, _, err := v.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	if u := fi.(*nfsc.Fattr).UID; u != 1000 {
		t.Fatalf("owner after a second CREATE by uid 2000: %d, want 1000", u)
	}
}
