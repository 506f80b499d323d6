package rpc

// PMAPPROC_DUMP (v2): every registered mapping.
func (s *Server) pmapDump(w *xdrWriter) {
	for _, m := range s.mappings() {
		w.bool(true)
		w.uint32(m.prog)
		w.uint32(m.vers)
		w.uint32(ipprotoTCP)
		w.uint32(m.port)
	}
	w.bool(false)
}
