package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nas-topology/nas-topology/components/spec"
)

// nfs-ganesha's own network namespace: knfsd owns 2049 and rpcbind's NFS
// registration in the node's, so ganesha gets a namespace (and a rpcbind)
// of its own behind a veth pair, reached at ganeshaIP.
const (
	ganeshaNetns = "ganesha"
	ganeshaHost  = "10.250.0.1"
	ganeshaIP    = "10.250.0.2"
	ganeshaRun   = "/run/lab/ganesha"
)

// Ganesha is a running nfs-ganesha (Debian nfs-ganesha + nfs-ganesha-vfs),
// a third reference server beside nasd and knfsd; only the benchmarks
// start it.
type Ganesha struct {
	Export string // the directory it exports, on the node's disk
	cmd    *exec.Cmd
}

// Source is the NFS source of ganesha's export.
func (g *Ganesha) Source() string { return ganeshaIP + ":" + g.Export }

// StartGanesha exports a directory of the node's disk over NFSv3 with the
// VFS FSAL and knfsd's options for s (rw/ro, root squash, s's fsid is not
// needed: the VFS FSAL takes the file system's).
//
// rpcbind's unix socket and lock file are paths, not per network
// namespace: the guest's rpcbind (knfsd's) has them, so ganesha and its
// rpcbind run in a mount namespace where fresh files are bound over them.
// That rpcbind cannot make its unix socket and serves TCP/UDP only; ganesha
// finds it on 127.0.0.1:111 of its namespace.
//
// Ganesha 4.3 answers the client's NFSACL SETACL (cp -a sets ACLs) with
// an I/O error ("Bad xdr_free for NFSACL_SETACL"), Enable_NFSACL = false
// or not: copy with tar, which sets modes with SETATTR.
func StartGanesha(s spec.Server) (*Ganesha, error) {
	bin, err := exec.LookPath("ganesha.nfsd")
	if err != nil {
		return nil, fmt.Errorf("ganesha.nfsd not installed (nfs-ganesha, nfs-ganesha-vfs): %w", err)
	}
	g := &Ganesha{Export: filepath.Join(Disk, "ganesha", s.Name)}
	if err := os.MkdirAll(g.Export, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(g.Export, AppUID, AppGID); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(ganeshaRun, "rpcbind"), 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"rpcbind.sock", "rpcbind.lock"} {
		if err := os.WriteFile(filepath.Join(ganeshaRun, f), nil, 0o644); err != nil {
			return nil, err
		}
	}
	cmds := [][]string{
		{"ip", "netns", "add", ganeshaNetns},
		{"ip", "link", "add", "gan0", "type", "veth", "peer", "name", "gan1"},
		{"ip", "link", "set", "gan1", "netns", ganeshaNetns},
		{"ip", "addr", "add", ganeshaHost + "/30", "dev", "gan0"},
		{"ip", "link", "set", "gan0", "up"},
		{"ip", "netns", "exec", ganeshaNetns, "ip", "addr", "add", ganeshaIP + "/30", "dev", "gan1"},
		{"ip", "netns", "exec", ganeshaNetns, "ip", "link", "set", "gan1", "up"},
		{"ip", "netns", "exec", ganeshaNetns, "ip", "link", "set", "lo", "up"},
	}
	for _, c := range cmds {
		if err := run(c[0], c[1:]...); err != nil {
			g.Stop()
			return nil, err
		}
	}
	access := "RW"
	if s.ReadOnly {
		access = "RO"
	}
	conf := filepath.Join(ganeshaRun, "ganesha.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`
NFS_CORE_PARAM {
	NFS_Port = 2049;
	MNT_Port = 20048;
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
	Access_Type = %s;
	Squash = Root_Squash;
	SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
`, g.Export, access)), 0o644)
	if err != nil {
		g.Stop()
		return nil, err
	}
	log, err := os.Create(filepath.Join(LogsDir, "ganesha.log"))
	if err != nil {
		g.Stop()
		return nil, err
	}
	defer log.Close()
	script := fmt.Sprintf(`
mount --bind %[1]s/rpcbind.sock /run/rpcbind.sock
mount --bind %[1]s/rpcbind.lock /run/rpcbind.lock
mount --bind %[1]s/rpcbind /run/rpcbind
rpcbind -f &
i=0; until rpcinfo -p 127.0.0.1 >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done
exec %[2]s -F -f %[3]s -L %[4]s -p %[1]s/ganesha.pid
`, ganeshaRun, bin, conf, filepath.Join(LogsDir, "ganesha-server.log"))
	g.cmd = exec.Command("ip", "netns", "exec", ganeshaNetns, "unshare", "--mount", "--propagation", "private", "sh", "-ec", script)
	g.cmd.Stdout, g.cmd.Stderr = log, log
	if err := g.cmd.Start(); err != nil {
		g.Stop()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { g.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(time.Minute)
	for _, port := range []string{"2049", "20048"} {
		for {
			if err := WaitTCP(ganeshaIP+":"+port, time.Second); err == nil {
				break
			}
			select {
			case <-exited:
				g.Stop()
				return nil, fmt.Errorf("ganesha exited before it listened on %s (see %s)", port, LogsDir)
			default:
			}
			if time.Now().After(deadline) {
				g.Stop()
				return nil, fmt.Errorf("ganesha not listening on %s after a minute (see %s)", port, LogsDir)
			}
		}
	}
	return g, nil
}

// Stop ends ganesha and its rpcbind (every process in its namespace: the
// lab started them all) and removes the namespace.
func (g *Ganesha) Stop() {
	out, _ := exec.Command("ip", "netns", "pids", ganeshaNetns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	for i := 0; i < 100; i++ {
		out, _ = exec.Command("ip", "netns", "pids", ganeshaNetns).Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if i == 50 { // 5 s after SIGTERM
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	run("ip", "netns", "del", ganeshaNetns)
}
