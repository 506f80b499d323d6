package rpc

import (
	"io/fs"
	"time"
)

// LINK (RFC 1813 3.3.15) is answered by the front door: go-nfs decodes
// LINK3args with SYMLINK's layout. LINK3args: the file's handle (checked
// by the caller), then the directory's handle and the new name (valid, not
// a dot: checked by the caller). LINK3res carries post_op_attr and
// wcc_data in both outcomes; nasd sends them empty (clients revalidate).
func (s *Server) nfsLink(c *conn, call Call, obj Objects, start time.Time) {
	r := xdrReader{buf: call.Args}
	fh := r.opaque(nfs3FHSize)
	dir := r.opaque(nfs3FHSize)
	name := r.string(nfsNameMax)
	status := uint32(nfs3OK)
	if err := s.cfg.Handles.Check(dir); err != nil {
		status = errStatus(err, nfs3ErrBadHandl)
	} else if st := objectStatus(obj, dir, fs.ModeDir); st != nfs3OK {
		status = st
	} else if err := obj.Link(fh, dir, name); err != nil {
		status = errStatus(err, nfs3ErrIO)
	}
	s.m.observe("nfs", "LINK", nfsStatusName(status), start)
	c.reply(nfsFailure(call.XID, nfsProcLink, status))
}
