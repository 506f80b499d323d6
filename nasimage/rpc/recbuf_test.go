package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestRecBufs: the recycling record reader reassembles small, large and
// multi-fragment records as ReadRecord does, refuses one beyond the limit,
// and reports a stream that ends inside a record.
func TestRecBufs(t *testing.T) {
	frag := func(data []byte, last bool) []byte {
		h := uint32(len(data))
		if last {
			h |= lastFragment
		}
		return append(binary.BigEndian.AppendUint32(nil, h), data...)
	}
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 13)
		}
		return b
	}
	p := newRecBufs(1 << 20)
	var stream []byte
	want := [][]byte{payload(100), payload(1 << 20), payload(300 << 10), payload(20 << 10), payload(70 << 10), payload(192 << 10), {}}
	stream = append(stream, frag(want[0], true)...)
	stream = append(stream, frag(want[1], true)...)
	stream = append(stream, frag(want[2][:100<<10], false)...)
	stream = append(stream, frag(want[2][100<<10:], true)...)
	stream = append(stream, frag(want[3], true)...)
	stream = append(stream, frag(want[4], true)...)
	stream = append(stream, frag(want[5], true)...)
	stream = append(stream, frag(nil, true)...)
	r := bytes.NewReader(stream)
	for i, w := range want {
		for range 2 { // the second time from recycled buffers
			rec, buf, err := p.read(bytes.NewReader(stream[len(stream)-r.Len():]), nil)
			if err != nil || !bytes.Equal(rec, w) {
				t.Fatalf("record %d: %d bytes, %v; want %d", i, len(rec), err, len(w))
			}
			p.put(buf)
		}
		// advance r past record i
		if _, err := ReadRecord(r, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := p.read(bytes.NewReader(frag(payload(1<<20+1), true)), nil); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("record beyond the limit: %v", err)
	}
	if _, _, err := p.read(bytes.NewReader(frag(payload(200<<10), true)[:150<<10]), nil); err == nil {
		t.Fatal("truncated record read without error")
	}
}

// countingReader counts the reads a record takes.
type countingReader struct {
	r     *bytes.Reader
	reads int
}

func (c *countingReader) Read(b []byte) (int, error) {
	c.reads++
	return c.r.Read(b)
}

// TestRecBufsTakeWhatWasSent: a record the client has sent whole (a 64 KiB
// WRITE waiting in the socket) is read into one buffer that holds it, in
// one read, not doubled through smaller buffers and copied at each step;
// a record announced but not sent still gets a buffer no larger than the
// first step (the slowloris rule).
func TestRecBufsTakeWhatWasSent(t *testing.T) {
	p := newRecBufs(1 << 20)
	data := make([]byte, 64<<10+200) // a 64 KiB WRITE's record
	rec := append(binary.BigEndian.AppendUint32(nil, uint32(len(data))|lastFragment), data...)
	r := &countingReader{r: bytes.NewReader(rec)}
	got, buf, err := p.read(r, func() int { return r.r.Len() })
	if err != nil || len(got) != len(data) {
		t.Fatalf("read: %d bytes, %v", len(got), err)
	}
	if cap(*buf) != mediumRecord {
		t.Fatalf("record of %d bytes sent whole: buffer of %d bytes, want one medium buffer (%d)", len(data), cap(*buf), mediumRecord)
	}
	if r.reads > 2 {
		t.Fatalf("record sent whole took %d reads (header and body: 2)", r.reads)
	}
	p.put(buf)

	// Announced 1 MiB, 10 bytes sent: the buffer follows what was sent.
	short := append(binary.BigEndian.AppendUint32(nil, uint32(1<<20)|lastFragment), make([]byte, 10)...)
	held := 0
	sr := bytes.NewReader(short)
	_, _, err = p.read(readerFunc(func(b []byte) (int, error) {
		held = max(held, cap(b))
		return sr.Read(b)
	}), func() int { return sr.Len() })
	if err == nil {
		t.Fatal("truncated record read without error")
	}
	if held > growStep {
		t.Fatalf("record announced 1 MiB with 10 bytes sent: a read into %d bytes, want at most %d", held, growStep)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }
