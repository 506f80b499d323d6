package rpc

// MOUNTPROC3_MNT: check the client and the path, answer the root handle.
func (s *Server) mountMnt(c *conn, r *xdrReader, w *xdrWriter) string {
	dir := r.string(mountPathLen)
	if r.err != nil {
		return ""
	}
	switch {
	case !c.allowed:
		s.log.Info("MOUNT refused: client outside the allowed networks", "peer", c.peer, "dir", dir)
		w.uint32(mnt3ErrAcces)
		return "ACCES"
	case cleanExportPath(dir) != s.cfg.Export.Path:
		w.uint32(mnt3ErrNoEnt)
		return "NOENT"
	}
	s.mounts.add(mountEntry{host: c.peer.String(), dir: s.cfg.Export.Path})
	w.uint32(mnt3OK)
	w.opaque(s.cfg.Handles.Root())
	// Auth flavors: AUTH_UNIX (what kernel clients use by default) and
	// AUTH_NULL; go-nfs accepts both.
	w.uint32(2)
	w.uint32(1)
	w.uint32(0)
	return "OK"
}
