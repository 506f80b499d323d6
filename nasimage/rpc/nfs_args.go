package rpc

// checkNFSArgs decodes the arguments of an NFSv3 call (RFC 1813) without
// keeping them, so that go-nfs only ever sees well-formed calls. go-nfs
// allocates whatever length an opaque announces before reading it: a
// LOOKUP naming a 1.5 GB "filename" made it allocate 1.5 GB. Here every
// length must fit in the record and in its protocol bound.
func checkNFSArgs(proc uint32, args []byte) bool {
	r := xdrReader{buf: args}
	fh := func() { r.opaque(nfs3FHSize) }
	name := func() { r.opaque(nfsNameMax) }
	dirop := func() { fh(); name() }
	switch proc {
	case 1, 5, 18, 19, 20: // GETATTR READLINK FSSTAT FSINFO PATHCONF
		fh()
	case 2: // SETATTR
		fh()
		sattr3(&r)
		if r.uint32() != 0 { // guard
			r.uint64()
		}
	case 3, 12, 13: // LOOKUP REMOVE RMDIR
		dirop()
	case 4: // ACCESS
		fh()
		r.uint32()
	case 6, 21: // READ COMMIT
		fh()
		r.uint64()
		r.uint32()
	case 7: // WRITE
		fh()
		r.uint64()
		r.uint32()
		r.uint32()
		r.opaque(len(args))
	case 8: // CREATE
		dirop()
		switch r.uint32() {
		case 0, 1: // UNCHECKED, GUARDED
			sattr3(&r)
		case 2: // EXCLUSIVE: the verifier
			r.uint64()
		default: // not a createmode3 (knfsd: GARBAGE_ARGS)
			return false
		}
	case 9: // MKDIR
		dirop()
		sattr3(&r)
	case 10: // SYMLINK
		dirop()
		sattr3(&r)
		r.opaque(nfsPathMax)
	case 11: // MKNOD
		dirop()
		switch r.uint32() {
		case 3, 4: // BLK, CHR
			sattr3(&r)
			r.uint64()
		case 6, 7: // SOCK, FIFO
			sattr3(&r)
		}
	case 14: // RENAME
		dirop()
		dirop()
	case 15: // LINK
		fh()
		dirop()
	case 16: // READDIR
		fh()
		r.uint64()
		r.uint64()
		r.uint32()
	case 17: // READDIRPLUS
		fh()
		r.uint64()
		r.uint64()
		r.uint32()
		r.uint32()
	}
	return r.err == nil
}

const (
	nfsNameMax = 1024 // a file name (one component)
	nfsPathMax = 4096 // a symlink target
)

// sattr3 skips a sattr3: optional mode, uid, gid, size, atime, mtime.
func sattr3(r *xdrReader) {
	for range 3 { // mode, uid, gid
		if r.uint32() != 0 {
			r.uint32()
		}
	}
	if r.uint32() != 0 { // size
		r.uint64()
	}
	for range 2 { // atime, mtime: DONT_CHANGE, SET_TO_SERVER_TIME, SET_TO_CLIENT_TIME
		if r.uint32() == 2 {
			r.uint64()
		}
	}
}
