package rpc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// TestConcurrentSendsStayWhole: replies of calls answered at once on one
// connection share writevs (conn.send); every record still arrives whole
// and once, none cut into another.
func TestConcurrentSendsStayWhole(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	s := NewServer(Config{Handler: nil})
	c := &conn{s: s, nc: server, allowed: true}
	const senders, each = 16, 50
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := []byte(fmt.Sprintf("sender %02d record %03d ", g, i))
				body = append(body, bytes.Repeat([]byte{byte(g)}, g*37)...)
				var mark [4]byte
				binary.BigEndian.PutUint32(mark[:], lastFragment|uint32(len(body)))
				// As the data path does: the mark with a header, then data.
				c.send(append(mark[:], body[:8]...), body[8:])
			}
		}()
	}
	go func() { wg.Wait(); server.Close() }()
	seen := map[string]bool{}
	for {
		rec, err := ReadRecord(client, 1<<20)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var g, i int
		if _, err := fmt.Sscanf(string(rec), "sender %02d record %03d ", &g, &i); err != nil {
			t.Fatalf("a record that is not one sent: %q", rec)
		}
		want := len(fmt.Sprintf("sender %02d record %03d ", g, i)) + g*37
		if len(rec) != want || !bytes.HasSuffix(rec, bytes.Repeat([]byte{byte(g)}, g*37)) {
			t.Fatalf("record %d of sender %d is cut or mixed: %d bytes, want %d", i, g, len(rec), want)
		}
		key := fmt.Sprint(g, i)
		if seen[key] {
			t.Fatalf("record %d of sender %d arrived twice", i, g)
		}
		seen[key] = true
	}
	if len(seen) != senders*each {
		t.Errorf("%d records arrived, want %d", len(seen), senders*each)
	}
}
