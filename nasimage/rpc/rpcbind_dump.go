package rpc

import "time"

// RPCBPROC_DUMP (v3, v4): every registered mapping as rpcb entries.
func (s *Server) rpcbDump(c *conn, w *xdrWriter) {
	netid := netidFor(c)
	for _, m := range s.mappings() {
		w.bool(true)
		w.uint32(m.prog)
		w.uint32(m.vers)
		w.string(netid)
		w.string(s.universalAddr(c, m.port))
		w.string("nasd")
	}
	w.bool(false)
}

// RPCBPROC_GETTIME (v3, v4): the server's time in seconds.
func (s *Server) rpcbGetTime(w *xdrWriter) { w.uint32(uint32(time.Now().Unix())) }
