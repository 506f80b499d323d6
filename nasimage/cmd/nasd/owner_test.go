package main

import (
	"os"
	"path/filepath"
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
