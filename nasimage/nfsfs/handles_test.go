package nfsfs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

func TestHandleCodec(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := NewHandleCodec(key, 3)
	id := fileid.New()
	fh := c.Encode(id)
	if len(fh) != HandleSize || len(fh)%4 != 0 || len(fh) > 64 {
		t.Fatalf("handle size %d: want %d, a multiple of 4, at most 64", len(fh), HandleSize)
	}
	if got, err := c.Decode(fh); err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if !bytes.Equal(c.Encode(id), fh) {
		t.Fatal("encoding is not deterministic: handles would not survive a restart")
	}

	cases := []struct {
		name string
		fh   []byte
		c    *HandleCodec
		want error
	}{
		{"empty", nil, c, ErrBadHandle},
		{"short", fh[:20], c, ErrBadHandle},
		{"long", append(append([]byte{}, fh...), 0, 0, 0, 0), c, ErrBadHandle},
		{"another fsid", fh, NewHandleCodec(key, 4), ErrStale},
		{"another secret", fh, NewHandleCodec(bytes.Repeat([]byte{8}, 32), 3), ErrBadHandle},
	}
	for i := range fh {
		tampered := append([]byte{}, fh...)
		tampered[i] ^= 0x40
		want := ErrBadHandle
		if i >= 4 && i < 12 {
			want = ErrStale // the fsid bytes: not this export's handle
		}
		cases = append(cases, struct {
			name string
			fh   []byte
			c    *HandleCodec
			want error
		}{fmt.Sprintf("tampered byte %d", i), tampered, c, want})
	}
	for _, tc := range cases {
		if _, err := tc.c.Decode(tc.fh); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	cases := []struct {
		in   string
		want string
		err  bool
	}{
		{"", "rw,sync,root_squash,anonuid=65534,anongid=65534,fsid=0", false},
		{"ro,async,all_squash,anonuid=1000,anongid=1001,fsid=7", "ro,async,all_squash,anonuid=1000,anongid=1001,fsid=7", false},
		{"rw, no_root_squash", "rw,sync,no_root_squash,anonuid=65534,anongid=65534,fsid=0", false},
		{"nohide", "", true},
		{"anonuid=-1", "", true},
		{"fsid=x", "", true},
	}
	for _, tc := range cases {
		o, err := ParseOptions(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if err == nil && o.String() != tc.want {
			t.Errorf("%q: got %s, want %s", tc.in, o, tc.want)
		}
	}
	nets, err := ParseNetworks("10.0.0.0/8, 192.168.49.2,*")
	if err != nil || len(nets) != 2 || nets[1].String() != "192.168.49.2/32" {
		t.Fatalf("ParseNetworks: %v %v", nets, err)
	}
	if _, err := ParseNetworks("10.0.0.300/8"); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

func TestSquash(t *testing.T) {
	o := DefaultOptions()
	if u, g := o.mapOwner(0, 0); u != 65534 || g != 65534 {
		t.Errorf("root_squash of 0:0 = %d:%d", u, g)
	}
	if u, g := o.mapOwner(1000, 1000); u != 1000 || g != 1000 {
		t.Errorf("root_squash of 1000:1000 = %d:%d", u, g)
	}
	o.Squash = AllSquash
	if u, g := o.mapOwner(1000, 5); u != 65534 || g != 65534 {
		t.Errorf("all_squash = %d:%d", u, g)
	}
	o.Squash = NoRootSquash
	if u, g := o.mapOwner(0, 0); u != 0 || g != 0 {
		t.Errorf("no_root_squash = %d:%d", u, g)
	}
}
