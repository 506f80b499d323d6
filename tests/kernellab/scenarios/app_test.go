//go:build kernellab

package scenarios

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// Apps that need system calls a shell cannot make run as this same binary,
// re-executed as the app's uid: LAB_APP names the function, LAB_ARG its
// argument (a JSON object); it prints one JSON result line.
const appEnv = "LAB_APP"

type appArgs struct {
	Dir      string        `json:"dir"`
	Duration time.Duration `json:"duration,omitempty"`
	Size     int           `json:"size,omitempty"`
	Progress string        `json:"progress,omitempty"`
}

type appResult struct {
	Errors   []string `json:"errors"`
	Fsynced  int64    `json:"fsynced"` // bytes the app was told are stable
	Reads    int      `json:"reads"`
	Writes   int      `json:"writes"`
	Duration string   `json:"duration"`
}

var apps = map[string]func(appArgs) appResult{
	"rename-open-fds":    renameOpenFDs,
	"write-rename-close": writeRenameClose,
	"log-rotation":       logRotation,
	"editor-save":        editorSave,
	"mmap-read":          mmapRead,
	"two-appenders":      twoAppenders,
	"load":               load,
	"big-write":          bigWrite,
}

func runApp(name string) int {
	var a appArgs
	if err := json.Unmarshal([]byte(os.Getenv("LAB_ARG")), &a); err != nil {
		fmt.Println(err)
		return 2
	}
	start := time.Now()
	r := apps[name](a)
	r.Duration = time.Since(start).String()
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	return 0
}

// app runs an app as the app uid and returns its result; the app's errors
// are the caller's to judge.
func app(t *testing.T, name string, a appArgs) appResult {
	t.Helper()
	cmd, out := startApp(t, name, a)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("app %s: %v\n%s", name, err, out)
	}
	return parseApp(t, name, out.Bytes())
}

func startApp(t *testing.T, name string, a appArgs) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	arg, _ := json.Marshal(a)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), appEnv+"="+name, "LAB_ARG="+string(arg))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(node.AppUID), Gid: uint32(node.AppGID)}}
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func parseApp(t *testing.T, name string, out []byte) appResult {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r appResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("app %s: no result: %v\n%s", name, err, out)
	}
	return r
}

func (r *appResult) fail(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

// renameOpenFDs: descriptors opened before a file, and then its directory,
// were renamed still read (uncached, O_DIRECT) and write the same file.
func renameOpenFDs(a appArgs) (r appResult) {
	d := filepath.Join(a.Dir, "d")
	os.Mkdir(d, 0o755)
	f := filepath.Join(d, "f")
	if err := os.WriteFile(f, []byte("0123456789"), 0o644); err != nil {
		r.fail("create: %v", err)
		return
	}
	rw, err := os.OpenFile(f, os.O_RDWR, 0)
	if err != nil {
		r.fail("open: %v", err)
		return
	}
	defer rw.Close()
	direct, err := os.OpenFile(f, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		r.fail("open O_DIRECT: %v", err)
		return
	}
	defer direct.Close()
	step := func(what string) {
		buf := make([]byte, 4096)
		n, err := direct.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			r.fail("%s: uncached pread: %v", what, err)
		} else if !bytes.HasPrefix(buf[:n], []byte("0123")) {
			r.fail("%s: uncached pread read %q", what, buf[:n])
		}
		if _, err := rw.WriteAt([]byte("AB"), 4); err != nil {
			r.fail("%s: pwrite: %v", what, err)
		}
		if err := rw.Sync(); err != nil {
			r.fail("%s: fsync: %v", what, err)
		}
	}
	if err := os.Rename(f, filepath.Join(d, "g")); err != nil {
		r.fail("rename file: %v", err)
	}
	step("after renaming the file")
	if err := os.Rename(d, filepath.Join(a.Dir, "d2")); err != nil {
		r.fail("rename dir: %v", err)
	}
	step("after renaming its directory")
	got, err := os.ReadFile(filepath.Join(a.Dir, "d2", "g"))
	if err != nil || string(got) != "0123AB6789" {
		r.fail("content by the new path: %q %v", got, err)
	}
	return
}

// writeRenameClose: bytes written before a rename and flushed by close are
// all on the server.
func writeRenameClose(a appArgs) (r appResult) {
	f := filepath.Join(a.Dir, "w")
	h, err := os.Create(f)
	if err != nil {
		r.fail("create: %v", err)
		return
	}
	data := bytes.Repeat([]byte("x"), 300004)
	if _, err := h.Write(data); err != nil {
		r.fail("write: %v", err)
	}
	if err := os.Rename(f, f+".renamed"); err != nil {
		r.fail("rename: %v", err)
	}
	if err := h.Close(); err != nil {
		r.fail("close: %v", err)
	}
	got, err := os.ReadFile(f + ".renamed")
	if err != nil || !bytes.Equal(got, data) {
		r.fail("after close: %d bytes, %v (want %d)", len(got), err, len(data))
	}
	return
}

// logRotation: the app keeps appending to its open log while it is renamed
// away and a new log is started; every line lands in the rotated file, in
// order, and the new log holds only its own lines.
func logRotation(a appArgs) (r appResult) {
	log := filepath.Join(a.Dir, "app.log")
	w, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.fail("open: %v", err)
		return
	}
	var want bytes.Buffer
	for i := 0; i < 200; i++ {
		line := fmt.Sprintf("line %03d\n", i)
		want.WriteString(line)
		if _, err := w.WriteString(line); err != nil {
			r.fail("write %d: %v", i, err)
		}
		if i%10 == 9 {
			w.Sync()
		}
		if i == 99 {
			if err := os.Rename(log, log+".1"); err != nil {
				r.fail("rotate: %v", err)
			}
			if err := os.WriteFile(log, []byte("new log\n"), 0o644); err != nil {
				r.fail("new log: %v", err)
			}
		}
	}
	if err := w.Close(); err != nil {
		r.fail("close: %v", err)
	}
	if got, _ := os.ReadFile(log + ".1"); !bytes.Equal(got, want.Bytes()) {
		r.fail("rotated log: %d bytes, want %d", len(got), want.Len())
	}
	if got, _ := os.ReadFile(log); string(got) != "new log\n" {
		r.fail("new log has %q", got)
	}
	return
}

// editorSave: `mv a a~; mv tmp a` while another process holds a open: the
// holder keeps reading the old version, new opens get the new one.
func editorSave(a appArgs) (r appResult) {
	p := filepath.Join(a.Dir, "a")
	os.WriteFile(p, []byte("old version"), 0o644)
	held, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		r.fail("open: %v", err)
		return
	}
	defer held.Close()
	os.WriteFile(p+".tmp", []byte("new version!"), 0o644)
	if err := os.Rename(p, p+"~"); err != nil {
		r.fail("mv a a~: %v", err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		r.fail("mv tmp a: %v", err)
	}
	buf := make([]byte, 64)
	n, err := held.ReadAt(buf, 0)
	if string(buf[:n]) != "old version" {
		r.fail("held descriptor reads %q (%v), want the old version", buf[:n], err)
	}
	if got, _ := os.ReadFile(p); string(got) != "new version!" {
		r.fail("a now reads %q", got)
	}
	if got, _ := os.ReadFile(p + "~"); string(got) != "old version" {
		r.fail("a~ reads %q", got)
	}
	return
}

func mmapRead(a appArgs) (r appResult) {
	p := filepath.Join(a.Dir, "m")
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		r.fail("write: %v", err)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		r.fail("open: %v", err)
		return
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		r.fail("mmap: %v", err)
		return
	}
	defer unix.Munmap(m)
	if !bytes.Equal(m, data) {
		r.fail("mmap content differs")
	}
	return
}

// twoAppenders: two descriptors with O_APPEND, 500 records each: every
// record lands whole.
func twoAppenders(a appArgs) (r appResult) {
	p := filepath.Join(a.Dir, "appended")
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				mu.Lock()
				r.fail("open: %v", err)
				mu.Unlock()
				return
			}
			defer f.Close()
			for i := 0; i < 500; i++ {
				if _, err := fmt.Fprintf(f, "writer %d record %04d\n", w, i); err != nil {
					mu.Lock()
					r.fail("append: %v", err)
					mu.Unlock()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	got, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	for w := 0; w < 2; w++ {
		for i := 0; i < 500; i++ {
			if !seen[fmt.Sprintf("writer %d record %04d", w, i)] {
				r.fail("record %d/%d missing", w, i)
			}
		}
	}
	if len(lines) != 1000 {
		r.fail("%d lines, want 1000", len(lines))
	}
	return
}

// load is a reader and a writer for a.Duration: the writer appends 4 KiB
// records and fsyncs each (Fsynced counts what it was told is stable); the
// reader re-reads a file of known content and lists the directory. Every
// error counts.
func load(a appArgs) (r appResult) {
	ref := filepath.Join(a.Dir, "reference")
	want, err := os.ReadFile(ref)
	if err != nil {
		r.fail("reference: %v", err)
		return
	}
	stop := time.Now().Add(a.Duration)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		if len(r.Errors) < 20 {
			r.fail(format, args...)
		}
		mu.Unlock()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(filepath.Join(a.Dir, "written"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fail("writer open: %v", err)
			return
		}
		defer f.Close()
		rec := make([]byte, 4096)
		for i := 0; time.Now().Before(stop); i++ {
			copy(rec, fmt.Sprintf("record %08d\n", i))
			if _, err := f.Write(rec); err != nil {
				fail("write %d: %v", i, err)
				return
			}
			if err := f.Sync(); err != nil {
				fail("fsync %d: %v", i, err)
				return
			}
			mu.Lock()
			r.Fsynced += int64(len(rec))
			r.Writes++
			mu.Unlock()
			if a.Progress != "" {
				os.WriteFile(a.Progress+".tmp", []byte(fmt.Sprint(r.Fsynced)), 0o644)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for time.Now().Before(stop) {
			got, err := os.ReadFile(ref)
			if err != nil {
				fail("read: %v", err)
			} else if !bytes.Equal(got, want) {
				fail("read %d bytes of other content", len(got))
			}
			if _, err := os.ReadDir(a.Dir); err != nil {
				fail("readdir: %v", err)
			}
			mu.Lock()
			r.Reads++
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()
	return
}

// bigWrite writes a.Size bytes in 1 MiB writes with an fsync every 8 MiB,
// recording in a.Progress how much was fsynced; then checks the file.
func bigWrite(a appArgs) (r appResult) {
	p := filepath.Join(a.Dir, "big")
	f, err := os.Create(p)
	if err != nil {
		r.fail("create: %v", err)
		return
	}
	chunk := make([]byte, 1<<20)
	for off := 0; off < a.Size; off += len(chunk) {
		for i := range chunk {
			chunk[i] = byte((off + i) % 251)
		}
		if _, err := f.Write(chunk); err != nil {
			r.fail("write at %d: %v", off, err)
			return
		}
		if (off/len(chunk))%8 == 7 {
			if err := f.Sync(); err != nil {
				r.fail("fsync at %d: %v", off, err)
				return
			}
			r.Fsynced = int64(off + len(chunk))
			os.WriteFile(a.Progress, []byte(fmt.Sprint(r.Fsynced)), 0o644)
		}
	}
	if err := f.Close(); err != nil {
		r.fail("close: %v", err)
	}
	got, err := os.ReadFile(p)
	if err != nil || len(got) != a.Size {
		r.fail("read back %d bytes, %v", len(got), err)
		return
	}
	for i, b := range got {
		if b != byte(i%251) {
			r.fail("byte %d is %d, want %d", i, b, byte(i%251))
			return
		}
	}
	return
}
