package main

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// nullCall makes an NFS NULL call on a new connection to addr.
func nullCall(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r := &nfstest.Raw{Conn: c}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	rep, err := r.Call(100003, 3, 0, nil)
	if err == nil && rep.AcceptStat != 0 {
		err = errors.New("NULL not accepted")
	}
	return err
}

// TestFDExhaustionRecovers: the real binary with a low file descriptor
// limit (prlimit) runs out of descriptors while clients hold connections;
// once they close, new clients are served again (before, the first EMFILE
// ended the accept loop for good while /healthz stayed 200).
func TestFDExhaustionRecovers(t *testing.T) {
	nfstest.RequireTool(t, "prlimit")
	p := startNasdVia(t, []string{"prlimit", "--nofile=48:48", "--"}, t.TempDir(), t.TempDir(), "--portmap-udp=false")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Fill the server's descriptor table: connect until one gets no answer.
	exhausted := false
	for range 100 {
		c, err := net.DialTimeout("tcp", p.nfs, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		r := &nfstest.Raw{Conn: c}
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := r.Call(100003, 3, 0, nil); err != nil {
			exhausted = true
			break
		}
		_ = c.SetDeadline(time.Time{})
	}
	if !exhausted {
		t.Fatal("100 connections served with a limit of 48 descriptors")
	}
	time.Sleep(300 * time.Millisecond) // let accept fail a few times
	if !strings.Contains(p.logs.String(), "too many open files") {
		t.Fatalf("no accept failure logged\n%s", p.logs)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	start := time.Now()
	for {
		if err := nullCall(p.nfs); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no client served 10 s after descriptors were freed\n%s", p.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("served again %v after the descriptors were freed", time.Since(start))
	if body, err := httpGet("http://" + p.http + "/healthz"); err != nil || body != "ok\n" {
		t.Fatalf("/healthz: %q %v", body, err)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
}

// brokenListener fails every Accept with a permanent error once broken.
type brokenListener struct {
	net.Listener
	broken chan struct{}
}

func (l *brokenListener) Accept() (net.Conn, error) {
	<-l.broken
	return nil, errors.New("listener socket gone")
}

// TestListenerFailureFailsHealthz: when the NFS listener stops for good,
// /healthz answers 503 naming it (it answered 200 while nothing accepted).
func TestListenerFailureFailsHealthz(t *testing.T) {
	broken := make(chan struct{})
	listenNFS = func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		return &brokenListener{Listener: l, broken: broken}, err
	}
	defer func() { listenNFS = net.Listen }()
	l, _ := startInProcess(t)
	if code, _ := httpStatus(t, l.http, "/healthz"); code != 200 {
		t.Fatalf("/healthz before: %d", code)
	}
	close(broken)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := httpStatus(t, l.http, "/healthz")
		if code == 503 && strings.Contains(body, "nfs") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz after the listener failed: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRSSAtConnectionLimit: the real binary holding --max-connections
// half-sent records (each announcing 1 MiB) stays small, and refuses the
// next connection.
func TestRSSAtConnectionLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,024 connections")
	}
	const limit = 1024
	p := startNasd(t, t.TempDir(), t.TempDir(), "--portmap-udp=false")
	base := vmRSS(t, p.cmd.Process.Pid)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	hdr := binary.BigEndian.AppendUint32(nil, 1<<20|1<<31)
	for range limit {
		c, err := net.DialTimeout("tcp", p.nfs, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := c.Write(append(hdr, make([]byte, 100)...)); err != nil {
			t.Fatal(err)
		}
	}
	extra, err := net.DialTimeout("tcp", p.nfs, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("connection %d was not closed: %v", limit+1, err)
	}
	time.Sleep(500 * time.Millisecond)
	rss := vmRSS(t, p.cmd.Process.Pid)
	t.Logf("VmRSS idle %d KiB, with %d half-sent 1 MiB records %d KiB (%.1f MiB, %.1f KiB per connection)",
		base, limit, rss, float64(rss)/1024, float64(rss-base)/limit)
	if rss > 64<<10 {
		t.Fatalf("RSS %d KiB at the connection limit, want < 64 MiB", rss)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
}
