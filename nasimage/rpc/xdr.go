package rpc

import (
	"encoding/binary"
	"errors"
)

// errShort is returned by xdrReader when a message ends before a field does.
var errShort = errors.New("xdr: message too short")

// xdrReader decodes XDR (RFC 4506) fields from a byte slice. Every method
// checks bounds: the input comes from the network.
type xdrReader struct {
	buf []byte
	off int
	err error
}

func (r *xdrReader) uint32() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.buf)-r.off < 4 {
		r.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint32(r.buf[r.off:])
	r.off += 4
	return v
}

func (r *xdrReader) uint64() uint64 {
	hi := r.uint32()
	lo := r.uint32()
	return uint64(hi)<<32 | uint64(lo)
}

// opaque reads a variable-length opaque of at most max bytes. The result
// aliases the input.
func (r *xdrReader) opaque(max int) []byte {
	n := r.uint32()
	if r.err != nil {
		return nil
	}
	if int64(n) > int64(max) {
		r.err = errors.New("xdr: opaque longer than allowed")
		return nil
	}
	padded := (int(n) + 3) &^ 3
	if len(r.buf)-r.off < padded {
		r.err = errShort
		return nil
	}
	v := r.buf[r.off : r.off+int(n)]
	r.off += padded
	return v
}

func (r *xdrReader) string(max int) string { return string(r.opaque(max)) }

func (r *xdrReader) rest() []byte {
	if r.err != nil {
		return nil
	}
	return r.buf[r.off:]
}

// xdrWriter appends XDR fields to a byte slice.
type xdrWriter struct{ buf []byte }

func (w *xdrWriter) uint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

func (w *xdrWriter) bool(v bool) {
	if v {
		w.uint32(1)
	} else {
		w.uint32(0)
	}
}

func (w *xdrWriter) opaque(v []byte) {
	w.uint32(uint32(len(v)))
	w.buf = append(w.buf, v...)
	for i := len(v); i%4 != 0; i++ {
		w.buf = append(w.buf, 0)
	}
}

func (w *xdrWriter) string(v string) { w.opaque([]byte(v)) }
