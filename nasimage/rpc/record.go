package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// Record marking (RFC 5531 section 11): on a stream, each RPC message is a
// record made of fragments, each prefixed by a 4-byte header whose top bit
// marks the last fragment and whose low 31 bits give the fragment length.

const lastFragment = 1 << 31

// ErrRecordTooLarge means a record's fragments add up to more than the limit.
var ErrRecordTooLarge = errors.New("rpc: record exceeds the maximum record size")

// ReadRecord reads one whole record, reassembling its fragments. It returns
// ErrRecordTooLarge as soon as the announced fragment lengths exceed max,
// without reading (or allocating) the oversized data, and
// io.ErrUnexpectedEOF when the stream ends inside a record.
func ReadRecord(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	var rec []byte
	for first := true; ; first = false {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF && !first {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ lastFragment)
		if len(rec)+n > max {
			return nil, fmt.Errorf("%w (%d > %d bytes)", ErrRecordTooLarge, len(rec)+n, max)
		}
		if rec == nil && h&lastFragment != 0 {
			rec = make([]byte, n) // the usual case: one fragment, one allocation
		} else {
			rec = append(rec, make([]byte, n)...)
		}
		if _, err := io.ReadFull(r, rec[len(rec)-n:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if h&lastFragment != 0 {
			return rec, nil
		}
	}
}

// WriteRecord writes msg as a single-fragment record. The header and the
// body go out in one writev so that concurrent writers can share a
// connection under a mutex without an extra copy.
func WriteRecord(w io.Writer, msg ...[]byte) error {
	n := 0
	for _, m := range msg {
		n += len(m)
	}
	hdr := binary.BigEndian.AppendUint32(nil, uint32(n)|lastFragment)
	bufs := make(net.Buffers, 0, len(msg)+1)
	bufs = append(bufs, hdr)
	bufs = append(bufs, msg...)
	_, err := bufs.WriteTo(w)
	return err
}
