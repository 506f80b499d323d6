package rpc

import "encoding/binary"

// FSINFO: go-nfs advertises 1 GiB transfer sizes and no properties. Real
// clients then send WRITE records far beyond any sane bound, so the front
// door rewrites the answer to what NFS servers usually say: 1 MiB reads
// and writes (which MaxRecord fits) and symlink/homogeneous/settime
// support.

const (
	// MaxTransfer is the READ/WRITE size advertised in FSINFO.
	MaxTransfer = 1 << 20

	fsf3Symlink     = 0x2
	fsf3Homogeneous = 0x8
	fsf3CanSetTime  = 0x10
)

// patchFSInfo rewrites a successful FSINFO reply in place.
func patchFSInfo(rep []byte) {
	stat, body, ok := replyBody(rep)
	if !ok || stat != acceptSuccess {
		return
	}
	r := xdrReader{buf: body}
	if r.uint32() != nfs3OK {
		return
	}
	if r.uint32() == 1 { // post_op_attr present
		r.off += 84
	}
	// rtmax rtpref rtmult wtmax wtpref wtmult dtpref maxfilesize(8) time_delta(8) properties
	const words = 7*4 + 8 + 8 + 4
	if r.err != nil || len(body)-r.off < words {
		return
	}
	f := body[r.off:]
	put := func(i int, v uint32) { binary.BigEndian.PutUint32(f[4*i:], v) }
	put(0, MaxTransfer) // rtmax
	put(1, MaxTransfer) // rtpref
	put(3, MaxTransfer) // wtmax
	put(4, MaxTransfer) // wtpref
	binary.BigEndian.PutUint32(f[words-4:], fsf3Symlink|fsf3Homogeneous|fsf3CanSetTime)
}
