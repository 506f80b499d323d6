package rpc

import (
	"encoding/binary"

	"github.com/nas-topology/nas-topology/nasimage/fattr"
)

// Lister is a DataPath that also answers READDIR and READDIRPLUS.
type Lister interface {
	// List returns the listing of the directory dir a call with cookie
	// and verf continues (see fattr.Listing) and fills da with the
	// directory's attributes.
	List(dir []byte, cookie, verf uint64, da *fattr.Attr) (*fattr.Listing, error)
}

const (
	nfsProcReaddir     = 16
	nfsProcReaddirplus = 17

	nfs3ErrBadCookie = 10003
	nfs3ErrTooSmall  = 10005
)

// readdir answers READDIR and READDIRPLUS (RFC 1813) into fb: the reply
// header and the directory's attributes in fb.hdr[:n], the entries and
// eof in fb.data[:m]. Cookies and the verifier are go-nfs's (v0.0.4): a
// cookie that continues a listing whose verifier is no longer the
// directory's is BAD_COOKIE. The reply (status to eof) is at most maxcount
// bytes and the entries' fileids, names and cookies at most dircount
// (READDIRPLUS); TOOSMALL if not even the first entry fits.
func (s *Server) readdir(call Call, fh []byte, fb *fastBuf) (n, m int, status uint32) {
	plus := call.Proc == nfsProcReaddirplus
	r := xdrReader{buf: call.Args}
	r.opaque(nfs3FHSize)
	cookie, verf := r.uint64(), r.uint64()
	dircount := uint32(MaxTransfer)
	if plus {
		dircount = r.uint32()
	}
	maxcount := int(r.uint32()) // at most MaxTransfer (clampCounts)
	l, err := s.cfg.Data.(Lister).List(fh, cookie, verf, &fb.post)
	if err != nil {
		return 0, 0, errStatus(err, nfs3ErrIO)
	}
	if cookie > 0 && verf != 0 && l.Verifier != verf {
		return 0, 0, nfs3ErrBadCookie
	}
	be := binary.BigEndian
	n = replyHeader(fb.hdr[:], call.XID)
	be.PutUint32(fb.hdr[n:], nfs3OK)
	be.PutUint32(fb.hdr[n+4:], 1)
	fb.post.Put(fb.hdr[n+8:])
	n += 8 + fattr.Size
	be.PutUint64(fb.hdr[n:], l.Verifier)
	n += 8
	// What is left of maxcount for the entries, less the list's end
	// (value_follows false, eof).
	room := min(maxcount-(4+4+fattr.Size+8), len(fb.data)) - 8
	b := fb.data
	dirBytes := 0
	sent := 0
	var a fattr.Attr
	// put appends one entry if it fits; false: it does not.
	put := func(fileid uint64, name string, cookie uint64, attr *fattr.Attr, handle []byte) bool {
		pad := (4 - len(name)%4) % 4
		size := 4 + 8 + 4 + len(name) + pad + 8
		d := size - 4
		if plus {
			size += 4 + 4
			if attr != nil {
				size += fattr.Size
			}
			if handle != nil {
				size += 4 + len(handle) + (4-len(handle)%4)%4
			}
		}
		if m+size > room || (sent > 0 && dirBytes+d > int(dircount)) {
			return false
		}
		dirBytes += d
		be.PutUint32(b[m:], 1)
		be.PutUint64(b[m+4:], fileid)
		be.PutUint32(b[m+12:], uint32(len(name)))
		m += 16 + copy(b[m+16:], name)
		m += copy(b[m:], zeroPad[:pad])
		be.PutUint64(b[m:], cookie)
		m += 8
		if plus {
			m = putOptional(b, m, attr, handle)
		}
		sent++
		return true
	}
	eof := true
	start := 0
	if cookie == 0 {
		// "." with its attributes, ".." with its fileid, neither with a
		// handle (as go-nfs; ".." of the export root is the root, as
		// knfsd answers LOOKUP "..").
		var da *fattr.Attr
		if plus {
			da = &fb.post
		}
		if !put(fb.post.FileID, ".", 0, da, nil) || !put(l.Parent, "..", 1, nil, nil) {
			return 0, 0, nfs3ErrTooSmall // a client would start over
		}
	} else {
		start = int(min(cookie-1, uint64(len(l.Names)))) // cookie 1: after ".."
	}
	for i := start; eof && i < len(l.Names); i++ {
		name := l.Names[i]
		var ok bool
		var fileid uint64
		var handle []byte
		if plus {
			if m+4+8+4+len(name)+8+8+fattr.Size > room || (sent > 0 && dirBytes+20+len(name) > int(dircount)) {
				eof = false // cannot fit: do not resolve it
				break
			}
			handle, ok = l.Entry(name, &a)
			fileid = a.FileID
		} else {
			fileid, ok = l.FileID(name)
		}
		if !ok {
			continue // gone since the listing was read
		}
		eof = put(fileid, name, uint64(i+2), &a, handle)
	}
	if sent == 0 && !eof {
		return 0, 0, nfs3ErrTooSmall
	}
	if room < m {
		return 0, 0, nfs3ErrTooSmall // not even the list's end fits
	}
	be.PutUint32(b[m:], 0)
	be.PutUint32(b[m+4:], b2u(eof))
	return n, m + 8, nfs3OK
}

// putOptional writes READDIRPLUS's name_attributes and name_handle.
func putOptional(b []byte, m int, attr *fattr.Attr, handle []byte) int {
	be := binary.BigEndian
	be.PutUint32(b[m:], b2u(attr != nil))
	m += 4
	if attr != nil {
		attr.Put(b[m:])
		m += fattr.Size
	}
	be.PutUint32(b[m:], b2u(handle != nil))
	m += 4
	if handle != nil {
		be.PutUint32(b[m:], uint32(len(handle)))
		m += 4 + copy(b[m+4:], handle)
		m += copy(b[m:], zeroPad[:(4-len(handle)%4)%4])
	}
	return m
}

// readdirBuf is the size of the buffer a READDIR or READDIRPLUS reply
// needs: its count (maxcount).
func readdirBuf(call Call) int {
	r := xdrReader{buf: call.Args}
	r.opaque(nfs3FHSize)
	r.off += 16 // cookie, verifier
	if call.Proc == nfsProcReaddirplus {
		r.uint32()
	}
	return int(r.uint32())
}
