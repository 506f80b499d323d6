package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// Write stabilities (stable_how, RFC 1813).
const (
	unstable = 0
	fileSync = 2
)

// TestUnstableWriteSurvivesKillAfterCommit: the real binary answers an
// UNSTABLE WRITE UNSTABLE, a FILE_SYNC one FILE_SYNC, and WRITE and
// COMMIT carry one verifier. Killed with SIGKILL between an UNSTABLE WRITE
// and its COMMIT and started again, it answers the COMMIT with another
// verifier, which tells the client to resend what it wrote since its last
// COMMIT (as knfsd and nfs-ganesha do); data a COMMIT acknowledged before
// the kill is there after it.
func TestUnstableWriteSurvivesKillAfterCommit(t *testing.T) {
	export, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(export, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startNasd(t, export, state, "--portmap-udp=false", "--options", "rw,sync,insecure_squash") // AUTH_NULL calls
	c := nfstest.DialRaw(t, p.nfs, "")
	root := c.Mnt(t, "/")
	_, fh := c.Lookup(t, root, "f")

	committedData := []byte("acknowledged by COMMIT before the kill")
	st, how, v1 := c.Write(t, fh, 0, committedData, unstable)
	if st != 0 || how != unstable {
		t.Fatalf("UNSTABLE WRITE: status %d, committed %d (want 0, UNSTABLE)", st, how)
	}
	if st, v := c.Commit(t, fh); st != 0 || v != v1 {
		t.Fatalf("COMMIT: status %d, verifier %x (WRITE's %x)", st, v, v1)
	}
	if st, how, v := c.Write(t, fh, 1000, []byte("synced"), fileSync); st != 0 || how != fileSync || v != v1 {
		t.Fatalf("FILE_SYNC WRITE: status %d, committed %d, verifier %x (want FILE_SYNC, %x)", st, how, v, v1)
	}
	pending := []byte("written UNSTABLE, not committed")
	if st, how, v := c.Write(t, fh, 100, pending, unstable); st != 0 || how != unstable || v != v1 {
		t.Fatalf("second UNSTABLE WRITE: status %d, committed %d, verifier %x", st, how, v)
	}

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	p2 := startNasd(t, export, state, "--portmap-udp=false", "--options", "rw,sync,insecure_squash") // AUTH_NULL calls
	c2 := nfstest.DialRaw(t, p2.nfs, "")
	st, v2 := c2.Commit(t, fh)
	if st != 0 {
		t.Fatalf("COMMIT after restart: status %d", st)
	}
	if v2 == v1 {
		t.Fatalf("COMMIT after the restart answered the old verifier %x: the client would not resend its unstable writes", v1)
	}
	// The client resends what it wrote UNSTABLE since its last COMMIT.
	if st, _, v := c2.Write(t, fh, 100, pending, unstable); st != 0 || v != v2 {
		t.Fatalf("resent WRITE: status %d, verifier %x (COMMIT's %x)", st, v, v2)
	}
	if st, v := c2.Commit(t, fh); st != 0 || v != v2 {
		t.Fatalf("second COMMIT: status %d, verifier %x, want %x", st, v, v2)
	}
	st, got, _ := c2.Read3(t, fh, 0, 4096)
	if st != 0 || !bytes.HasPrefix(got, committedData) || !bytes.Equal(got[100:100+len(pending)], pending) ||
		string(got[1000:]) != "synced" {
		t.Fatalf("READ after the restart: status %d, %q", st, got)
	}
	if err := p2.stop(t); err != nil {
		t.Fatal(err)
	}
}
