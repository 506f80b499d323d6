package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
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
	var err error
	for first := true; ; first = false {
		if _, err = io.ReadFull(r, hdr[:]); err != nil {
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
		if rec, err = readFragment(r, rec, n); err != nil {
			return nil, err
		}
		if h&lastFragment != 0 {
			if rec == nil {
				rec = []byte{}
			}
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

// growStep is the first allocation for a fragment's data. The buffer then
// doubles as data arrives, so memory follows what a client has sent, not
// what it announced: a client that announces 1 MiB and sends 10 bytes
// holds 8 KiB.
const growStep = 8 << 10

// readFragment appends n bytes read from r to rec.
func readFragment(r io.Reader, rec []byte, n int) ([]byte, error) {
	for n > 0 {
		step := min(n, max(growStep, len(rec)))
		start := len(rec)
		rec = slices.Grow(rec, step)[:start+step]
		if _, err := io.ReadFull(r, rec[start:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n -= step
	}
	return rec, nil
}
