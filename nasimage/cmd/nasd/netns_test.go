package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// netnsEnv marks a test binary re-run inside its own network namespace.
const netnsEnv = "NASD_TEST_NETNS"

// inOwnNetns runs the calling test (run: its -test.run pattern) again in a
// network namespace of its own (unshare -rn: a user namespace, so no root is
// needed), where port 111 is free whatever holds it on the host, and reports
// its result. It returns false, and the reason, when no namespace can be made.
// Inside the namespace it brings the loopback up and returns true at once
// with inside set: the caller then runs the test body.
func inOwnNetns(t *testing.T, run string) (handled, inside bool, why error) {
	t.Helper()
	if os.Getenv(netnsEnv) != "" {
		loopbackUp(t)
		return true, true, nil
	}
	if out, err := exec.Command("unshare", "--net", "--map-root-user", "true").CombinedOutput(); err != nil {
		return false, false, fmt.Errorf("unshare --net --map-root-user: %v %s", err, strings.TrimSpace(string(out)))
	}
	cmd := exec.Command("unshare", "--net", "--map-root-user", "--", os.Args[0], "-test.run", run, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in its own network namespace: %v", run, err)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("%s in its own network namespace did not pass", run)
	}
	return true, false, nil
}

// loopbackUp sets lo up (a new network namespace starts with it down).
func loopbackUp(t *testing.T) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	var ifr [40]byte // struct ifreq: name[16], then the flags (short)
	copy(ifr[:], "lo")
	*(*uint16)(unsafe.Pointer(&ifr[16])) = syscall.IFF_UP | syscall.IFF_RUNNING
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		t.Fatalf("bringing lo up: %v", errno)
	}
}

// portHolder names the processes listening on a TCP port ("rpcbind (pid
// 612)"), from /proc; "" when nothing listens or it cannot tell.
func portHolder(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// local_address is HEXIP:HEXPORT, st 0A is LISTEN, field 9 the inode.
			if len(fields) > 9 && strings.HasSuffix(fields[1], fmt.Sprintf(":%04X", port)) && fields[3] == "0A" {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	var holders []string
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !inodes[link] {
			continue
		}
		pid := strings.Split(fd, "/")[2]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		holders = append(holders, fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), pid))
	}
	if len(holders) == 0 {
		return "a process this user cannot see"
	}
	return strings.Join(holders, ", ")
}

// portHolder names the process that listens on a port: this one here.
func TestPortHolder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if got, want := portHolder(port), fmt.Sprintf("(pid %d)", os.Getpid()); !strings.Contains(got, want) {
		t.Errorf("portHolder(%d) = %q, want this process %s", port, got, want)
	}
	l.Close()
	if got := portHolder(port); got != "" {
		t.Errorf("portHolder(%d) after close = %q", port, got)
	}
}
