package nfsfs_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// fileidOf returns the fileid attribute GETATTR answers for fh.
func fileidOf(t *testing.T, c *nfstest.Raw, fh []byte) uint64 {
	t.Helper()
	rep := call(t, c, 1, X{}.Opaque(fh))
	if rep.Words[0] != nfsOK {
		t.Fatalf("GETATTR: %d", rep.Words[0])
	}
	// status, type, mode, nlink, uid, gid, size, used, rdev, fsid, fileid
	return binary.BigEndian.Uint64(rep.Body[4+5*4+3*8+8:])
}

// TestFileidFollowsIdentity: the fileid attribute comes from the file's
// identity, not its inode: the same in a restarted nasd and in a new
// pod's export re-copied from Windows (the Linux client fails a mount
// whose root's fileid changes: "fileid changed"), and the root's is fixed.
func TestFileidFollowsIdentity(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	mt := time.Unix(1700000000, 5)
	fill := func() string {
		d := t.TempDir()
		write(t, d, "in/a.csv", "a")
		for _, p := range []string{"in/a.csv", "in"} {
			os.Chtimes(filepath.Join(d, p), mt, mt)
		}
		return d
	}
	pod1 := fill()
	srv := nfstest.Start(t, nfstest.Options{Dir: pod1, Key: key})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	in := lookup(t, c, root, "in")
	a := lookup(t, c, in, "a.csv")
	made := create(t, c, in, "made.txt")
	want := map[string]uint64{}
	for name, fh := range map[string][]byte{"root": root, "in": in, "a": a, "made": made} {
		want[name] = fileidOf(t, c, fh)
	}
	if want["root"] != fileid.Root.Number() {
		t.Errorf("root fileid %#x, want %#x", want["root"], fileid.Root.Number())
	}
	seen := map[uint64]string{}
	for name, n := range want {
		if other, dup := seen[n]; dup {
			t.Errorf("%s and %s have the same fileid %#x", name, other, n)
		}
		seen[n] = name
	}
	srv.Stop()

	srv = nfstest.Start(t, nfstest.Options{Dir: pod1, Key: key})
	c = nfstest.DialRaw(t, srv.Addr, "")
	for name, fh := range map[string][]byte{"root": root, "in": in, "a": a, "made": made} {
		if got := fileidOf(t, c, fh); got != want[name] {
			t.Errorf("%s after a restart: fileid %#x, want %#x", name, got, want[name])
		}
	}
	srv.Stop()

	pod2 := fill() // a new pod: the Windows tree copied again
	srv = nfstest.Start(t, nfstest.Options{Dir: pod2, Key: key})
	c = nfstest.DialRaw(t, srv.Addr, "")
	for name, fh := range map[string][]byte{"root": root, "in": in, "a": a} {
		if got := fileidOf(t, c, fh); got != want[name] {
			t.Errorf("%s in a new export: fileid %#x, want %#x", name, got, want[name])
		}
	}
	// READDIRPLUS entries carry the same fileids (cookie 0, no verifier,
	// dircount, maxcount).
	rep := call(t, c, 17, X{}.Opaque(in).U64(0).U64(0).U32(4096, 32768))
	if rep.Words[0] != nfsOK {
		t.Fatalf("READDIRPLUS: %d", rep.Words[0])
	}
	if !bytes.Contains(rep.Body, binary.BigEndian.AppendUint64(nil, want["a"])) {
		t.Errorf("READDIRPLUS does not carry a.csv's fileid %#x", want["a"])
	}
}
