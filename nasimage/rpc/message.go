package rpc

import (
	"errors"
)

// ONC RPC v2 message layer (RFC 5531): call decoding and reply encoding.

const (
	msgCall  = 0
	msgReply = 1

	replyAccepted = 0
	replyDenied   = 1

	// accept_stat
	acceptSuccess      = 0
	acceptProgUnavail  = 1
	acceptProgMismatch = 2
	acceptProcUnavail  = 3
	acceptGarbageArgs  = 4
	acceptSystemErr    = 5

	// reject_stat
	rejectRPCMismatch = 0
	rejectAuthError   = 1

	// auth_stat
	authTooWeak = 5

	maxAuthBody = 400 // RFC 5531: opaque_auth body is at most 400 bytes
)

// Program numbers served on the NFS port.
const (
	progPortmap = 100000
	progNFS     = 100003
	progMount   = 100005
)

// Call is a decoded RPC call header plus its undecoded arguments.
type Call struct {
	XID     uint32
	RPCVers uint32
	Prog    uint32
	Vers    uint32
	Proc    uint32
	Cred    Auth
	Verf    Auth
	Args    []byte // aliases the record
}

// Auth is an opaque_auth: a flavor and its body.
type Auth struct {
	Flavor uint32
	Body   []byte
}

// errNotCall means the record is not an RPC call (a reply, or garbage).
var errNotCall = errors.New("rpc: record is not a call")

// ParseCall decodes the call header of a record. Errors mean the record
// cannot be answered at all (no XID or not a call); an unsupported RPC
// version is reported by the caller from Call.RPCVers.
func ParseCall(rec []byte) (Call, error) {
	r := xdrReader{buf: rec}
	var c Call
	c.XID = r.uint32()
	if t := r.uint32(); r.err == nil && t != msgCall {
		return c, errNotCall
	}
	c.RPCVers = r.uint32()
	c.Prog = r.uint32()
	c.Vers = r.uint32()
	c.Proc = r.uint32()
	c.Cred.Flavor = r.uint32()
	c.Cred.Body = r.opaque(maxAuthBody)
	c.Verf.Flavor = r.uint32()
	c.Verf.Body = r.opaque(maxAuthBody)
	c.Args = r.rest()
	return c, r.err
}

// acceptedReply builds a MSG_ACCEPTED reply with an AUTH_NULL verifier.
func acceptedReply(xid, stat uint32, body []byte) []byte {
	w := xdrWriter{buf: make([]byte, 0, 24+len(body))}
	w.uint32(xid)
	w.uint32(msgReply)
	w.uint32(replyAccepted)
	w.uint32(0) // verifier flavor AUTH_NULL
	w.uint32(0) // verifier length
	w.uint32(stat)
	w.buf = append(w.buf, body...)
	return w.buf
}

// successReply is an accepted SUCCESS reply carrying body.
func successReply(xid uint32, body []byte) []byte { return acceptedReply(xid, acceptSuccess, body) }

// progMismatchReply tells the client which versions of the program exist,
// so that it can negotiate (e.g. fall back to NFSv3).
func progMismatchReply(xid, low, high uint32) []byte {
	w := xdrWriter{}
	w.uint32(low)
	w.uint32(high)
	return acceptedReply(xid, acceptProgMismatch, w.buf)
}

func deniedReply(xid, rejectStat uint32, body ...uint32) []byte {
	w := xdrWriter{}
	w.uint32(xid)
	w.uint32(msgReply)
	w.uint32(replyDenied)
	w.uint32(rejectStat)
	for _, v := range body {
		w.uint32(v)
	}
	return w.buf
}

// rpcMismatchReply answers a call whose RPC version is not 2.
func rpcMismatchReply(xid uint32) []byte { return deniedReply(xid, rejectRPCMismatch, 2, 2) }

// authErrorReply answers a call whose credentials are refused.
func authErrorReply(xid, stat uint32) []byte { return deniedReply(xid, rejectAuthError, stat) }

// replyBody locates the result of an accepted reply: it returns the
// accept_stat and the bytes after it, or ok=false for a denied or
// undecodable reply.
func replyBody(rec []byte) (stat uint32, body []byte, ok bool) {
	r := xdrReader{buf: rec}
	r.uint32() // xid
	if r.uint32() != msgReply || r.uint32() != replyAccepted {
		return 0, nil, false
	}
	r.uint32()            // verifier flavor
	r.opaque(maxAuthBody) // verifier body
	stat = r.uint32()
	body = r.rest()
	return stat, body, r.err == nil
}
