package rpc

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"

	nfs "github.com/willscott/go-nfs"
)

// backendPool runs one go-nfs server and talks to it over in-memory
// connections. go-nfs answers the calls of one connection one at a time,
// so the pool keeps up to size connections and gives each call a free one:
// that is how calls arriving on one client connection run concurrently.
type backendPool struct {
	lis   *pipeListener
	slots chan struct{} // one token per open backend connection
	idle  chan *backendConn

	mu     sync.Mutex
	all    map[*backendConn]struct{}
	closed bool
}

// backendTimeout bounds one call inside go-nfs. go-nfs can stop reading a
// connection without closing it (on a request it cannot parse); the
// deadline turns that into an error instead of a stuck goroutine.
const backendTimeout = 2 * time.Minute

// maxBackendReply bounds a go-nfs reply (a READ of at most rtmax plus
// headers; clients ask for 1 MiB at most).
const maxBackendReply = 64 << 20

func newBackendPool(h nfs.Handler, size int, verifier [8]byte) *backendPool {
	p := &backendPool{
		lis:   &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})},
		slots: make(chan struct{}, size),
		idle:  make(chan *backendConn, size),
		all:   map[*backendConn]struct{}{},
	}
	srv := &nfs.Server{Handler: h, ID: verifier}
	go func() { _ = srv.Serve(p.lis) }()
	return p
}

var errPoolClosed = errors.New("rpc: go-nfs backend closed")

// acquire returns a free backend connection, opening one if fewer than
// size are open, else waiting for one to be released.
func (p *backendPool) acquire() (*backendConn, error) {
	select {
	case bc := <-p.idle:
		return bc, nil
	default:
	}
	select {
	case bc := <-p.idle:
		return bc, nil
	case p.slots <- struct{}{}:
		bc, err := p.open()
		if err != nil {
			<-p.slots
		}
		return bc, err
	case <-p.lis.done:
		return nil, errPoolClosed
	}
}

func (p *backendPool) open() (*backendConn, error) {
	ours, theirs := net.Pipe()
	select {
	case p.lis.conns <- theirs:
	case <-p.lis.done:
		return nil, errPoolClosed
	}
	bc := &backendConn{nc: ours, br: bufio.NewReaderSize(ours, 8<<10)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ours.Close()
		return nil, errPoolClosed
	}
	p.all[bc] = struct{}{}
	return bc, nil
}

// release gives bc back; a connection that failed is closed instead.
func (p *backendPool) release(bc *backendConn, healthy bool) {
	if healthy {
		p.idle <- bc // never blocks: at most size connections exist
		return
	}
	p.mu.Lock()
	delete(p.all, bc)
	p.mu.Unlock()
	bc.nc.Close()
	<-p.slots
}

func (p *backendPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.lis.Close()
	for bc := range p.all {
		bc.nc.Close()
	}
}

type backendConn struct {
	nc net.Conn
	br *bufio.Reader
}

// roundTrip sends one call record to go-nfs and returns its reply record.
func (bc *backendConn) roundTrip(rec []byte) ([]byte, error) {
	if err := bc.nc.SetDeadline(time.Now().Add(backendTimeout)); err != nil {
		return nil, err
	}
	if err := WriteRecord(bc.nc, rec); err != nil {
		return nil, err
	}
	return ReadRecord(bc.br, maxBackendReply)
}

// pipeListener hands in-memory connections to go-nfs's accept loop.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "go-nfs" }

// quietGoNFS stops go-nfs from logging every refused call on stderr: the
// front door logs with slog and counts in metrics.
func quietGoNFS() { nfs.Log.SetLevel(nfs.FatalLevel) }
