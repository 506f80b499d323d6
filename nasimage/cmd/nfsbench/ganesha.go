package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Ports of the benchmark's nfs-ganesha (loopback only).
const (
	ganeshaNFSPort   = 32049
	ganeshaMountPort = 32048
)

// startGanesha runs nfs-ganesha (Debian nfs-ganesha + nfs-ganesha-vfs) in
// the foreground, exporting a fresh directory over NFSv3 with the VFS FSAL.
// Ganesha registers with rpcbind, so rpcbind is started too when nothing
// listens on port 111; both only in a private network namespace (netns),
// where they bind nothing that other programs use. (Ganesha binds every
// address: Bind_Addr = 127.0.0.1 fails there, getaddrinfo's AI_ADDRCONFIG
// finds no address without a non-loopback interface.)
func startGanesha(root string, netns bool) (*server, error) {
	if !netns {
		return nil, errors.New("nfs-ganesha needs its own network namespace (port 111 for rpcbind): run `make bench-nfs` as root")
	}
	bin, err := exec.LookPath("ganesha.nfsd")
	if err != nil {
		return nil, errors.New("ganesha.nfsd not installed (apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind)")
	}
	dir := filepath.Join(root, "ganesha")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var undo []func()
	stopAll := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if !listening("127.0.0.1:111") {
		rpcbind, err := exec.LookPath("rpcbind")
		if err != nil {
			return nil, errors.New("rpcbind not installed and nothing listens on port 111")
		}
		cmd := serverCmd(rpcbind, "-f", "-w")
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("rpcbind: %w", err)
		}
		undo = append(undo, func() { cmd.Process.Kill(); cmd.Wait() })
		if !waitListening("127.0.0.1:111", 5*time.Second) {
			stopAll()
			return nil, errors.New("rpcbind did not start listening on port 111")
		}
	}
	conf := filepath.Join(root, "ganesha.conf")
	logFile := filepath.Join(root, "ganesha.log")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`
NFS_CORE_PARAM {
	NFS_Port = %d;
	MNT_Port = %d;
	Protocols = 3;
	Enable_NLM = false;
	Enable_RQUOTA = false;
}
NFSV4 { Graceless = true; }
EXPORT {
	Export_Id = 77;
	Path = %s;
	Pseudo = /bench;
	Protocols = 3;
	Transports = TCP;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
`, ganeshaNFSPort, ganeshaMountPort, dir)), 0o644)
	if err != nil {
		stopAll()
		return nil, err
	}
	cmd := serverCmd(bin, "-F", "-f", conf, "-L", logFile, "-p", filepath.Join(root, "ganesha.pid"))
	if err := cmd.Start(); err != nil {
		stopAll()
		return nil, fmt.Errorf("ganesha.nfsd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	undo = append(undo, func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", ganeshaNFSPort)
	deadline := time.Now().Add(30 * time.Second)
	for !listening(addr) || !listening(fmt.Sprintf("127.0.0.1:%d", ganeshaMountPort)) {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logFile)
			stopAll()
			return nil, fmt.Errorf("ganesha.nfsd exited (%v): %s", err, lastLines(string(log), 8))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			stopAll()
			return nil, fmt.Errorf("ganesha.nfsd did not listen within 30s: %s", lastLines(string(log), 8))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stops = append(stops, stopAll) // the global list check runs
	return &server{name: "nfs-ganesha", pid: cmd.Process.Pid, dir: dir,
		url:  fmt.Sprintf("nfs://127.0.0.1%s?nfsport=%d&mountport=%d&version=3", dir, ganeshaNFSPort, ganeshaMountPort),
		stop: stopAll}, nil
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func waitListening(addr string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if listening(addr) {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
