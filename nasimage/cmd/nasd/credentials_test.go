package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// Credential tests: nasd, unprivileged as in the pod, checks each call's
// AUTH_UNIX uid, gid and groups (after squashing) against the owner, group
// and mode clients see, as knfsd does. Statuses: 0 OK, 1 PERM, 13 ACCES.

// caller is one AUTH_UNIX identity on a raw connection.
type caller struct {
	t      *testing.T
	c      *nfstest.Raw
	uid    uint32
	gid    uint32
	groups []uint32
}

func (a caller) call(proc uint32, args nfstest.XDR) nfstest.Reply {
	a.t.Helper()
	rep, err := a.c.CallGroups(a.uid, a.gid, a.groups, 100003, 3, proc, args)
	if err != nil || rep.AcceptStat != 0 {
		a.t.Fatalf("proc %d as %d: %+v %v", proc, a.uid, rep, err)
	}
	return rep
}

// sattr3 setting only the mode.
func modeAttr(mode uint32) nfstest.XDR { return nfstest.XDR{}.U32(1, mode, 0, 0, 0, 0, 0) }

// create makes name in dir with mode (UNCHECKED) and returns status, handle.
func (a caller) create(dir []byte, name string, mode uint32) (uint32, []byte) {
	a.t.Helper()
	rep := a.call(8, append(nfstest.XDR{}.Opaque(dir).String(name).U32(0), modeAttr(mode)...))
	return rep.Words[0], handleOf(rep)
}

func (a caller) mkdir(dir []byte, name string, mode uint32) (uint32, []byte) {
	a.t.Helper()
	rep := a.call(9, append(nfstest.XDR{}.Opaque(dir).String(name), modeAttr(mode)...))
	return rep.Words[0], handleOf(rep)
}

func handleOf(rep nfstest.Reply) []byte {
	if rep.Words[0] != 0 || rep.Words[1] != 1 {
		return nil
	}
	return append([]byte(nil), rep.Body[12:12+rep.Words[2]]...)
}

func (a caller) write(fh []byte, data string) uint32 {
	a.t.Helper()
	return a.call(7, nfstest.XDR{}.Opaque(fh).U64(0).U32(uint32(len(data)), 2).Opaque([]byte(data))).Words[0]
}

func (a caller) read(fh []byte) uint32 {
	a.t.Helper()
	return a.call(6, nfstest.XDR{}.Opaque(fh).U64(0).U32(4096)).Words[0]
}

func (a caller) lookup(dir []byte, name string) uint32 {
	a.t.Helper()
	return a.call(3, nfstest.XDR{}.Opaque(dir).String(name)).Words[0]
}

func (a caller) readdir(dir []byte) uint32 {
	a.t.Helper()
	return a.call(16, nfstest.XDR{}.Opaque(dir).U64(0).U32(0, 0, 4096)).Words[0]
}

func (a caller) remove(dir []byte, name string) uint32 {
	a.t.Helper()
	return a.call(12, nfstest.XDR{}.Opaque(dir).String(name)).Words[0]
}

// setattr sends a SETATTR with the given sattr3 and no guard.
func (a caller) setattr(fh []byte, sattr nfstest.XDR) uint32 {
	a.t.Helper()
	return a.call(2, append(nfstest.XDR{}.Opaque(fh), append(sattr, 0, 0, 0, 0)...)).Words[0]
}

// access returns the ACCESS3 bits granted of all six.
func (a caller) access(fh []byte) uint32 {
	a.t.Helper()
	rep := a.call(4, nfstest.XDR{}.Opaque(fh).U32(0x3f))
	if rep.Words[0] != 0 {
		a.t.Fatalf("ACCESS: status %d", rep.Words[0])
	}
	return rep.Words[len(rep.Words)-1]
}

// startChecked runs nasd as uid 65534 on a 0777 export (a share every
// client may write in) with the given --options.
func startChecked(t *testing.T, options string, extra ...string) (export string, c *nfstest.Raw, root []byte) {
	t.Helper()
	nfstest.RequireTool(t, "setpriv")
	export, state := nobodyDirs(t)
	p := startNasdVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, export, state,
		append([]string{"--portmap-udp=false", "--options", options}, extra...)...)
	c = nfstest.DialRaw(t, p.nfs, "")
	return export, c, c.Mnt(t, "/")
}

const (
	okS    = 0
	permS  = 1
	accesS = 13
)

func want(t *testing.T, what string, got, want uint32) {
	t.Helper()
	if got != want {
		t.Errorf("%s: status %d, want %d", what, got, want)
	}
}

// TestCredentialsCheckedAgainstMode: a uid 1234 client neither reads nor
// overwrites another uid's 0600 file (it did), gets no READ/MODIFY from
// ACCESS, may not chmod it; the group bits apply to a member of the file's
// group (supplementary groups included); a directory's mode guards its
// entries.
func TestCredentialsCheckedAgainstMode(t *testing.T) {
	_, c, root := startChecked(t, "rw,sync,root_squash")
	owner := caller{t, c, 1000, 1000, nil}
	other := caller{t, c, 1234, 1234, nil}
	member := caller{t, c, 1500, 1500, []uint32{7, 1000}}

	st, secret := owner.create(root, "secret", 0o600)
	if st != okS {
		t.Fatalf("CREATE as the owner: %d", st)
	}
	want(t, "owner WRITE", owner.write(secret, "mine"), okS)
	want(t, "owner READ", owner.read(secret), okS)
	want(t, "other READ of a 0600 file", other.read(secret), accesS)
	want(t, "other WRITE of a 0600 file", other.write(secret, "theirs"), accesS)
	want(t, "other chmod", other.setattr(secret, modeAttr(0o666)), permS)
	want(t, "other truncate", other.setattr(secret, nfstest.XDR{}.U32(0, 0, 0, 1).U64(0).U32(0, 0)), accesS)
	want(t, "owner chmod 0640", owner.setattr(secret, modeAttr(0o640)), okS)
	if got := other.access(secret); got != 0 {
		t.Errorf("ACCESS for another uid on a 0640 file: %#x, want 0", got)
	}
	if got := owner.access(secret); got != 0x01|0x04|0x08 {
		t.Errorf("ACCESS for the owner of a 0640 file: %#x, want READ|MODIFY|EXTEND", got)
	}
	want(t, "group member READ (supplementary group)", member.read(secret), okS)
	want(t, "group member WRITE of g=r", member.write(secret, "x"), accesS)
	if got := member.access(secret); got != 0x01 {
		t.Errorf("ACCESS for a group member on a 0640 file: %#x, want READ", got)
	}

	st, dir := owner.mkdir(root, "private", 0o700)
	if st != okS {
		t.Fatalf("MKDIR: %d", st)
	}
	if st, _ := owner.create(dir, "f", 0o644); st != okS {
		t.Fatalf("CREATE in the owner's 0700 directory: %d", st)
	}
	want(t, "other LOOKUP in a 0700 directory", other.lookup(dir, "f"), accesS)
	want(t, "other READDIR of a 0700 directory", other.readdir(dir), accesS)
	if st, _ := other.create(dir, "g", 0o644); st != accesS {
		t.Errorf("other CREATE in a 0700 directory: %d, want ACCES", st)
	}
	want(t, "other REMOVE in a 0700 directory", other.remove(dir, "f"), accesS)
	want(t, "owner REMOVE", owner.remove(dir, "f"), okS)
	if got := other.access(dir); got != 0 {
		t.Errorf("ACCESS for another uid on a 0700 directory: %#x, want 0", got)
	}
	if got := owner.access(dir); got != 0x01|0x02|0x04|0x08|0x10 {
		t.Errorf("ACCESS for the owner of a directory: %#x, want READ|LOOKUP|MODIFY|EXTEND|DELETE", got)
	}
}

// TestCredentialsSquash: root_squash makes root the anonymous uid (its
// files are anonuid's, and it reads no 0600 file of others);
// no_root_squash keeps root's powers (it reads anything, gives files
// away); all_squash makes every caller anonuid; AUTH_NULL is anonymous.
func TestCredentialsSquash(t *testing.T) {
	t.Run("root_squash", func(t *testing.T) {
		_, c, root := startChecked(t, "rw,sync,root_squash")
		owner, admin := caller{t, c, 1000, 1000, nil}, caller{t, c, 0, 0, nil}
		_, secret := owner.create(root, "secret", 0o600)
		want(t, "squashed root READ of a 0600 file", admin.read(secret), accesS)
		want(t, "squashed root chown", admin.setattr(secret, nfstest.XDR{}.U32(0, 1, 0, 0, 0, 0, 0)), permS)
		if st, _ := admin.create(root, "roots", 0o644); st != okS {
			t.Fatalf("CREATE as squashed root: %d", st)
		}
		if u := ownerOf(t, c, root, "roots"); u != 65534 {
			t.Errorf("root's file owned by %d, want anonuid 65534", u)
		}
		rep, err := c.Call(100003, 3, 6, nfstest.XDR{}.Opaque(secret).U64(0).U32(10))
		if err != nil || rep.Words[0] != accesS {
			t.Errorf("AUTH_NULL READ of a 0600 file: %v %v, want ACCES", rep.Words, err)
		}
	})
	t.Run("no_root_squash", func(t *testing.T) {
		_, c, root := startChecked(t, "rw,sync,no_root_squash")
		owner, admin := caller{t, c, 1000, 1000, nil}, caller{t, c, 0, 0, nil}
		_, secret := owner.create(root, "secret", 0o600)
		want(t, "root READ of a 0600 file", admin.read(secret), okS)
		want(t, "root WRITE of a 0600 file", admin.write(secret, "root"), okS)
		want(t, "root gives a file away", admin.setattr(secret, nfstest.XDR{}.U32(0, 1, 2000, 0, 0, 0, 0)), okS)
		if u := ownerOf(t, c, root, "secret"); u != 2000 {
			t.Errorf("after root's chown: owner %d, want 2000", u)
		}
		want(t, "the old owner READ after the chown", owner.read(secret), accesS)
	})
	t.Run("all_squash", func(t *testing.T) {
		_, c, root := startChecked(t, "rw,sync,all_squash,anonuid=2000,anongid=2000")
		a, b := caller{t, c, 1000, 1000, nil}, caller{t, c, 1234, 1234, nil}
		_, f := a.create(root, "f", 0o600)
		if u := ownerOf(t, c, root, "f"); u != 2000 {
			t.Errorf("owner under all_squash: %d, want anonuid 2000", u)
		}
		want(t, "another uid, squashed to the same anonuid", b.read(f), okS)
	})
}

// TestInsecureSquash: insecure_squash keeps the unchecked behaviour:
// every caller may do what nasd's uid may.
func TestInsecureSquash(t *testing.T) {
	_, c, root := startChecked(t, "rw,sync,insecure_squash")
	owner, other := caller{t, c, 1000, 1000, nil}, caller{t, c, 1234, 1234, nil}
	_, secret := owner.create(root, "secret", 0o600)
	want(t, "other READ", other.read(secret), okS)
	want(t, "other WRITE", other.write(secret, "theirs"), okS)
	if got := other.access(secret); got&0x05 != 0x05 {
		t.Errorf("ACCESS under insecure_squash: %#x, want READ and MODIFY", got)
	}
}

// TestFilesOwner: files nasd did not get from a client (from Windows, and
// the export root) are owned by --files-owner, so the app uid the NAS
// gives them to may write them and others may not.
func TestFilesOwner(t *testing.T) {
	nfstest.RequireTool(t, "setpriv")
	export, state := nobodyDirs(t)
	os.Chmod(export, 0o755)
	if err := os.WriteFile(filepath.Join(export, "from-windows"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(export, "from-windows"), 65534, 65534)
	p := startNasdVia(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, export, state,
		"--portmap-udp=false", "--files-owner", "1000:1000")
	c := nfstest.DialRaw(t, p.nfs, "")
	root := c.Mnt(t, "/")
	app, other := caller{t, c, 1000, 1000, nil}, caller{t, c, 1234, 1234, nil}
	st, fh := c.Lookup(t, root, "from-windows")
	if st != 0 {
		t.Fatalf("LOOKUP: %d", st)
	}
	want(t, "the files owner WRITE", app.write(fh, "app"), okS)
	// GETATTR answers from the open file now in the cache: the same owner.
	rep := app.call(1, nfstest.XDR{}.Opaque(fh))
	if rep.Words[0] != 0 || rep.Words[4] != 1000 || rep.Words[5] != 1000 {
		t.Errorf("GETATTR of a file from Windows: %v, want owner 1000:1000", rep.Words[:6])
	}
	if u := ownerOf(t, c, root, "from-windows"); u != 1000 {
		t.Errorf("LOOKUP of a file from Windows: owner %d, want 1000", u)
	}
	want(t, "another uid WRITE", other.write(fh, "other"), accesS)
	if st, _ := app.create(root, "result", 0o644); st != okS {
		t.Errorf("the files owner CREATE in the export root: %d", st)
	}
	if st, _ := other.create(root, "result2", 0o644); st != accesS {
		t.Errorf("another uid CREATE in the export root: %d, want ACCES", st)
	}
}

// ownerOf is the uid nasd reports for name in dir (LOOKUP's object
// attributes: status, handle, attributes_follow, type, mode, nlink, uid).
func ownerOf(t *testing.T, c *nfstest.Raw, dir []byte, name string) uint32 {
	t.Helper()
	rep, err := c.CallAs(1000, 1000, 100003, 3, 3, nfstest.XDR{}.Opaque(dir).String(name))
	if err != nil || rep.Words[0] != 0 {
		t.Fatalf("LOOKUP %s: %v %v", name, rep.Words, err)
	}
	at := 2 + int(rep.Words[1]+3)/4
	if rep.Words[at] != 1 {
		t.Fatalf("LOOKUP %s: no attributes", name)
	}
	return rep.Words[at+4]
}
