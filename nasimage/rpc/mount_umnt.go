package rpc

// MOUNTPROC3_UMNT: forget one mount of the calling client.
func (s *Server) mountUmnt(c *conn, r *xdrReader) string {
	dir := r.string(mountPathLen)
	if r.err != nil {
		return ""
	}
	host, dir := c.peer.String(), cleanExportPath(dir)
	s.mounts.remove(func(e mountEntry) bool { return e.host == host && e.dir == dir })
	return "OK"
}

// MOUNTPROC3_UMNTALL: forget every mount of the calling client.
func (s *Server) mountUmntAll(c *conn) string {
	host := c.peer.String()
	s.mounts.remove(func(e mountEntry) bool { return e.host == host })
	return "OK"
}
