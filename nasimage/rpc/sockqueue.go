package rpc

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sockQueue tells how many bytes a client has sent that wait in the
// kernel's receive queue (SIOCINQ): what a record reader may take a buffer
// for without holding memory the client has only announced.
type sockQueue struct {
	rc  syscall.RawConn
	n   int
	inq func(fd uintptr) // made once: a closure per call would allocate
}

// newSockQueue returns nil for a connection that is no socket (tests'
// pipes): its queue reads as empty.
func newSockQueue(nc net.Conn) *sockQueue {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	q := &sockQueue{rc: rc}
	q.inq = func(fd uintptr) {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			n = 0
		}
		q.n = n
	}
	return q
}

// queued is the number of bytes readable without waiting (0 when unknown).
func (q *sockQueue) queued() int {
	if q == nil {
		return 0
	}
	q.n = 0
	if q.rc.Control(q.inq) != nil {
		return 0
	}
	return q.n
}
