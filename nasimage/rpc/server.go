package rpc

import (
	"github.com/nas-topology/nas-topology/nasimage/access"

	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nfs "github.com/willscott/go-nfs"
)

// Export describes the one directory tree a server exports.
type Export struct {
	// Path is the directory path clients mount (MOUNT dirpath), e.g. "/" or
	// the path the physical NAS exports, so that PVs are identical.
	Path string
	// Networks are the client networks allowed to mount and use NFS; empty
	// means everyone.
	Networks []netip.Prefix
	// ReadOnly makes every mutating NFS procedure answer NFS3ERR_ROFS.
	ReadOnly bool
	// Access is the squash mapping the callers' credentials are checked
	// with (by a Handles that also implements Attrs). Nil: no checks, every
	// caller may do what nasd's uid may (insecure_squash).
	Access *access.Mapping
}

// Allows reports whether a client address may use the export.
func (e Export) Allows(a netip.Addr) bool {
	if len(e.Networks) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range e.Networks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Handles is what the front door needs from the file handle codec.
type Handles interface {
	// MountHandle is the handle MNT answers for the export root (sub
	// empty) or a directory below it; errors are answered MNT3ERR_NOENT
	// (MNT3ERR_NOTDIR for syscall.ENOTDIR).
	MountHandle(sub []string) ([]byte, error)
	// Check verifies that fh is well formed and authentic. A non-nil error
	// with an NFSStatus() uint32 method selects the NFS status to answer
	// (NFS3ERR_BADHANDLE or NFS3ERR_STALE); other errors mean BADHANDLE.
	Check(fh []byte) error
}

// Config configures a Server.
type Config struct {
	Export Export
	// Handler is the go-nfs handler that serves NFSv3 calls.
	Handler nfs.Handler
	Handles Handles
	// Commit, if set, runs before an NFSv3 COMMIT is handed to go-nfs
	// (whose COMMIT does nothing): it makes the file's data durable.
	Commit func(fh []byte) error
	// NFSPort is the port the portmapper answers for NFS and MOUNT (the
	// Service port, 2049). Zero means the port of the NFS listener.
	NFSPort int
	// PortmapPort is the port the portmapper advertises for itself (111).
	PortmapPort int
	// AdvertiseHost is the host in RPCBIND universal addresses. Empty means
	// the local address of the connection the question came in on.
	AdvertiseHost string
	// MaxRecord bounds a reassembled RPC record. Zero means DefaultMaxRecord.
	MaxRecord int
	// Backends is the number of go-nfs connections, i.e. how many NFS calls
	// run at once. Zero means DefaultBackends.
	Backends int
	// WriteVerifier is the WRITE/COMMIT verifier; it must change when
	// the server restarts, so that clients resend the unstable writes a
	// crash may have lost. Zero means random (new on every start).
	WriteVerifier [8]byte
	// Data, if set, answers READ, WRITE, COMMIT and GETATTR in the front
	// door (after every check), instead of go-nfs.
	Data DataPath
	// MaxConns bounds open client connections (both ports together); a
	// connection beyond it is closed at once and counted. Zero means
	// DefaultMaxConns, negative means no limit.
	MaxConns int
	// IdleTimeout closes a connection that sends nothing for that long
	// while no call of it is in flight. Zero means DefaultIdleTimeout,
	// negative means never.
	IdleTimeout time.Duration
	// RecordTimeout bounds the time from a record's first byte to its last:
	// a client that stops half-way (slowloris) is disconnected. Zero means
	// DefaultRecordTimeout, negative means never.
	RecordTimeout time.Duration
	// Held: NFS calls but NULL answer NFS3ERR_JUKEBOX until Release, for
	// a server whose export is still being filled (a new pod's initial
	// sync). Static answers (GARBAGE_ARGS, BADHANDLE, ROFS) come first.
	Held    bool
	Logger  *slog.Logger
	Metrics *Metrics
}

const (
	// DefaultMaxRecord fits the largest WRITE FSINFO allows (MaxTransfer)
	// plus RPC and NFS headers.
	DefaultMaxRecord = MaxTransfer + 64<<10
	// DefaultBackends bounds concurrent NFS calls.
	DefaultBackends = 8
	// DefaultMaxConns bounds client connections: a NAS serves a few nodes,
	// each kernel client shares one connection per server.
	DefaultMaxConns = 1024
	// DefaultIdleTimeout is knfsd's: it closes a TCP connection idle for
	// 6 minutes (svc_age_temp_xprts); clients reconnect transparently.
	DefaultIdleTimeout = 6 * time.Minute
	// DefaultRecordTimeout bounds one record's arrival once it started,
	// and the sending of one reply.
	DefaultRecordTimeout = 30 * time.Second
	// maxConnCalls bounds the NFS calls of one connection in flight
	// (running or waiting to send their reply): past it the connection is
	// not read until one ends, so a client pipelining READs it does not
	// read the answers of holds at most this many replies (1 MiB each).
	maxConnCalls = 32
)

// Server is the RPC front door. Create it with NewServer, then call Serve
// (NFS port) and ServePortmap (portmapper port), and Shutdown to stop.
type Server struct {
	cfg      Config
	log      *slog.Logger
	m        *Metrics
	backends *backendPool
	recs     *recBufs
	fast     [nfsProcCount]bool // procedures cfg.Data answers
	verifier [8]byte
	mounts   mountTable
	nfsPort  atomic.Int32

	mu          sync.Mutex
	listeners   map[net.Listener]struct{}
	packetConns map[net.PacketConn]struct{}
	conns       map[*conn]struct{}
	connWG      sync.WaitGroup
	draining    atomic.Bool
	held        atomic.Bool // see Config.Held
}

// NewServer returns a front door for cfg.
func NewServer(cfg Config) *Server {
	if cfg.MaxRecord <= 0 {
		cfg.MaxRecord = DefaultMaxRecord
	}
	if cfg.Backends <= 0 {
		cfg.Backends = DefaultBackends
	}
	if cfg.PortmapPort == 0 {
		cfg.PortmapPort = 111
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RecordTimeout == 0 {
		cfg.RecordTimeout = DefaultRecordTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	cfg.Export.Path = cleanExportPath(cfg.Export.Path)
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		m:           cfg.Metrics,
		listeners:   map[net.Listener]struct{}{},
		packetConns: map[net.PacketConn]struct{}{},
		conns:       map[*conn]struct{}{},
	}
	s.nfsPort.Store(int32(cfg.NFSPort))
	s.held.Store(cfg.Held)
	s.recs = newRecBufs(cfg.MaxRecord)
	s.fast = fastProcs(cfg.Data)
	s.verifier = cfg.WriteVerifier
	if s.verifier == [8]byte{} {
		_, _ = rand.Read(s.verifier[:])
	}
	s.backends = newBackendPool(cfg.Handler, cfg.Backends, s.verifier)
	quietGoNFS()
	return s
}

// Release lets NFS calls through on a server started Held.
func (s *Server) Release() { s.held.Store(false) }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("rpc: server closed")

// Serve accepts NFS clients on l: NFSv3, MOUNT v3 and the portmapper.
func (s *Server) Serve(l net.Listener) error {
	if tcp, ok := l.Addr().(*net.TCPAddr); ok {
		s.nfsPort.CompareAndSwap(0, int32(tcp.Port))
	}
	return s.serve(l, false)
}

// ServePortmap accepts portmapper clients on l (only program 100000).
func (s *Server) ServePortmap(l net.Listener) error { return s.serve(l, true) }

func (s *Server) serve(l net.Listener, portmapOnly bool) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.draining.Load() {
				return ErrServerClosed
			}
			if !retryableAccept(err) {
				s.log.Error("listener failed, no longer accepting", "addr", l.Addr().String(), "err", err)
				return err
			}
			// As net/http: back off 5 ms, doubling up to 1 s. Running out
			// of file descriptors (EMFILE) is the usual cause; connections
			// closing free them.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.m.acceptErrors.Inc()
			s.log.Warn("accept failed, retrying", "addr", l.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c, refused := s.newConn(nc, portmapOnly)
		if c == nil {
			if refused {
				s.m.connErrors.WithLabelValues("limit").Inc()
				s.log.Debug("connection refused: limit reached", "peer", addrOf(nc.RemoteAddr()), "limit", s.cfg.MaxConns)
			}
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// retryableAccept reports whether an accept error is transient: resource
// exhaustion, an aborted handshake or a timeout. Anything else (the
// listener was closed, its socket is broken) ends Serve.
func retryableAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EAGAIN, syscall.EINTR, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// newConn registers a connection; nil means it must be closed (draining,
// or refused because the connection limit is reached).
func (s *Server) newConn(nc net.Conn, portmapOnly bool) (c *conn, refused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return nil, false
	}
	if s.cfg.MaxConns > 0 && len(s.conns) >= s.cfg.MaxConns {
		return nil, true
	}
	c = &conn{s: s, nc: nc, portmapOnly: portmapOnly, peer: addrOf(nc.RemoteAddr()), slots: make(chan struct{}, maxConnCalls), bigReads: make(chan struct{}, maxBigReads)}
	c.allowed = s.cfg.Export.Allows(c.peer)
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return c, false
}

// Conns is the number of open client connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

// Shutdown stops accepting connections, lets every call already read
// finish and be answered, then closes the connections and the go-nfs
// backends. If ctx ends first, connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	for pc := range s.packetConns {
		pc.Close()
	}
	for c := range s.conns {
		// Wake the reader: it stops reading new calls and waits for the
		// calls in flight before closing.
		_ = c.nc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.backends.close()
	return err
}

// conn is one client connection.
type conn struct {
	s           *Server
	nc          net.Conn
	peer        netip.Addr
	allowed     bool
	portmapOnly bool

	wmu sync.Mutex // serializes replies
	// send's replies wait in out (under outMu) while another call's send
	// writes; that one writes them all in its next writev (see send).
	outMu     sync.Mutex
	outDone   *sync.Cond // signalled when a batch is written
	out       net.Buffers
	spare     net.Buffers // the last batch's slice, for reuse
	writing   bool
	taken     uint64      // batches taken from out
	written   uint64      // batches written (or failed)
	wbufs     net.Buffers // write's writev (under wmu)
	inflight  sync.WaitGroup
	inflightN atomic.Int32
	queued    bool          // the reader holds more of the client's bytes (set by read, read by run)
	sock      *sockQueue    // the reader's view of the socket's receive queue
	sent      func() int    // bytes the client has sent that the reader can take without waiting
	br        *bufio.Reader // the client's bytes, read by one goroutine at a time (read)
	// A call the reader serves itself (see run) may take long (an fsync):
	// a timer that ticks every takeoverAfter while the reader serves calls
	// starts another reader if it finds the same call as a tick before.
	// reading is the reader's number (which one reads now) times 4 plus
	// readerInCall while it serves a call, else readerFree; calls counts
	// the calls it served; seen is calls at the last tick.
	takeover *time.Timer
	reading  atomic.Uint64
	calls    atomic.Uint64
	seen     atomic.Uint64
	ticking  atomic.Bool
	slots    chan struct{} // bounds the calls in flight (maxConnCalls)
	closing  atomic.Bool
	jobs     chan nfsJob   // to idle workers (see run)
	bigReads chan struct{} // bounds the large READ buffers in use (maxBigReads)
	idle     atomic.Int32
}

// maxBigReads bounds the READs of more than smallRead bytes a connection
// answers at once: each holds a MaxTransfer buffer, and a client with 32 in
// flight would otherwise hold 32 MiB of them (and the heap twice that until
// the GC runs). Eight already keep a loopback client at its peak rate.
const maxBigReads = 8

// maxIdleWorkers bounds the workers a connection keeps waiting for calls
// (more would be idle: at most maxConnCalls run at once).
const maxIdleWorkers = maxConnCalls

// run hands an NFS call to an idle worker of the connection, or starts
// one: the calls of a connection run concurrently, and a steady stream of
// them starts no goroutine (a goroutine per call costs an allocation).
// A data-path call with nothing else in flight and nothing read behind it
// (a client waiting for each answer) is served by the reader itself: that
// saves two goroutine switches per call. If it takes longer than
// takeoverAfter, another goroutine goes on reading (see read), so that a
// slow call (an fsync, an unlink of a large file) never holds up the calls
// that come while it runs.
func (c *conn) run(j nfsJob) {
	if !c.queued && c.inflightN.Load() == 1 && c.s.fast[j.call.Proc] {
		me := c.reading.Load() &^ 3 // only takeOver changes the number, never while free
		n := c.calls.Add(1)
		c.reading.Store(me | readerInCall)
		if !c.ticking.Load() && c.ticking.CompareAndSwap(false, true) {
			c.seen.Store(n)
			c.takeover.Reset(takeoverAfter)
		}
		c.s.nfsRun(c, j)
		c.reading.CompareAndSwap(me|readerInCall, me|readerFree)
		return
	}
	select {
	case c.jobs <- j:
	default:
		go c.worker(j)
	}
}

// takeoverAfter is how long the reader may serve a call itself before
// another goroutine reads the calls behind it (between one and two of it):
// longer than a data-path call takes on a healthy disk (a 64 KiB FILE_SYNC
// WRITE: about 0.2 ms), short enough that the calls behind a slow one wait
// little. The timer ticks while the reader serves calls, rather than being
// set for each: setting a timer can wake the thread waiting in the network
// poller, a cost on every call.
const takeoverAfter = time.Millisecond

const (
	readerFree = iota
	readerInCall
)

// newTakeoverTimer makes c's takeover timer, stopped.
func newTakeoverTimer(c *conn) *time.Timer {
	t := time.AfterFunc(time.Hour, c.takeOver)
	t.Stop()
	return t
}

// takeOver is the timer's tick: if the reader is in the call it was in a
// tick ago, the next reader goes on reading. The timer stops once the
// reader serves no more calls itself.
func (c *conn) takeOver() {
	v := c.reading.Load()
	n := c.calls.Load()
	last := c.seen.Swap(n)
	inCall := v&3 == readerInCall
	if inCall && last == n && c.reading.CompareAndSwap(v, v&^3+4|readerFree) {
		go c.read()
	}
	if inCall || last != n {
		c.takeover.Reset(takeoverAfter) // serving calls: tick on
		return
	}
	c.ticking.Store(false)
	// The reader may have started a call after the load above and seen the
	// timer still ticking: then it ticks on.
	if c.reading.Load()&3 == readerInCall && c.ticking.CompareAndSwap(false, true) {
		c.takeover.Reset(takeoverAfter)
	}
}

func (c *conn) worker(j nfsJob) {
	for {
		c.s.nfsRun(c, j)
		var ok bool
		if j, ok = c.nextJob(); !ok {
			return
		}
	}
}

// nextJob waits, as an idle worker, for a call; false when the connection
// has enough idle workers or is closed.
func (c *conn) nextJob() (nfsJob, bool) {
	if c.idle.Add(1) > maxIdleWorkers {
		c.idle.Add(-1)
		return nfsJob{}, false
	}
	j, ok := <-c.jobs
	c.idle.Add(-1)
	return j, ok
}

func (c *conn) serve() {
	s := c.s
	s.m.conns.Inc()
	s.m.connsTotal.Inc()
	if c.jobs == nil {
		c.jobs = make(chan nfsJob)
	}
	if !c.allowed && !c.portmapOnly {
		s.log.Debug("connection from outside the allowed networks", "peer", c.peer)
	}
	c.br = bufio.NewReaderSize(c.nc, 4<<10)
	c.sock = newSockQueue(c.nc)
	c.sent = func() int { return c.br.Buffered() + c.sock.queued() }
	c.takeover = newTakeoverTimer(c)
	c.read()
}

// read reads and dispatches the connection's calls until it ends, then
// closes it. Once another goroutine has taken over the reading (see run),
// it is a worker.
func (c *conn) read() {
	s := c.s
	me := c.reading.Load() >> 2
	for !s.draining.Load() && !c.closing.Load() {
		rec, buf, err := c.readRecord(c.br)
		if err != nil {
			c.readFailed(err)
			break
		}
		call, err := ParseCall(rec)
		if err != nil {
			s.recs.put(buf)
			s.m.connErrors.WithLabelValues("bad_call").Inc()
			s.log.Warn("closing connection: undecodable RPC call", "peer", c.peer, "err", err)
			break
		}
		c.queued = c.br.Buffered() > 0
		if !c.dispatch(call, rec, buf) {
			s.recs.put(buf)
		}
		if c.reading.Load()>>2 != me {
			if j, ok := c.nextJob(); ok {
				c.worker(j)
			}
			return
		}
	}
	c.takeover.Stop()
	c.inflight.Wait()
	close(c.jobs) // idle workers end
	c.nc.Close()
	s.m.conns.Dec()
	s.dropConn(c)
}

// readRecord waits up to the idle timeout for a record to start, then up
// to the record timeout for the rest of it. Shutdown wakes the reader by
// setting a past deadline: draining is checked again after each deadline
// is set, so a reset here cannot undo it.
func (c *conn) readRecord(br *bufio.Reader) ([]byte, *[]byte, error) {
	s := c.s
	if br.Buffered() == 0 {
		idle := s.cfg.IdleTimeout
		if idle > 0 && c.inflightN.Load() > 0 {
			// A call in flight is not idleness: wait for it as long as
			// go-nfs may take (plus the idle time after it).
			idle += backendTimeout
		}
		if err := c.setReadDeadline(idle); err != nil {
			return nil, nil, err
		}
		if _, err := br.Peek(1); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.draining.Load() {
				s.m.connErrors.WithLabelValues("idle").Inc()
				s.log.Debug("closing idle connection", "peer", c.peer, "idle", idle)
			}
			return nil, nil, err
		}
	}
	if err := c.setReadDeadline(s.cfg.RecordTimeout); err != nil {
		return nil, nil, err
	}
	rec, buf, err := s.recs.read(br, c.sent)
	if errors.Is(err, os.ErrDeadlineExceeded) && !s.draining.Load() {
		s.m.connErrors.WithLabelValues("record_timeout").Inc()
		s.log.Info("closing connection: record not completed in time", "peer", c.peer, "timeout", s.cfg.RecordTimeout)
	}
	return rec, buf, err
}

func (c *conn) setReadDeadline(d time.Duration) error {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	if err := c.nc.SetReadDeadline(t); err != nil {
		return err
	}
	if c.s.draining.Load() {
		return net.ErrClosed
	}
	return nil
}

func (c *conn) readFailed(err error) {
	s := c.s
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), s.draining.Load(), c.closing.Load(), errors.Is(err, net.ErrClosed):
		// a normal end (clients such as libnfs close with a reset)
	case errors.Is(err, ErrRecordTooLarge):
		s.m.connErrors.WithLabelValues("record_too_large").Inc()
		s.log.Warn("closing connection: record too large", "peer", c.peer, "err", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.m.connErrors.WithLabelValues("truncated").Inc()
		s.log.Info("connection ended inside a record", "peer", c.peer)
	case errors.Is(err, os.ErrDeadlineExceeded):
	default:
		s.m.connErrors.WithLabelValues("read").Inc()
		s.log.Debug("connection read error", "peer", c.peer, "err", err)
	}
}

// reply sends one reply record; replies of concurrent calls are serialized.
//
// A client that stops reading its replies is disconnected after the record
// timeout: its replies (up to maxConnCalls of 1 MiB) are not kept waiting.
func (c *conn) reply(rec ...[]byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if d := c.s.cfg.RecordTimeout; d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	if err := WriteRecord(c.nc, rec...); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.m.connErrors.WithLabelValues("reply_timeout").Inc()
			c.s.log.Info("closing connection: client does not read its replies", "peer", c.peer)
		}
		c.closing.Store(true)
		c.nc.Close()
	}
}

// send is reply for a record already framed (parts[0] starts with its
// record mark), without allocating. Replies of concurrent calls are
// written together: a send that finds another writing queues its parts
// and waits; the writer, once its writev is done, writes everything queued
// meanwhile in one more. Calls in flight on one connection then share
// writevs instead of taking turns for one each (a mutex profile at depth
// 32 showed them waiting for the write lock; on loopback a writev also
// runs the receiver's side of TCP).
func (c *conn) send(parts ...[]byte) {
	c.outMu.Lock()
	if c.outDone == nil {
		c.outDone = sync.NewCond(&c.outMu)
	}
	c.out = append(c.out, parts...)
	if c.writing {
		mine := c.taken + 1 // the batch after the one being written
		for c.written < mine {
			c.outDone.Wait()
		}
		c.outMu.Unlock()
		return
	}
	c.writing = true
	for len(c.out) > 0 {
		batch := c.out
		c.out, c.spare = c.spare[:0], nil
		c.taken++
		c.outMu.Unlock()
		c.write(batch)
		c.outMu.Lock()
		clear(batch) // the callers may reuse their buffers
		c.spare = batch[:0]
		c.written = c.taken
		c.outDone.Broadcast()
	}
	c.writing = false
	c.outMu.Unlock()
}

// write is one writev of bufs under the write lock.
func (c *conn) write(bufs net.Buffers) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if d := c.s.cfg.RecordTimeout; d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	c.wbufs = bufs // a field: WriteTo's receiver would escape
	_, err := c.wbufs.WriteTo(c.nc)
	c.wbufs = nil
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.m.connErrors.WithLabelValues("reply_timeout").Inc()
			c.s.log.Info("closing connection: client does not read its replies", "peer", c.peer)
		}
		c.closing.Store(true)
		c.nc.Close()
	}
}

// dispatch answers one call, in line for the front door's own programs and
// in a goroutine for NFS calls. It reports whether that goroutine took the
// record's buffer (buf, from recBufs.read) and will give it back.
func (c *conn) dispatch(call Call, rec []byte, buf *[]byte) bool {
	start := time.Now()
	if call.RPCVers != 2 {
		c.s.m.observe("rpc", "-", "RPC_MISMATCH", start)
		c.reply(rpcMismatchReply(call.XID))
		return false
	}
	switch {
	case call.Prog == progPortmap:
		rep, proc, status := c.s.portmap(c, call)
		c.s.m.observe("portmap", proc, status, start)
		c.reply(rep)
	case call.Prog == progMount && !c.portmapOnly:
		rep, proc, status := c.s.mount(c, call)
		c.s.m.observe("mount", proc, status, start)
		c.reply(rep)
	case call.Prog == progNFS && !c.portmapOnly:
		return c.s.nfs(c, call, rec, buf, start)
	default:
		c.s.m.observe("other", "-", "PROG_UNAVAIL", start)
		c.reply(acceptedReply(call.XID, acceptProgUnavail, nil))
	}
	return false
}

// addrOf extracts the IP of a connection address.
func addrOf(a net.Addr) netip.Addr {
	if tcp, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(tcp.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// cleanExportPath normalizes a MOUNT dirpath: absolute, no trailing
// slash, no "." or ".." (which cannot climb above "/").
func cleanExportPath(p string) string { return path.Clean("/" + p) }
