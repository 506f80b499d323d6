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
			rec, buf, err := p.read(bytes.NewReader(stream[len(stream)-r.Len():]))
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
	if _, _, err := p.read(bytes.NewReader(frag(payload(1<<20+1), true))); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("record beyond the limit: %v", err)
	}
	if _, _, err := p.read(bytes.NewReader(frag(payload(200<<10), true)[:150<<10])); err == nil {
		t.Fatal("truncated record read without error")
	}
}
