package rpc

import (
	"errors"
	"strings"
	"syscall"
)

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
	}
	sub, ok := s.belowExport(dir)
	if !ok {
		w.uint32(mnt3ErrNoEnt)
		return "NOENT"
	}
	fh, err := s.cfg.Handles.MountHandle(sub)
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		w.uint32(mnt3ErrNotDir)
		return "NOTDIR"
	case err != nil:
		w.uint32(mnt3ErrNoEnt)
		return "NOENT"
	}
	s.mounts.add(mountEntry{host: c.peer.String(), dir: cleanExportPath(dir)})
	w.uint32(mnt3OK)
	w.opaque(fh)
	// Auth flavors: AUTH_UNIX (what kernel clients use by default) and
	// AUTH_NULL; go-nfs accepts both.
	w.uint32(2)
	w.uint32(1)
	w.uint32(0)
	return "OK"
}

// belowExport splits a MOUNT dirpath into components below the export
// path; ok is false when it is not the export or inside it.
func (s *Server) belowExport(dir string) (sub []string, ok bool) {
	dir, root := cleanExportPath(dir), s.cfg.Export.Path
	switch {
	case dir == root:
		return nil, true
	case root == "/":
		return strings.Split(dir[1:], "/"), true
	case strings.HasPrefix(dir, root+"/"):
		return strings.Split(dir[len(root)+1:], "/"), true
	}
	return nil, false
}
