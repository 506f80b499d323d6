package rpc

// MOUNTPROC3_EXPORT: the export list (`showmount -e`), with the networks
// allowed to mount it ("*" for everyone).
func (s *Server) mountExport(w *xdrWriter) string {
	w.bool(true)
	w.string(s.cfg.Export.Path)
	if len(s.cfg.Export.Networks) == 0 {
		w.bool(true)
		w.string("*")
	}
	for _, n := range s.cfg.Export.Networks {
		w.bool(true)
		w.string(n.String())
	}
	w.bool(false) // end of groups
	w.bool(false) // end of exports
	return "OK"
}
