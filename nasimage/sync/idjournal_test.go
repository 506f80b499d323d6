package sync

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

type X = nfstest.XDR

func nfsCall(t *testing.T, c *nfstest.Raw, proc uint32, args []byte) nfstest.Reply {
	t.Helper()
	rep, err := c.Call(100003, 3, proc, args)
	if err != nil || rep.AcceptStat != 0 || len(rep.Words) == 0 {
		t.Fatalf("NFS proc %d: %+v %v", proc, rep, err)
	}
	return rep
}

// made returns the handle a CREATE (8) or MKDIR (9) reply carries.
func made(t *testing.T, rep nfstest.Reply) []byte {
	t.Helper()
	if rep.Words[0] != 0 || rep.Words[1] != 1 {
		t.Fatalf("create: %v", rep.Words[:2])
	}
	return append([]byte(nil), rep.Body[12:12+rep.Words[2]]...)
}

func nfsCreate(t *testing.T, c *nfstest.Raw, dir []byte, name string) []byte {
	return made(t, nfsCall(t, c, 8, X{}.Opaque(dir).String(name).U32(0).U32(0, 0, 0, 0, 0, 0)))
}

func nfsMkdir(t *testing.T, c *nfstest.Raw, dir []byte, name string) []byte {
	return made(t, nfsCall(t, c, 9, X{}.Opaque(dir).String(name).U32(0, 0, 0, 0, 0, 0)))
}

// nfsWriteAt does a FILE_SYNC WRITE and returns the status.
func nfsWriteAt(t *testing.T, c *nfstest.Raw, fh []byte, off uint64, data string) uint32 {
	return nfsCall(t, c, 7, X{}.Opaque(fh).U64(off).U32(uint32(len(data)), 2).Opaque([]byte(data))).Words[0]
}

func nfsReadAll(t *testing.T, c *nfstest.Raw, fh []byte) (uint32, string) {
	rep := nfsCall(t, c, 6, X{}.Opaque(fh).U64(0).U32(1<<16))
	if rep.Words[0] != 0 {
		return rep.Words[0], ""
	}
	// status, post-op attrs (1 + 21 words), count, eof, data
	n := binary.BigEndian.Uint32(rep.Body[4+4+84+8:])
	return 0, string(rep.Body[4+4+84+12 : 4+4+84+12+n])
}

// nfsFileid returns GETATTR's status and fileid.
func nfsFileid(t *testing.T, c *nfstest.Raw, fh []byte) (uint32, uint64) {
	rep := nfsCall(t, c, 1, X{}.Opaque(fh))
	if rep.Words[0] != 0 {
		return rep.Words[0], 0
	}
	return 0, binary.BigEndian.Uint64(rep.Body[4+5*4+3*8+8:])
}

func settle(h *harness) {
	for range 4 {
		h.eng.journalWritten = time.Time{} // no journalSpacing here
		h.round()
	}
}

// TestJournalKeepsNFSIdentitiesAcrossPodReplacement: files and directories
// created over NFS on an output server, synced to Windows, keep their
// handles and fileids in a new pod (a new empty export, a new state dir,
// the same Windows directory and handle key): an application's open file
// goes on reading and appending. A file changed on Windows meanwhile, or
// deleted and created again there, is another file: STALE.
func TestJournalKeepsNFSIdentitiesAcrossPodReplacement(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	cfg := testConfig(t, reconcile.Output)
	h := newHarness(t, cfg)
	write(t, h.win, "in/a.csv", "from windows")
	settle(h)

	srv := nfstest.Start(t, nfstest.Options{Dir: h.nfs, Key: key})
	c := nfstest.DialRaw(t, srv.Addr, "")
	root := c.Mnt(t, "/")
	_, in := c.Lookup(t, root, "in")
	_, a := c.Lookup(t, in, "a.csv")
	logf := nfsCreate(t, c, root, "log.txt")
	run := nfsMkdir(t, c, root, "run")
	res := nfsCreate(t, c, run, "result.txt")
	edited := nfsCreate(t, c, root, "edited.txt")
	again := nfsCreate(t, c, root, "again.txt")
	short := nfsCreate(t, c, root, "short-lived.txt")
	for fh, data := range map[*[]byte]string{&logf: "line 1\n", &res: "42", &edited: "v1", &again: "v1", &short: "x"} {
		if st := nfsWriteAt(t, c, *fh, 0, data); st != 0 {
			t.Fatalf("WRITE: %d", st)
		}
	}
	past := time.Now().Add(-time.Minute) // not racy: the sync trusts the mtimes
	for _, p := range []string{"log.txt", "run/result.txt", "edited.txt", "again.txt", "short-lived.txt"} {
		os.Chtimes(filepath.Join(h.nfs, p), past, past)
	}
	settle(h)
	// A file that came from Windows, renamed over NFS: it keeps its
	// identity, which is no longer the one its new path derives.
	if st := nfsCall(t, c, 14, X{}.Opaque(in).String("a.csv").Opaque(root).String("a-moved.csv")).Words[0]; st != 0 {
		t.Fatalf("RENAME: %d", st)
	}
	settle(h)
	if j, _ := loadJournal(h.win); j["short-lived.txt"].ID == "" || j["a-moved.csv"].ID == "" || j["run"].ID == "" {
		t.Errorf("journal before the removal: %v", j)
	}
	if st := nfsCall(t, c, 12, X{}.Opaque(root).String("short-lived.txt")).Words[0]; st != 0 {
		t.Fatalf("REMOVE: %d", st)
	}
	settle(h)
	if j, _ := loadJournal(h.win); j["short-lived.txt"].ID != "" {
		t.Error("the journal keeps a file removed over NFS")
	}
	fileids := map[string]uint64{}
	handles := map[string][]byte{"root": root, "in": in, "a": a, "log": logf, "run": run, "result": res, "edited": edited, "again": again}
	for name, fh := range handles {
		st, id := nfsFileid(t, c, fh)
		if st != 0 {
			t.Fatalf("%s: GETATTR %d", name, st)
		}
		fileids[name] = id
	}
	journalOnlyExisting(t, h)
	if err := h.eng.flush(); err != nil { // SIGTERM
		t.Fatal(err)
	}
	srv.Stop()

	// Meanwhile on Windows: edited.txt edited, again.txt deleted and made
	// again (same size, another mtime).
	write(t, h.win, "edited.txt", "v2, edited on Windows")
	os.Remove(filepath.Join(h.win, "again.txt"))
	write(t, h.win, "again.txt", "v1")
	later := time.Now().Add(-30 * time.Second)
	os.Chtimes(filepath.Join(h.win, "again.txt"), later, later)

	// The new pod.
	cfg2 := cfg
	base := t.TempDir()
	cfg2.NFSDir, cfg2.StateDir = filepath.Join(base, "export"), filepath.Join(base, "state")
	os.MkdirAll(cfg2.NFSDir, 0o755)
	h2 := newHarness(t, cfg2)
	settle(h2)
	srv = nfstest.Start(t, nfstest.Options{Dir: h2.nfs, Key: key})
	c = nfstest.DialRaw(t, srv.Addr, "")
	for _, name := range []string{"root", "in", "a", "log", "run", "result"} {
		st, id := nfsFileid(t, c, handles[name])
		if st != 0 || id != fileids[name] {
			t.Errorf("%s in the new pod: GETATTR %d, fileid %#x, want OK, %#x", name, st, id, fileids[name])
		}
	}
	if st, data := nfsReadAll(t, c, a); st != 0 || data != "from windows" {
		t.Errorf("a.csv, renamed over NFS, in the new pod: READ %d %q", st, data)
	}
	if st, data := nfsReadAll(t, c, res); st != 0 || data != "42" {
		t.Errorf("run/result.txt in the new pod: READ %d %q", st, data)
	}
	if st := nfsWriteAt(t, c, logf, 7, "line 2\n"); st != 0 {
		t.Errorf("appending to log.txt in the new pod: WRITE %d", st)
	}
	if st, data := nfsReadAll(t, c, logf); st != 0 || data != "line 1\nline 2\n" {
		t.Errorf("log.txt in the new pod: READ %d %q", st, data)
	}
	for _, name := range []string{"edited", "again"} {
		if st, _ := nfsFileid(t, c, handles[name]); st != 70 {
			t.Errorf("%s (changed on Windows) in the new pod: GETATTR %d, want STALE", name, st)
		}
	}
	settle(h2)
	journalOnlyExisting(t, h2)
	j, _ := loadJournal(h2.win)
	if _, ok := j["log.txt"]; !ok {
		t.Errorf("the new pod's journal lost log.txt: %v", j)
	}
}

// journalOnlyExisting checks that the journal is there and names only
// paths present on both sides.
func journalOnlyExisting(t *testing.T, h *harness) {
	t.Helper()
	j, err := loadJournal(h.win)
	if err != nil || len(j) == 0 {
		t.Fatalf("journal: %v %v", j, err)
	}
	for p := range j {
		for _, root := range []string{h.win, h.nfs} {
			if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
				t.Errorf("journal names %s: %v", p, err)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(h.nfs, scan.JournalName)); err == nil {
		t.Error("the journal was copied to the export")
	}
}

// TestNasdPodReplacementKeepsAppendingWriter runs the real nasd binary:
// an application creates a file over NFS on an output server and appends
// to it with FILE_SYNC writes; the pod is replaced (SIGTERM, then a new
// nasd on a new empty export and state dir, the same Windows directory
// and handle key). The application's handle goes on working (same
// fileid, root's too), and every write it made reaches Windows.
func TestNasdPodReplacementKeepsAppendingWriter(t *testing.T) {
	base := t.TempDir()
	win := filepath.Join(base, "windows")
	keyFile := filepath.Join(base, "handle.key")
	os.MkdirAll(win, 0o755)
	os.WriteFile(keyFile, bytes.Repeat([]byte("k"), 32), 0o600)
	pod := func(n string) *nasdProc {
		export, state := filepath.Join(base, n, "export"), filepath.Join(base, n, "state")
		os.MkdirAll(export, 0o755)
		os.MkdirAll(state, 0o755)
		return startNasd(t, export, state, win, "--role", "output", "--handle-key-file", keyFile)
	}
	p := pod("pod1")
	c := nfstest.DialRaw(t, p.nfs, "")
	root := c.Mnt(t, "/")
	dir := nfsMkdir(t, c, root, "job")
	logf := nfsCreate(t, c, dir, "log.txt")
	if st := nfsWriteAt(t, c, logf, 0, "line 1\n"); st != 0 {
		t.Fatalf("WRITE: %d", st)
	}
	_, rootID := nfsFileid(t, c, root)
	_, logID := nfsFileid(t, c, logf)
	p.stop(t)

	p = pod("pod2")
	c = nfstest.DialRaw(t, p.nfs, "")
	if st, id := nfsFileid(t, c, root); st != 0 || id != rootID {
		t.Errorf("root in the new pod: GETATTR %d, fileid %#x, want %#x", st, id, rootID)
	}
	if st, _ := nfsFileid(t, c, dir); st != 0 {
		t.Errorf("job/ (made over NFS) in the new pod: GETATTR %d", st)
	}
	if st, id := nfsFileid(t, c, logf); st != 0 || id != logID {
		t.Errorf("log.txt in the new pod: GETATTR %d, fileid %#x, want %#x", st, id, logID)
	}
	if st := nfsWriteAt(t, c, logf, 7, "line 2\n"); st != 0 {
		t.Errorf("appending in the new pod: WRITE %d", st)
	}
	p.stop(t)
	if b, _ := os.ReadFile(filepath.Join(win, "job", "log.txt")); string(b) != "line 1\nline 2\n" {
		t.Errorf("on Windows: %q", b)
	}
}

// TestJournalOnlyOnOutput: input and backup servers keep no journal (they
// copy nothing from NFS to Windows; files created over NFS there do not
// outlive a pod replacement).
func TestJournalOnlyOnOutput(t *testing.T) {
	for _, role := range []reconcile.Role{reconcile.Input, reconcile.Backup} {
		h := newHarness(t, testConfig(t, role))
		write(t, h.win, "in/a.csv", "a")
		write(t, h.nfs, "made-over-nfs.txt", "x")
		if _, err := fileid.Assign(filepath.Join(h.nfs, "made-over-nfs.txt")); err != nil { // as a CREATE does
			t.Fatal(err)
		}
		settle(h)
		if err := h.eng.flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(h.win, scan.JournalName)); err == nil {
			t.Errorf("%v: wrote %s", role, scan.JournalName)
		}
	}
}

// TestNewPodWaitsNotForJournaledFiles: the old pod's shutdown flush copies
// a file an application was writing until the last moment, so its Windows
// copy has a recent mtime, the look of a file still being written on
// Windows. The journal names it with that exact size and mtime, which
// vouches for it: the new pod copies it back, with its identity, in its
// initial sync, without waiting a quiet period for it to look stable, and
// tells the NFS server (Config.Installed) of each path it put in the
// export, so that the handles applications hold resolve the moment
// clients are let in.
func TestNewPodWaitsNotForJournaledFiles(t *testing.T) {
	cfg := testConfig(t, reconcile.Output)
	cfg.QuietPeriod = 5 * time.Second
	h := newHarness(t, cfg)
	if !h.eng.opened {
		if err := h.eng.open(); err != nil {
			t.Fatal(err)
		}
	}
	write(t, h.nfs, "job/written", "record 1\nrecord 2\n")
	id := fileid.New()
	if err := fileid.Set(filepath.Join(h.nfs, "job", "written"), id); err != nil {
		t.Skipf("no user xattrs in %s: %v", h.nfs, err)
	}
	if err := h.eng.flush(); err != nil { // SIGTERM, right after the last write
		t.Fatal(err)
	}

	cfg2 := cfg
	base := t.TempDir()
	cfg2.NFSDir, cfg2.StateDir = filepath.Join(base, "export"), filepath.Join(base, "state")
	os.MkdirAll(cfg2.NFSDir, 0o755)
	var installed []string
	cfg2.Installed = func(rel string) { installed = append(installed, rel) }
	h2 := newHarness(t, cfg2)
	t0 := time.Now()
	h2.run()
	if took := time.Since(t0); took >= cfg.QuietPeriod {
		t.Errorf("the new pod was ready after %s: it waited a quiet period (%s) for a file the journal vouches for", took, cfg.QuietPeriod)
	}
	if got, err := fileid.Peek(h2.nfs, "job/written"); err != nil || got != id {
		t.Errorf("job/written in the new export when it is ready: id %x, %v; want %x", got, err, id)
	}
	if !slices.Contains(installed, "job/written") || !slices.Contains(installed, "job") {
		t.Errorf("the NFS server was told of %v, want job and job/written", installed)
	}
}
