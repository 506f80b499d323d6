// Package kernellab boots a real Linux kernel (Debian's user-mode-linux, 6.1)
// as an ordinary process and runs a test binary inside it as the guest's
// init. The guest's root is the host's / (hostfs), so the binaries the host
// built are there under the same paths; everything the guest writes goes to
// tmpfs or an ext4 image the host made, and everything it sends stays on the
// guest's own network stack.
package kernellab

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed shim/xstate.c
var xstateShim []byte

// ModulesDir is where user-mode-linux keeps its modules (the guest loads
// them from there: the host's /lib/modules has none for this kernel).
const ModulesDir = "/usr/lib/uml/modules"

// Guest describes one boot.
type Guest struct {
	Dir      string            // host directory for the init script, images and results; must not be under /tmp (the guest mounts its own /tmp)
	Command  []string          // what the guest runs as its workload, with absolute paths
	Env      map[string]string // extra environment of Command
	MemoryMB int               // guest memory (default 3072)
	DiskMB   int               // size of the ext4 image the guest gets as /dev/ubdb (default 6144)
	Console  io.Writer         // guest console (kernel and workload output), streamed
	Stdin    io.Reader         // guest console input (nil: none)
	Timeout  time.Duration     // whole boot, default 30 minutes
	// ReadOnlyHost mounts the host's / read-only in the guest, Dir alone
	// writable: nothing the guest runs can change the host, by construction
	// (a scan of a shared machine afterwards cannot tell the guest's writes
	// from everyone else's).
	ReadOnlyHost bool
}

// Result is what a boot left behind.
type Result struct {
	ExitCode int           // the workload's exit status inside the guest
	BootTime time.Duration // from starting the kernel to the workload starting
	Elapsed  time.Duration // the whole boot, power-off included
	// HostWriteRefused: with ReadOnlyHost, the guest's own try to write to
	// the host's / (outside Dir) failed, as it must.
	HostWriteRefused bool
}

// Boot runs the guest to completion.
func Boot(g Guest) (*Result, error) {
	if g.MemoryMB == 0 {
		g.MemoryMB = 3072
	}
	if g.DiskMB == 0 {
		g.DiskMB = 6144 // sparse: only what the guest writes takes space
	}
	if g.Timeout == 0 {
		g.Timeout = 30 * time.Minute
	}
	if g.Console == nil {
		g.Console = os.Stdout
	}
	kernel, err := exec.LookPath("linux")
	if err != nil {
		return nil, errors.New("kernellab: no user-mode-linux kernel on PATH: apt-get install user-mode-linux (make lab installs it)")
	}
	if err := os.MkdirAll(g.Dir, 0o755); err != nil {
		return nil, err
	}
	shim, err := buildShim(g.Dir)
	if err != nil {
		return nil, err
	}
	disk := filepath.Join(g.Dir, "disk.img")
	if err := makeExt4(disk, g.DiskMB); err != nil {
		return nil, err
	}
	rcFile := filepath.Join(g.Dir, "rc")
	startedFile := filepath.Join(g.Dir, "started")
	roFile := filepath.Join(g.Dir, "host-read-only")
	os.Remove(rcFile)
	os.Remove(startedFile)
	os.Remove(roFile)
	initPath := filepath.Join(g.Dir, "init.sh")
	if err := os.WriteFile(initPath, []byte(initScript(g, rcFile, startedFile, roFile)), 0o755); err != nil {
		return nil, err
	}

	args := []string{
		"mem=" + strconv.Itoa(g.MemoryMB) + "M",
		"root=/dev/root", "rootfstype=hostfs", "rootflags=/", rootMode(g.ReadOnlyHost),
		"ubdb=" + disk,
		"uml_dir=" + g.Dir, // the kernel's own pid/mconsole files, not ~/.uml
		"init=" + initPath,
		"con0=fd:0,fd:1", "con=null", "quiet",
	}
	cmd := exec.Command(kernel, args...)
	// UML keeps its guest memory in a file under TMPDIR; keep it out of the
	// lab directory, which may be on a slow or small disk.
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+shim)
	cmd.Stdin = g.Stdin
	// The kernel's processes die with the test, whatever ends it. The
	// death signal follows the thread that started the kernel: keep this
	// goroutine on it until the kernel is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Its own process group: the guest's processes are host processes
	// (ptraced children of the kernel) that outlive a killed kernel.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kernellab: start %s: %w", kernel, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(g.Console, "guest| %s\n", sc.Text())
		}
	}()
	timer := time.AfterFunc(g.Timeout, func() { cmd.Process.Kill() })
	// Interrupted (Ctrl-C, a stopped test): the whole guest goes, not only
	// the kernel.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-interrupted; ok {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	<-done
	waitErr := cmd.Wait()
	timer.Stop()
	signal.Stop(interrupted)
	close(interrupted)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever of the guest is left
	res := &Result{Elapsed: time.Since(start), ExitCode: -1}
	if b, err := os.ReadFile(startedFile); err == nil {
		if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			res.BootTime = time.Unix(0, ns).Sub(start)
		}
	}
	if b, err := os.ReadFile(roFile); err == nil {
		res.HostWriteRefused = strings.TrimSpace(string(b)) == "refused"
	}
	b, err := os.ReadFile(rcFile)
	if err != nil {
		return res, fmt.Errorf("kernellab: the guest ended without an exit status (kernel: %v; timeout %s)", waitErr, g.Timeout)
	}
	res.ExitCode, err = strconv.Atoi(strings.TrimSpace(string(b)))
	return res, err
}

func rootMode(readOnly bool) string {
	if readOnly {
		return "ro"
	}
	return "rw"
}

// hostWritable makes Dir writable again over a read-only host root (its own
// hostfs mount), then proves the root refuses writes: the probe's verdict
// goes to roFile.
func hostWritable(dir, roFile string) string {
	probe := shellQuote(filepath.Join(filepath.Dir(dir), ".kernellab-write-probe-"+filepath.Base(dir)))
	return `mount -t hostfs -o ` + shellQuote(dir) + ` hostfs ` + shellQuote(dir) + `
if ( : > ` + probe + ` ) 2>/dev/null; then rm -f ` + probe + `; echo written > ` + shellQuote(roFile) + `; else echo refused > ` + shellQuote(roFile) + `; fi
`
}

// initScript is the guest's PID 1: it makes the guest's own /run, /tmp,
// /var/lib/nfs and module tree (so nothing lands on the host), starts the
// workload and powers off with its status recorded.
func initScript(g Guest, rcFile, startedFile, roFile string) string {
	writable := ""
	if g.ReadOnlyHost {
		writable = hostWritable(g.Dir, roFile)
	}
	var env strings.Builder
	for k, v := range g.Env {
		fmt.Fprintf(&env, "export %s=%s\n", k, shellQuote(v))
	}
	quoted := make([]string, len(g.Command))
	for i, a := range g.Command {
		quoted[i] = shellQuote(a)
	}
	return `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
# UML saves only the legacy part of the XSAVE area: keep guest code off AVX-512.
export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD
export GODEBUG=cpu.avx512f=off
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 nfsstate /var/lib/nfs
mount -t tmpfs -o mode=0755 varlog /var/log # poweroff writes wtmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
` + writable + `mkdir -p /run/lab/disk
mount -t ext4 /dev/ubdb /run/lab/disk
ip link set lo up
` + env.String() + `date +%s%N > ` + shellQuote(startedFile) + `
cd /run/lab
` + strings.Join(quoted, " ") + `
echo $? > ` + shellQuote(rcFile) + `
sync
poweroff -f
`
}

// buildShim compiles the ptrace shim user-mode-linux 6.1 needs on hosts with
// a large XSAVE area (AVX-512, AMX): the host kernel refuses to set the FPU
// state from UML's fixed 832-byte buffer (EFAULT) and UML panics at its first
// context switch ("ptrace set fp regs failed, errno = 14").
func buildShim(dir string) (string, error) {
	src := filepath.Join(dir, "xstate.c")
	so := filepath.Join(dir, "xstate.so")
	if err := os.WriteFile(src, xstateShim, 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", so, src, "-ldl").CombinedOutput(); err != nil {
		return "", fmt.Errorf("kernellab: build the xstate shim (needs gcc): %v\n%s", err, out)
	}
	return so, nil
}

func makeExt4(path string, sizeMB int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		f.Close()
		return err
	}
	f.Close()
	var stderr bytes.Buffer
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", path)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kernellab: mkfs.ext4 %s: %v: %s", path, err, stderr.String())
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
