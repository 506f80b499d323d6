package rpc_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// FuzzNFSArgs sends NFSv3 calls with an authentic handle and arbitrary
// arguments through the front door to go-nfs: whatever a client sends,
// the server answers and keeps serving (a panic in go-nfs would end the
// process). Credentials are checked (a proc byte of 128 or more calls as
// uid 1000, else AUTH_NULL), so their decoding is fuzzed too.
func FuzzNFSArgs(f *testing.F) {
	srv := nfstest.Start(f, nfstest.Options{Credentials: true})
	os.Chmod(srv.Dir, 0o777)
	os.WriteFile(filepath.Join(srv.Dir, "file"), []byte("content"), 0o644)
	os.Mkdir(filepath.Join(srv.Dir, "dir"), 0o755)
	c := nfstest.DialRaw(f, srv.Addr, "")
	root := c.Mnt(f, "/")
	f.Add(uint8(3), []byte{0, 0, 0, 4, 'f', 'i', 'l', 'e'})
	f.Add(uint8(6), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16})
	f.Add(uint8(7), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 4, 'a', 'b', 'c', 'd'})
	f.Add(uint8(17), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 16, 0})
	// The procedure is the byte mod 21, plus 1: 15 READDIR, 16 READDIRPLUS.
	f.Add(uint8(15), []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add(uint8(16), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 1, 0})
	f.Add(uint8(14), []byte{0, 0, 0, 1, 'x'})
	f.Add(uint8(14), []byte(append(nfstest.XDR{}.Opaque(root), 0, 0, 0, 1, 'l', 0, 0, 0))) // LINK root into root as "l"
	f.Fuzz(func(t *testing.T, proc uint8, args []byte) {
		p := uint32(proc%21) + 1
		call := c.Call
		if proc >= 128 {
			call = func(prog, vers, proc uint32, args []byte) (nfstest.Reply, error) {
				return c.CallAs(1000, 1000, prog, vers, proc, args)
			}
		}
		rep, err := call(100003, 3, p, append(nfstest.XDR{}.Opaque(root), args...))
		if err != nil {
			t.Fatalf("proc %d: no answer: %v", p, err)
		}
		_ = rep
	})
}
