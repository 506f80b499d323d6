package rpc

// PMAPPROC_GETPORT (v2): the TCP port of (program, version); 0 when not
// registered, and for UDP, which this server does not serve.
func (s *Server) pmapGetPort(r *xdrReader, w *xdrWriter) {
	prog, vers, prot := r.uint32(), r.uint32(), r.uint32()
	r.uint32() // port: ignored
	if prot != ipprotoTCP {
		w.uint32(0)
		return
	}
	w.uint32(s.lookupPort(prog, vers))
}
