package rpc

import (
	"net"
	"time"
)

// ServePortmapUDP answers portmapper calls arriving as UDP datagrams on pc
// (one call per datagram, no record marking). Some clients ask the
// portmapper over UDP before they mount over TCP; the answers are the same
// TCP mappings (a UDP lookup answers 0: nothing is served over UDP).
func (s *Server) ServePortmapUDP(pc net.PacketConn) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	}
	s.packetConns[pc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.packetConns, pc)
		s.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if s.draining.Load() {
				return ErrServerClosed
			}
			return err
		}
		start := time.Now()
		call, err := ParseCall(buf[:n])
		if err != nil {
			continue // nothing to answer a garbage datagram with
		}
		c := &conn{s: s, nc: datagramPeer{local: pc.LocalAddr(), remote: from}, peer: addrOf(from), portmapOnly: true}
		var rep []byte
		switch {
		case call.RPCVers != 2:
			rep = rpcMismatchReply(call.XID)
		case call.Prog == progPortmap:
			var proc, status string
			rep, proc, status = s.portmap(c, call)
			s.m.observe("portmap", proc, status, start)
		default:
			rep = acceptedReply(call.XID, acceptProgUnavail, nil)
		}
		_, _ = pc.WriteTo(rep, from)
	}
}

// datagramPeer gives the portmapper procedures the addresses of a UDP
// exchange through the net.Conn methods they use.
type datagramPeer struct {
	net.Conn
	local, remote net.Addr
}

func (d datagramPeer) LocalAddr() net.Addr  { return d.local }
func (d datagramPeer) RemoteAddr() net.Addr { return d.remote }
