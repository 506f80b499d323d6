package rpc_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// ACCESS bits (RFC 1813).
const (
	accessRead   = 0x01
	accessModify = 0x04
	accessExtend = 0x08
)

// TestCreateSetattrAccess drives CREATE, SETATTR and ACCESS (answered by
// the front door's data path) with go-nfs-client as two callers: the file
// is the creator's, with the mode asked; a guarded SETATTR truncates it
// durably; the other caller is granted what the mode gives others.
func TestCreateSetattrAccess(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{Credentials: true})
	if err := os.Chmod(srv.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	v := nfstest.MountAs(t, srv.Addr, "/", 1000, 1001)
	fh, err := v.Create("c.txt", 0o640)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	fi, err := os.Stat(filepath.Join(srv.Dir, "c.txt"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("created file on disk: %v %v, want mode 0640", fi, err)
	}
	attr, err := v.GetAttr(fh)
	if err != nil || attr.UID != 1000 || attr.GID != 1001 {
		t.Fatalf("GETATTR of the created file: %+v %v, want owner 1000:1001", attr, err)
	}

	f, err := v.OpenFile("c.txt", 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("x"), 10000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	syncs := srv.Handler.Syncs()
	// Setattr guards with the ctime its LOOKUP saw.
	if err := v.Setattr("c.txt", nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 3}}); err != nil {
		t.Fatalf("guarded SETATTR size 3: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(srv.Dir, "c.txt")); err != nil || string(got) != "xxx" {
		t.Fatalf("after SETATTR size 3: %q %v", got, err)
	}
	if srv.Handler.Syncs() != syncs+1 {
		t.Errorf("a truncation under sync made %d fsyncs, want 1", srv.Handler.Syncs()-syncs)
	}
	mtime := time.Unix(1_700_000_000, 0)
	if err := v.Setattr("c.txt", nfsc.Sattr3{
		Mode:  nfsc.SetMode{SetIt: true, Mode: 0o604},
		Mtime: nfsc.SetTime{SetIt: nfsc.SetToClientTime, Time: nfsc.NFS3Time{Seconds: uint32(mtime.Unix())}},
	}); err != nil {
		t.Fatalf("SETATTR mode and mtime: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(srv.Dir, "c.txt")); err != nil || fi.Mode().Perm() != 0o604 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("after SETATTR: %v %v %v, want mode 0604, mtime %v", fi.Mode(), fi.ModTime(), err, mtime)
	}
	if srv.Handler.Syncs() != syncs+1 {
		t.Errorf("SETATTR without a size change synced")
	}

	ask := uint32(accessRead | accessModify | accessExtend)
	if got, err := v.Access("c.txt", ask); err != nil || got != ask {
		t.Errorf("owner's ACCESS on 0604: %#x %v, want %#x", got, err, ask)
	}
	other := nfstest.MountAs(t, srv.Addr, "/", 2000, 2000)
	if got, err := other.Access("c.txt", ask); err != nil || got != accessRead {
		t.Errorf("other's ACCESS on 0604: %#x %v, want READ only", got, err)
	}
	if err := other.Setattr("c.txt", nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 0}}); err == nil {
		t.Errorf("another caller truncated a 0604 file")
	}

	// A SETATTR whose guard is not the file's ctime changes nothing
	// (NOT_SYNC); GUARDED CREATE of an existing name is EXIST. No client
	// we did not write sends either: the raw client does.
	c := nfstest.DialRaw(t, srv.Addr, "")
	sattr := nfstest.XDR{}.U32(0, 0, 0, 1).U64(0).U32(0, 0)
	rep, err := c.CallAs(1000, 1001, 100003, 3, 2, append(append(nfstest.XDR{}.Opaque(fh), sattr...), nfstest.XDR{}.U32(1, 1, 0)...))
	if err != nil || rep.Words[0] != 10002 {
		t.Errorf("SETATTR with a stale guard: %v %v, want NOT_SYNC (10002)", rep.Words, err)
	}
	if got, _ := os.ReadFile(filepath.Join(srv.Dir, "c.txt")); string(got) != "xxx" {
		t.Errorf("a refused SETATTR truncated the file: %q", got)
	}
	root := c.Mnt(t, "/")
	create := func(how uint32) uint32 {
		rep, err := c.CallAs(1000, 1001, 100003, 3, 8, append(nfstest.XDR{}.Opaque(root).String("c.txt").U32(how), nfstest.XDR{}.U32(0, 0, 0, 0, 0, 0)...))
		if err != nil {
			t.Fatal(err)
		}
		return rep.Words[0]
	}
	if st := create(1); st != 17 {
		t.Errorf("GUARDED CREATE of an existing file: status %d, want EXIST (17)", st)
	}
	if st := create(0); st != 0 {
		t.Errorf("UNCHECKED CREATE of an existing file: status %d, want OK", st)
	}
	if fi, err := os.Stat(filepath.Join(srv.Dir, "c.txt")); err != nil || fi.Size() != 0 {
		t.Errorf("UNCHECKED CREATE of an existing file: %v %v, want it truncated (as go-nfs did)", fi, err)
	}
}

// TestLibnfsGuardedCreate copies with libnfs's nfs-cp, which creates its
// destination GUARDED: a new name is created with the data, an existing
// one is refused (EXIST) and keeps its data.
func TestLibnfsGuardedCreate(t *testing.T) {
	nfstest.RequireTool(t, "nfs-cp")
	srv := nfstest.Start(t, nfstest.Options{Credentials: true})
	if err := os.Chmod(srv.Dir, 0o777); err != nil { // libnfs calls as root, squashed
		t.Fatal(err)
	}
	local := t.TempDir()
	long := randomFile(t, local, "long", 1<<20)
	randomFile(t, local, "short", 1000)
	url := nfstest.LibnfsURL(srv.Addr, "/f")
	nfstest.MustRun(t, 60*time.Second, "nfs-cp", filepath.Join(local, "long"), url)
	if got, _ := os.ReadFile(filepath.Join(srv.Dir, "f")); !bytes.Equal(got, long) {
		t.Fatalf("first copy: %d bytes on the server, want %d", len(got), len(long))
	}
	out, err := nfstest.Run(t, 60*time.Second, "nfs-cp", filepath.Join(local, "short"), url)
	if err == nil || !strings.Contains(out, "NFS3ERR_EXIST") {
		t.Fatalf("nfs-cp over an existing file: %v\n%s\nwant NFS3ERR_EXIST", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(srv.Dir, "f")); !bytes.Equal(got, long) {
		t.Fatalf("the refused copy changed the file: %d bytes", len(got))
	}
}

// createExclusive sends an EXCLUSIVE CREATE of name in dir with verf and
// returns the status and, if OK, the new handle.
func createExclusive(t *testing.T, c *nfstest.Raw, dir []byte, name string, verf uint64) (uint32, []byte) {
	t.Helper()
	rep, err := c.CallAs(1000, 1000, progNFS, 3, 8, X{}.Opaque(dir).String(name).U32(2).U64(verf))
	if err != nil || rep.AcceptStat != 0 {
		t.Fatalf("EXCLUSIVE CREATE %s: %+v %v", name, rep, err)
	}
	if rep.Words[0] != 0 {
		return rep.Words[0], nil
	}
	if rep.Words[1] != 1 {
		t.Fatalf("EXCLUSIVE CREATE %s: no handle in the reply", name)
	}
	n := rep.Words[2]
	return 0, append([]byte(nil), rep.Body[12:12+n]...)
}

// TestExclusiveCreate: EXCLUSIVE CREATE as knfsd answers it (the Linux
// client sends it for open(O_CREAT|O_EXCL)): a new file keeps the verifier
// in its times until the client's SETATTR; the same verifier again (a
// retransmission) gets the same file, another one or any other existing
// name EXIST; a createmode that is none of the three is GARBAGE_ARGS.
func TestExclusiveCreate(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{Credentials: true})
	if err := os.Chmod(srv.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Dir, "existing"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	const verf = 0x8000000100000002 // high bits cleared in the times, as knfsd does
	st, fh := createExclusive(t, c, root, "new", verf)
	if st != 0 {
		t.Fatalf("EXCLUSIVE CREATE of a new name: status %d", st)
	}
	fi, err := os.Stat(filepath.Join(srv.Dir, "new"))
	if err != nil || fi.ModTime().Unix() != 1 {
		t.Fatalf("new file: %v %v, want mtime 1 (the verifier's first half)", fi, err)
	}
	if st, again := createExclusive(t, c, root, "new", verf); st != 0 || !bytes.Equal(again, fh) {
		t.Fatalf("retransmitted EXCLUSIVE CREATE: status %d, same handle %v", st, bytes.Equal(again, fh))
	}
	if st, _ := createExclusive(t, c, root, "new", verf+1); st != 17 {
		t.Fatalf("EXCLUSIVE CREATE with another verifier: status %d, want EXIST (17)", st)
	}
	if st, _ := createExclusive(t, c, root, "existing", verf); st != 17 {
		t.Fatalf("EXCLUSIVE CREATE of an existing file: status %d, want EXIST (17)", st)
	}
	// After the client's SETATTR of the times, the verifier no longer matches.
	if err := os.Chtimes(filepath.Join(srv.Dir, "new"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if st, _ := createExclusive(t, c, root, "new", verf); st != 17 {
		t.Fatalf("EXCLUSIVE CREATE after the times were set: status %d, want EXIST (17)", st)
	}
	rep, err := c.CallAs(1000, 1000, progNFS, 3, 8, X{}.Opaque(root).String("bad").U32(3).U64(verf))
	if err != nil || rep.Denied || rep.AcceptStat != 4 {
		t.Fatalf("CREATE with createmode 3: %+v %v, want GARBAGE_ARGS", rep, err)
	}
}
