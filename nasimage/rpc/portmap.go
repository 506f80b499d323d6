package rpc

import (
	"fmt"
	"net/netip"
)

// Portmapper (RFC 1833): PMAP v2 and RPCBIND v3/v4, answering for the
// programs this server serves. Registration (SET/UNSET) is refused: the
// table is fixed.

const (
	pmapProcNull    = 0
	pmapProcSet     = 1
	pmapProcUnset   = 2
	pmapProcGetPort = 3
	pmapProcDump    = 4

	rpcbProcGetAddr     = 3
	rpcbProcDump        = 4
	rpcbProcGetTime     = 6
	rpcbProcGetVersAddr = 9 // v4 only

	ipprotoTCP = 6
)

// mapping is one registered (program, version) on TCP.
type mapping struct{ prog, vers, port uint32 }

// mappings lists what the portmapper advertises: NFS v3 and MOUNT v1-v3 on
// the advertised NFS port, and the portmapper itself.
func (s *Server) mappings() []mapping {
	nfsPort := uint32(s.nfsPort.Load())
	pm := uint32(s.cfg.PortmapPort)
	return []mapping{
		{progPortmap, 4, pm}, {progPortmap, 3, pm}, {progPortmap, 2, pm},
		{progNFS, 3, nfsPort},
		{progMount, 1, nfsPort}, {progMount, 2, nfsPort}, {progMount, 3, nfsPort},
	}
}

func (s *Server) lookupPort(prog, vers uint32) uint32 {
	for _, m := range s.mappings() {
		if m.prog == prog && m.vers == vers {
			return m.port
		}
	}
	return 0
}

var (
	pmapProcNames = [...]string{"NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"}
	rpcbProcNames = [...]string{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT", "GETTIME",
		"UADDR2TADDR", "TADDR2UADDR", "GETVERSADDR", "INDIRECT", "GETADDRLIST", "GETSTAT"}
)

// portmap answers one call to program 100000.
func (s *Server) portmap(c *conn, call Call) (rep []byte, proc, status string) {
	names := rpcbProcNames[:]
	if call.Vers == 2 {
		names = pmapProcNames[:]
	}
	if call.Vers < 2 || call.Vers > 4 {
		return progMismatchReply(call.XID, 2, 4), "-", "PROG_MISMATCH"
	}
	if int(call.Proc) < len(names) {
		proc = names[call.Proc]
	}
	r := xdrReader{buf: call.Args}
	var w xdrWriter
	switch {
	case call.Proc == pmapProcNull:
	case call.Proc == pmapProcSet || call.Proc == pmapProcUnset:
		w.bool(false)
	case call.Vers == 2 && call.Proc == pmapProcGetPort:
		s.pmapGetPort(&r, &w)
	case call.Vers == 2 && call.Proc == pmapProcDump:
		s.pmapDump(&w)
	case call.Vers > 2 && (call.Proc == rpcbProcGetAddr || call.Vers == 4 && call.Proc == rpcbProcGetVersAddr):
		s.rpcbGetAddr(c, &r, &w)
	case call.Vers > 2 && call.Proc == rpcbProcDump:
		s.rpcbDump(c, &w)
	case call.Vers > 2 && call.Proc == rpcbProcGetTime:
		s.rpcbGetTime(&w)
	default:
		return acceptedReply(call.XID, acceptProcUnavail, nil), proc, "PROC_UNAVAIL"
	}
	if r.err != nil {
		return acceptedReply(call.XID, acceptGarbageArgs, nil), proc, "GARBAGE_ARGS"
	}
	return successReply(call.XID, w.buf), proc, "OK"
}

// universalAddr formats an RPCBIND universal address "h1.h2.h3.h4.p1.p2"
// (IPv6: "addr.p1.p2"), with the host clients should connect to.
func (s *Server) universalAddr(c *conn, port uint32) string {
	host := s.cfg.AdvertiseHost
	if host == "" {
		host = addrOf(c.nc.LocalAddr()).String()
		if a, err := netip.ParseAddr(host); err != nil || !a.IsValid() {
			host = "0.0.0.0"
		}
	}
	return fmt.Sprintf("%s.%d.%d", host, port>>8, port&0xff)
}

// netidFor reports the netid of connections to this server: "tcp" or
// "tcp6", from the connection's local address.
func netidFor(c *conn) string {
	if a := addrOf(c.nc.LocalAddr()); a.Is6() {
		return "tcp6"
	}
	return "tcp"
}
