package rpc

// RPCBPROC_GETADDR (v3, v4) and RPCBPROC_GETVERSADDR (v4): the universal
// address of (program, version) on the client's netid, or "" when not
// registered (e.g. for udp).
func (s *Server) rpcbGetAddr(c *conn, r *xdrReader, w *xdrWriter) {
	prog, vers := r.uint32(), r.uint32()
	netid := r.string(mountNameLen)
	r.string(mountNameLen) // r_addr: ignored
	r.string(mountNameLen) // r_owner: ignored
	port := s.lookupPort(prog, vers)
	if port == 0 || (netid != "tcp" && netid != "tcp6") {
		w.string("")
		return
	}
	w.string(s.universalAddr(c, port))
}
