// Package nfstest starts nasd's NFS stack on loopback for tests and drives
// it with real clients: Debian libnfs-utils (nfs-ls, nfs-cp, nfs-cat),
// github.com/willscott/go-nfs-client, and a raw RPC client for the calls
// no ordinary client makes (bad versions, tampered handles, ...).
package nfstest

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	nfsc "github.com/willscott/go-nfs-client/nfs"
	nfsrpc "github.com/willscott/go-nfs-client/nfs/rpc"

	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
	"github.com/nas-topology/nas-topology/nasimage/rpc"
)

// Options configure a test server. The zero value is a rw, sync export of
// a fresh temporary directory, mounted as "/", open to everyone.
type Options struct {
	Dir        string         // export directory; "" = a new temp dir
	Key        []byte         // handle secret; nil = random
	Export     *nfsfs.Options // nil = nfsfs.DefaultOptions()
	ExportPath string         // MOUNT path; "" = "/"
	Networks   []netip.Prefix
	Portmap    string // portmapper listen address; "" = none
	Backends   int
	MaxRecord  int
	// Connection limits (zero: the rpc defaults).
	MaxConns      int
	IdleTimeout   time.Duration
	RecordTimeout time.Duration
	// Listener, if set, is served instead of a new loopback listener.
	Listener net.Listener
	// Credentials turns on the front door's credential checks (as nasd
	// does unless insecure_squash); off, every caller may do anything.
	Credentials bool
	// GoNFS leaves out the front door's data path: every call reaches
	// go-nfs (to compare the data path with what go-nfs answered).
	GoNFS bool
	// WrapData, if set, wraps the handler's data path (to watch or slow
	// its calls).
	WrapData func(*nfsfs.Handler) rpc.DataPath
}

// Server is a running front door + handler on loopback.
type Server struct {
	Dir         string
	Key         []byte
	Addr        string // NFS host:port
	Port        int
	PortmapAddr string
	Handler     *nfsfs.Handler
	RPC         *rpc.Server
	Registry    *prometheus.Registry
	stopped     bool
	served      chan error
}

// Served returns Serve's result once it returned.
func (s *Server) Served() <-chan error { return s.served }

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Key == nil {
		o.Key = make([]byte, 32)
		_, _ = rand.Read(o.Key)
	}
	opts := nfsfs.DefaultOptions()
	if o.Export != nil {
		opts = *o.Export
	}
	h, err := nfsfs.NewHandler(o.Dir, opts, o.Key)
	if err != nil {
		t.Fatal(err)
	}
	l := o.Listener
	if l == nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	export := rpc.Export{Path: o.ExportPath, Networks: o.Networks, ReadOnly: opts.ReadOnly}
	if o.Credentials {
		export.Access = opts.Mapping()
	}
	var data rpc.DataPath = h
	if o.WrapData != nil {
		data = o.WrapData(h)
	}
	if o.GoNFS {
		data = nil
	}
	front := rpc.NewServer(rpc.Config{
		NFSPort:       l.Addr().(*net.TCPAddr).Port,
		Export:        export,
		Handler:       h,
		Handles:       h,
		Commit:        h.Commit,
		Data:          data,
		Backends:      o.Backends,
		MaxRecord:     o.MaxRecord,
		MaxConns:      o.MaxConns,
		IdleTimeout:   o.IdleTimeout,
		RecordTimeout: o.RecordTimeout,
		Metrics:       rpc.NewMetrics(reg),
	})
	s := &Server{Dir: o.Dir, Key: o.Key, Addr: l.Addr().String(), Port: l.Addr().(*net.TCPAddr).Port,
		Handler: h, RPC: front, Registry: reg}
	s.served = make(chan error, 1)
	go func() { s.served <- front.Serve(l) }()
	if o.Portmap != "" {
		pl, err := net.Listen("tcp", o.Portmap)
		if err != nil {
			t.Fatalf("portmapper listener %s: %v", o.Portmap, err)
		}
		s.PortmapAddr = pl.Addr().String()
		go func() { _ = front.ServePortmap(pl) }()
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down (idempotent).
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.RPC.Shutdown(ctx)
}

// Mount mounts path with go-nfs-client over one TCP connection (AUTH_UNIX
// root), closing it when the test ends.
func Mount(t testing.TB, addr, path string) *nfsc.Target {
	t.Helper()
	return MountAs(t, addr, path, 0, 0)
}

// MountAs is Mount with AUTH_UNIX credentials uid and gid.
func MountAs(t testing.TB, addr, path string, uid, gid uint32) *nfsc.Target {
	t.Helper()
	c, err := DialClient(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	m := &nfsc.Mount{Client: c}
	v, err := m.Mount(path, nfsrpc.NewAuthUnix("nfstest", uid, gid).Auth())
	if err != nil {
		c.Close()
		t.Fatalf("mount %s:%s: %v", addr, path, err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// RequireTool fails the test (it does not skip) when a client tool is
// missing: `make deps` installs them, and a missing client must not turn
// into a silently green run.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian libnfs-utils (`make deps`, or apt-get install -y libnfs-utils); this test needs a real NFS client", name)
	}
	return p
}

// LibnfsURL is a libnfs URL for path on addr, talking to NFS and MOUNT
// directly (no portmapper, no export traversal).
func LibnfsURL(addr, path string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "nfs://" + host + path + "?nfsport=" + port + "&mountport=" + port + "&auto-traverse-mounts=0"
}

// Run runs a client tool with a timeout and returns its combined output.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, RequireTool(t, name), args...).CombinedOutput()
	return string(out), err
}

// MustRun is Run that fails the test on error.
func MustRun(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := Run(t, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// Itoa is strconv.Itoa, for building URLs in tests.
func Itoa(i int) string { return strconv.Itoa(i) }

// DialClient connects go-nfs-client to addr. The client binds a random
// local port itself and fails when it is taken (connections of earlier
// tests linger in TIME_WAIT): retry a few times.
func DialClient(addr string) (*nfsrpc.Client, error) {
	var err error
	for range 20 {
		var c *nfsrpc.Client
		if c, err = nfsrpc.DialTCP("tcp", addr, false); err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, err
}
