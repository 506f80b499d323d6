package rpc

// MOUNTPROC3_DUMP: the list of (client, directory) that mounted.
func (s *Server) mountDump(w *xdrWriter) string {
	for _, e := range s.mounts.list() {
		w.bool(true)
		w.string(e.host)
		w.string(e.dir)
	}
	w.bool(false)
	return "OK"
}
