package nfsfs

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path"
	"sort"
	"syscall"

	"github.com/nas-topology/nas-topology/nasimage/fattr"
	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// List opens the directory dir for READDIR and READDIRPLUS (rpc.Lister)
// with go-nfs's (v0.0.4) cookies: the entries sorted by name, entry i's
// cookie i+2 ("." 0, ".." 1). A call that continues a listing (cookie > 0)
// with a verifier gets that listing while it is remembered (the kernel
// client's pages stay consistent while the directory changes); cookie 0
// reads the directory anew. da gets the directory's attributes.
func (h *Handler) List(dir []byte, cookie, verf uint64, da *fattr.Attr) (*fattr.Listing, error) {
	did, err := h.codec.Decode(dir)
	if err != nil {
		return nil, ErrStale
	}
	drel, ok := h.index.lookup(did)
	if !ok {
		return nil, ErrStale
	}
	dp, err := h.fs.resolve(drel, false)
	if err != nil {
		return nil, ErrStale
	}
	// Remembered by verifier and directory: another directory's verifier
	// is BAD_COOKIE, not that directory's names.
	var names []string
	if cookie > 0 && verf != 0 {
		names = h.names.get(verf ^ did.Number())
	}
	if names == nil {
		f, err := os.Open(dp)
		if err != nil {
			return nil, readDirErr(err)
		}
		names, err = f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, readDirErr(err)
		}
		sort.Strings(names)
		verf = listVerifier(did, names)
		h.names.put(verf^did.Number(), names)
	}
	// After the read, as go-nfs and knfsd (it may change the atime).
	if err := h.statHost(did, dp, da); err != nil {
		return nil, err
	}
	l := &fattr.Listing{Names: names, Verifier: verf, Parent: did.Number()}
	if drel != "" {
		if p, ok := h.parentID(drel); ok {
			l.Parent = p
		}
	}
	// An entry as LOOKUP gives it: the identity kept (the client holds
	// its handle), the attributes GETATTR shows.
	l.Entry = func(name string, a *fattr.Attr) ([]byte, bool) {
		rel := path.Join(drel, name)
		id, err := fileid.Get(h.root, rel)
		if err != nil {
			return nil, false
		}
		if err := h.statHost(id, dp+"/"+name, a); err != nil {
			return nil, false
		}
		h.index.put(id, rel)
		return h.codec.Encode(id), true
	}
	// READDIR's fileid, without keeping an identity (as go-nfs's attrs).
	l.FileID = func(name string) (uint64, bool) {
		id, err := fileid.Peek(h.root, path.Join(drel, name))
		return id.Number(), err == nil
	}
	return l, nil
}

// parentID is the fileid of the directory above drel.
func (h *Handler) parentID(drel string) (uint64, bool) {
	prel := path.Dir(drel)
	if prel == "." {
		prel = ""
	}
	id, err := fileid.Peek(h.root, prel)
	return id.Number(), err == nil
}

// readDirErr is go-nfs's status for a directory it cannot read: ACCES
// for a permission error, else NOTDIR.
func readDirErr(err error) error {
	if os.IsPermission(err) {
		return statusErr(syscall.EACCES)
	}
	return statusErr(syscall.ENOTDIR)
}

// listVerifier names a listing: the directory's identity and its names
// (a listing with the same names pages the same way). Never 0, which
// means "no verifier".
func listVerifier(did FileID, names []string) uint64 {
	sum := sha256.New()
	sum.Write(did[:])
	for _, n := range names {
		sum.Write([]byte(n))
		sum.Write([]byte{0})
	}
	v := binary.BigEndian.Uint64(sum.Sum(nil))
	if v == 0 {
		v = 1
	}
	return v
}
