package rpc_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// metricValue returns the value of a counter or gauge (with labels
// "k=v" pairs), 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k && lp.GetValue() == v {
			return true
		}
	}
	return false
}

// flakyListener fails its first n accepts with err.
type flakyListener struct {
	net.Listener
	n   atomic.Int32
	err error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// nullOK makes an NFS NULL call on a new connection.
func nullOK(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r := &nfstest.Raw{Conn: c}
	rep, err := r.Call(progNFS, 3, 0, nil)
	if err == nil && rep.AcceptStat != 0 {
		err = errors.New("NULL not accepted")
	}
	return err
}

// TestAcceptErrorsAreRetried: "too many open files" on accept no longer
// ends the accept loop (it returned on any non-timeout error): the
// server backs off, logs, counts, and serves the next client.
func TestAcceptErrorsAreRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: l, err: emfile()}
	fl.n.Store(6)
	srv := nfstest.Start(t, nfstest.Options{Listener: fl})
	start := time.Now()
	if err := nullOK(srv.Addr); err != nil {
		t.Fatalf("NULL after 6 EMFILE accepts: %v", err)
	}
	// 5+10+20+40+80+160 ms of backoff.
	t.Logf("served after 6 failed accepts in %v", time.Since(start))
	if got := metricValue(t, srv.Registry, "nasd_rpc_accept_errors_total"); got != 6 {
		t.Fatalf("nasd_rpc_accept_errors_total = %v, want 6", got)
	}
	select {
	case err := <-srv.Served():
		t.Fatalf("Serve returned: %v", err)
	default:
	}
}

// TestListenerFailureEndsServe: an error that is not transient ends Serve
// with that error (nasd then fails /healthz).
func TestListenerFailureEndsServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("socket broken")
	fl := &flakyListener{Listener: l, err: broken}
	fl.n.Store(1)
	srv := nfstest.Start(t, nfstest.Options{Listener: fl})
	select {
	case err := <-srv.Served():
		if !errors.Is(err, broken) {
			t.Fatalf("Serve returned %v, want %v", err, broken)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after a permanent accept error")
	}
}

// closedWithin reports whether the server closes c (EOF or reset) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestConnectionLimit: connections beyond --max-connections are closed
// at once and counted; one closing makes room for the next.
func TestConnectionLimit(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{MaxConns: 5})
	var held []*nfstest.Raw
	for range 5 {
		r := nfstest.DialRaw(t, srv.Addr, "")
		if rep, err := r.Call(progNFS, 3, 0, nil); err != nil || rep.AcceptStat != 0 {
			t.Fatalf("NULL: %+v %v", rep, err)
		}
		held = append(held, r)
	}
	extra := nfstest.DialRaw(t, srv.Addr, "")
	if !closedWithin(extra.Conn, 2*time.Second) {
		t.Fatal("the 6th connection was not closed")
	}
	if got := metricValue(t, srv.Registry, "nasd_rpc_connection_errors_total", "reason=limit"); got != 1 {
		t.Fatalf("refused connections counted %v, want 1", got)
	}
	held[0].Conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.RPC.Conns() > 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := nullOK(srv.Addr); err != nil {
		t.Fatalf("NULL after a connection closed: %v", err)
	}
}

// TestIdleTimeout: a connection that sends nothing for the idle timeout
// is closed; one that keeps calling is not.
func TestIdleTimeout(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{IdleTimeout: 300 * time.Millisecond})
	idle := nfstest.DialRaw(t, srv.Addr, "")
	busy := nfstest.DialRaw(t, srv.Addr, "")
	if _, err := idle.Call(progNFS, 3, 0, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < time.Second {
		if rep, err := busy.Call(progNFS, 3, 0, nil); err != nil || rep.AcceptStat != 0 {
			t.Fatalf("busy connection: %+v %v", rep, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !closedWithin(idle.Conn, time.Second) {
		t.Fatal("idle connection still open after 1 s (idle timeout 300 ms)")
	}
	if got := metricValue(t, srv.Registry, "nasd_rpc_connection_errors_total", "reason=idle"); got < 1 {
		t.Fatalf("idle closes counted %v", got)
	}
}

// TestSlowloris: a record that stops half-way is dropped after the record
// timeout, even though bytes arrived recently enough for the idle timeout.
func TestSlowloris(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{RecordTimeout: 300 * time.Millisecond})
	r := nfstest.DialRaw(t, srv.Addr, "")
	start := time.Now()
	// Announce 1 MiB, send a few bytes, then trickle one byte every 100 ms.
	if _, err := r.Conn.Write(binary.BigEndian.AppendUint32(nil, 1<<20|1<<31)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, r.Conn)
		closed <- time.Since(start)
	}()
	for i := 0; i < 30; i++ {
		if _, err := r.Conn.Write([]byte{0}); err != nil {
			break
		}
		select {
		case d := <-closed:
			t.Logf("half-sent record dropped after %v", d)
			if got := metricValue(t, srv.Registry, "nasd_rpc_connection_errors_total", "reason=record_timeout"); got != 1 {
				t.Fatalf("record timeouts counted %v", got)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("slowloris connection kept for 3 s (record timeout 300 ms)")
}

// TestReadCountClamped: a READ asking more than FSINFO's rtmax (1 MiB)
// gets at most 1 MiB (go-nfs allocated up to 16 MiB per call).
func TestReadCountClamped(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	os.WriteFile(srv.Dir+"/big", make([]byte, 4<<20), 0o644)
	c := nfstest.DialRaw(t, srv.Addr, "")
	_, fh := c.Lookup(t, c.Mnt(t, "/"), "big")
	rep, err := c.Call(progNFS, 3, 6, X{}.Opaque(fh).U64(0).U32(16<<20))
	if err != nil || rep.AcceptStat != 0 || rep.Words[0] != 0 {
		t.Fatalf("READ: %+v %v", rep.Words[:2], err)
	}
	off := 2 // status, attributes_follow
	if rep.Words[1] == 1 {
		off += 21
	}
	if n := rep.Words[off]; n != 1<<20 {
		t.Fatalf("READ of 16 MiB returned %d bytes, want 1 MiB", n)
	}
}

// TestClientNotReadingReplies: a client that pipelines READs and never
// reads the replies holds at most 32 calls in flight, and is disconnected
// once a reply cannot be sent within the record timeout.
func TestClientNotReadingReplies(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{RecordTimeout: 500 * time.Millisecond})
	os.WriteFile(srv.Dir+"/big", make([]byte, 1<<20), 0o644)
	c := nfstest.DialRaw(t, srv.Addr, "")
	_, fh := c.Lookup(t, c.Mnt(t, "/"), "big")
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	var buf []byte
	for i := range 200 {
		call := nfstest.Call(uint32(0x9000+i), 2, progNFS, 3, 6, X{}.Opaque(fh).U64(0).U32(1<<20))
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(call))|1<<31)
		buf = append(buf, call...)
	}
	go c.Conn.Write(buf)
	maxInflight := 0.0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		maxInflight = max(maxInflight, metricValue(t, srv.Registry, "nasd_nfs_inflight_requests"))
		if metricValue(t, srv.Registry, "nasd_rpc_connection_errors_total", "reason=reply_timeout") >= 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := metricValue(t, srv.Registry, "nasd_rpc_connection_errors_total", "reason=reply_timeout"); got < 1 {
		t.Fatal("a client not reading its replies was not disconnected")
	}
	if maxInflight > 32 {
		t.Fatalf("%v calls in flight on one connection, want at most 32", maxInflight)
	}
	t.Logf("at most %v calls in flight", maxInflight)
	if err := nullOK(srv.Addr); err != nil {
		t.Fatalf("server unusable afterwards: %v", err)
	}
}
