package rpc_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

func randomFile(t *testing.T, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLibnfs drives the server with Debian libnfs-utils: list, copy in,
// copy out, cat, for 1 MiB and 64 MiB files, byte-identical.
func TestLibnfs(t *testing.T) {
	nfstest.RequireTool(t, "nfs-ls")
	srv := nfstest.Start(t, nfstest.Options{})
	local := t.TempDir()
	if err := os.Mkdir(filepath.Join(srv.Dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Dir, "hello.txt"), []byte("hello nasd\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	out := nfstest.MustRun(t, 20*time.Second, "nfs-ls", nfstest.LibnfsURL(srv.Addr, "/"))
	if !strings.Contains(out, "hello.txt") || !strings.Contains(out, "sub") {
		t.Fatalf("nfs-ls: want hello.txt and sub, got:\n%s", out)
	}
	if got := nfstest.MustRun(t, 20*time.Second, "nfs-cat", nfstest.LibnfsURL(srv.Addr, "/hello.txt")); got != "hello nasd\n" {
		t.Fatalf("nfs-cat: %q", got)
	}

	for _, size := range []int{1 << 20, 64 << 20} {
		name := "f" + nfstest.Itoa(size)
		want := randomFile(t, local, name, size)
		// upload
		nfstest.MustRun(t, 120*time.Second, "nfs-cp", filepath.Join(local, name), nfstest.LibnfsURL(srv.Addr, "/sub/"+name))
		got, err := os.ReadFile(filepath.Join(srv.Dir, "sub", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("nfs-cp upload of %d bytes: server copy differs (err %v, %d bytes)", size, err, len(got))
		}
		// download
		back := filepath.Join(local, name+".back")
		nfstest.MustRun(t, 120*time.Second, "nfs-cp", nfstest.LibnfsURL(srv.Addr, "/sub/"+name), back)
		got, err = os.ReadFile(back)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("nfs-cp download of %d bytes differs (err %v, %d bytes)", size, err, len(got))
		}
	}
}

// TestGoNFSClient runs the file operations of go-nfs-client: mkdir,
// create, write, read back, rename, symlink, readdirplus, remove, rmdir.
func TestGoNFSClient(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{})
	v := nfstest.Mount(t, srv.Addr, "/")

	if _, err := v.Mkdir("d", 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	for _, size := range []int{1 << 20, 64 << 20} {
		want := make([]byte, size)
		_, _ = rand.Read(want)
		name := "d/f" + nfstest.Itoa(size)
		f, err := v.OpenFile(name, 0o644)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if n, err := f.Write(want); err != nil || n != size {
			t.Fatalf("write %s: %d %v", name, n, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close %s: %v", name, err)
		}
		r, err := v.Open(name)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %s: %d bytes, err %v, identical %v", name, len(got), err, bytes.Equal(got, want))
		}
		onDisk, _ := os.ReadFile(filepath.Join(srv.Dir, name))
		if !bytes.Equal(onDisk, want) {
			t.Fatalf("%s on disk differs", name)
		}
	}

	if err := v.Rename("d/f1048576", "d/renamed"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "d", "renamed")); err != nil {
		t.Fatalf("rename not on disk: %v", err)
	}
	if err := v.Symlink("renamed", "d/link"); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(srv.Dir, "d", "link")); err != nil || target != "renamed" {
		t.Fatalf("symlink on disk: %q %v", target, err)
	}

	entries, err := v.ReadDirPlus("d")
	if err != nil {
		t.Fatalf("readdirplus: %v", err)
	}
	var names []string
	for _, e := range entries {
		if e.FileName != "." && e.FileName != ".." {
			names = append(names, e.FileName)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "f67108864,link,renamed" {
		t.Fatalf("readdirplus names: %v", names)
	}

	for _, p := range []string{"d/link", "d/renamed", "d/f67108864"} {
		if err := v.Remove(p); err != nil {
			t.Fatalf("remove %s: %v", p, err)
		}
	}
	if err := v.RmDir("d"); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if left, _ := os.ReadDir(srv.Dir); len(left) != 0 {
		t.Fatalf("export not empty after removals: %v", left)
	}
}
