package rpc

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// recBufs recycles the buffers client records are read into, so that a
// steady stream of calls (small ones, 64 KiB and 1 MiB WRITEs) does not
// allocate and zero a buffer per call: below bigAfter a record doubles
// through recycled 8 to 64 KiB buffers. The slowloris rule of ReadRecord still
// holds: a big buffer is only taken once the client has sent bigAfter
// bytes of the record, so a record announced large and never sent holds
// at most what ReadRecord would hold.
type recBufs struct {
	max           int
	small         sync.Pool
	grow          [3]sync.Pool // 16, 32 and 64 KiB: a record growing towards bigAfter
	medium, large sync.Pool
}

const (
	smallRecord  = 8 << 10   // single-fragment records up to this size use a small buffer
	bigAfter     = 64 << 10  // bytes received before a record moves into a recycled big buffer
	mediumRecord = 192 << 10 // a record known to fit (64 KiB WRITEs) takes a medium buffer, not a max one
)

func newRecBufs(max int) *recBufs {
	p := &recBufs{max: max}
	p.small.New = func() any { b := make([]byte, smallRecord); return &b }
	p.medium.New = func() any { b := make([]byte, mediumRecord); return &b }
	p.large.New = func() any { b := make([]byte, max); return &b }
	for i := range p.grow {
		size := smallRecord << (i + 1)
		p.grow[i].New = func() any { b := make([]byte, size); return &b }
	}
	return p
}

// growing returns a recycled buffer of at least size bytes (at most
// bigAfter).
func (p *recBufs) growing(size int) *[]byte {
	if size <= smallRecord {
		return p.small.Get().(*[]byte)
	}
	for i := range p.grow {
		if size <= smallRecord<<(i+1) {
			return p.grow[i].Get().(*[]byte)
		}
	}
	panic("recBufs: growing beyond bigAfter")
}

// put gives back a buffer read returned (nil is fine). The record read
// into it must not be used afterwards.
func (p *recBufs) put(b *[]byte) {
	switch {
	case b == nil:
	case cap(*b) == smallRecord:
		p.small.Put(b)
	case cap(*b) == smallRecord<<1:
		p.grow[0].Put(b)
	case cap(*b) == smallRecord<<2:
		p.grow[1].Put(b)
	case cap(*b) == smallRecord<<3:
		p.grow[2].Put(b)
	case cap(*b) == mediumRecord && p.max > mediumRecord:
		p.medium.Put(b)
	case cap(*b) == p.max:
		p.large.Put(b)
	}
}

// read is ReadRecord into recycled buffers: rec aliases buf when buf is not
// nil, and must be given back with put once no longer used. ready, if not
// nil, tells how many bytes r can give without waiting (the client has sent
// them): a record already sent whole goes into one buffer of its size in one
// read, instead of doubling through smaller ones.
func (p *recBufs) read(r io.Reader, ready func() int) (rec []byte, buf *[]byte, err error) {
	defer func() {
		if err != nil {
			p.put(buf)
			rec, buf = nil, nil
		}
	}()
	var hdr [4]byte
	for first := true; ; first = false {
		if _, err = io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF && !first {
				err = io.ErrUnexpectedEOF
			}
			return rec, buf, err
		}
		h := binary.BigEndian.Uint32(hdr[:])
		n := int(h &^ lastFragment)
		if len(rec)+n > p.max {
			return rec, buf, fmt.Errorf("%w (%d > %d bytes)", ErrRecordTooLarge, len(rec)+n, p.max)
		}
		if first && h&lastFragment != 0 && n <= smallRecord {
			buf = p.small.Get().(*[]byte)
			rec = (*buf)[:n]
			if _, err = io.ReadFull(r, rec); err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return rec, buf, err
		}
		for n > 0 {
			if buf == nil || len(rec) == cap(*buf) {
				// Full: move into a recycled buffer twice the size of what
				// was read (as ReadRecord grows) or as large as what the
				// client has sent if that is more; a big one only once it
				// has sent bigAfter bytes.
				sent := len(rec)
				if ready != nil {
					sent += ready()
				}
				want := min(len(rec)+n, max(growStep, 2*len(rec), sent))
				if sent < bigAfter {
					want = min(want, bigAfter)
				}
				var nb *[]byte
				switch {
				case want <= bigAfter:
					nb = p.growing(want)
				case h&lastFragment != 0 && len(rec)+n <= mediumRecord && p.max > mediumRecord:
					nb = p.medium.Get().(*[]byte)
				default:
					nb = p.large.Get().(*[]byte)
				}
				nrec := append((*nb)[:0], rec...)
				p.put(buf)
				buf, rec = nb, nrec
			}
			step := min(n, cap(*buf)-len(rec))
			start := len(rec)
			rec = rec[:start+step]
			if _, err = io.ReadFull(r, rec[start:]); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return rec, buf, err
			}
			n -= step
		}
		if h&lastFragment != 0 {
			if rec == nil {
				rec = []byte{}
			}
			return rec, buf, nil
		}
	}
}
