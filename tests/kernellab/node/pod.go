package node

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// Pod is one server's nasd as the Deployment runs it: its own network
// namespace with a pod IP on the bridge, a read-only root holding only the
// static binary, the Windows directory (the share's <root>/<server>,
// read-only unless the server writes back), a disk-backed emptyDir at the
// data mount, the handle-key Secret when the arguments name one, and the
// Deployment's non-root uid.
type Pod struct {
	node      *Node
	Server    spec.Server
	ClusterIP string
	IP        string
	netns     string
	gen       int    // emptyDir generation: a replaced pod gets a new one
	EmptyDir  string // the current emptyDir on the node's disk
	Args      []string
	cmd       *exec.Cmd
	exited    chan struct{}
	log       *os.File
	rejecting bool // the Service has no endpoint (see endpoint)
}

// endpoint makes the Service follow the pod's readiness, as the endpoints
// controller and kube-proxy do: a pod that is stopping or not yet Ready is
// no endpoint, and kube-proxy rejects a Service without endpoints, so a
// client retries rather than reach a nasd still filling a new export. The
// DNAT stays; a REJECT matches the connections to the clusterIP.
func (p *Pod) endpoint(ready bool) error {
	if ready != p.rejecting {
		return nil
	}
	op := "-I"
	if ready {
		op = "-D"
	}
	if err := run("iptables-legacy", "-t", "filter", op, "OUTPUT", "-p", "tcp", "-m", "conntrack", "--ctorigdst", p.ClusterIP,
		"-j", "REJECT", "--reject-with", "tcp-reset"); err != nil {
		return err
	}
	p.rejecting = !ready
	return nil
}

func (p *Pod) network() error {
	host := "veth" + strconv.Itoa(len(p.node.Pods))
	steps := [][]string{
		{"ip", "netns", "add", p.netns},
		{"ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", p.netns},
		{"ip", "link", "set", host, "master", bridgeName},
		{"ip", "link", "set", host, "up"},
		{"ip", "-n", p.netns, "link", "set", "lo", "up"},
		{"ip", "-n", p.netns, "addr", "add", p.IP + "/24", "dev", "eth0"},
		{"ip", "-n", p.netns, "link", "set", "eth0", "up"},
		{"ip", "-n", p.netns, "route", "add", "default", "via", strings.Split(bridgeCIDR, "/")[0]},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	// kube-proxy (iptables mode): the Service ports to the pod's container ports.
	for _, m := range []struct{ service, container int }{
		{components.NFSPort, flagPort(components.NasdArgs(p.Server, p.node.Config.Cluster), "--listen")},
		{components.PortmapperPort, flagPort(components.NasdArgs(p.Server, p.node.Config.Cluster), "--portmap-listen")},
	} {
		if err := run("iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", p.ClusterIP, "-p", "tcp", "--dport", strconv.Itoa(m.service),
			"-j", "DNAT", "--to-destination", p.IP+":"+strconv.Itoa(m.container)); err != nil {
			return err
		}
	}
	return nil
}

// flagPort is the port of a listen flag (":20490") in rendered arguments.
func flagPort(args []string, name string) int {
	v := flagValue(args, name)
	i := strings.LastIndex(v, ":")
	port, err := strconv.Atoi(v[i+1:])
	if err != nil {
		panic(fmt.Sprintf("nasd argument %s=%q has no port", name, v))
	}
	return port
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// Start runs nasd; fresh gives it a new emptyDir (a new pod), otherwise it
// keeps the current one (the container restarted in place).
func (p *Pod) Start(fresh bool) error {
	if fresh || p.EmptyDir == "" {
		p.gen++
		p.EmptyDir = filepath.Join(Disk, "pods", fmt.Sprintf("%s-%d", p.Server.Name, p.gen), "data")
		// kubelet makes an emptyDir group-owned by fsGroup, setgid.
		if err := os.MkdirAll(p.EmptyDir, 0o755); err != nil {
			return err
		}
		uid := p.node.Config.Cluster.RunAsUser
		if err := os.Chown(p.EmptyDir, 0, uid); err != nil {
			return err
		}
		if err := os.Chmod(p.EmptyDir, 0o2777); err != nil {
			return err
		}
	}
	root, err := p.root()
	if err != nil {
		return err
	}
	p.Args = components.NasdArgs(p.Server, p.node.Config.Cluster)
	if level := os.Getenv("LAB_NASD_LOG"); level != "" {
		p.Args = append(p.Args, "--log-level="+level)
	}
	uid := strconv.Itoa(p.node.Config.Cluster.RunAsUser)
	argv := append([]string{"netns", "exec", p.netns, "chroot", "--userspec=" + uid + ":" + uid, "--groups=" + uid, root, "/nasd"}, p.Args...)
	p.log, err = os.OpenFile(filepath.Join(LogsDir, p.Server.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.log, "---- start (emptyDir %s) %s\n", p.EmptyDir, strings.Join(argv, " "))
	p.cmd = exec.Command("ip", argv...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GODEBUG=cpu.avx512f=off"}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}, log *os.File) {
		c.Wait()
		fmt.Fprintf(log, "---- exited: %v\n", c.ProcessState)
		close(done)
	}(p.cmd, p.exited, p.log)
	return nil
}

// root builds the container's root filesystem: a tmpfs with /nasd and the
// Deployment's mounts, remounted read-only (readOnlyRootFilesystem).
func (p *Pod) root() (string, error) {
	dir := filepath.Join("/run/lab/pods", p.Server.Name)
	exec.Command("umount", "-R", dir).Run() // the previous container's
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := run("mount", "-t", "tmpfs", "-o", "mode=0755", "rootfs-"+p.Server.Name, dir); err != nil {
		return "", err
	}
	bin, err := os.ReadFile(p.node.Nasd)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "nasd"), bin, 0o755); err != nil {
		return "", err
	}
	args := components.NasdArgs(p.Server, p.node.Config.Cluster)
	windows := flagValue(args, "--windows-dir")
	data := filepath.Dir(flagValue(args, "--export"))
	type bind struct {
		src, dst string
		ro       bool
	}
	binds := []bind{
		// Only output servers write back to Windows (the Deployment's rule).
		{filepath.Join(p.node.Config.Cluster.WindowsRoot, p.Server.Name), windows, p.Server.Role != spec.RoleOutput},
		{p.EmptyDir, data, false},
	}
	if key := flagValue(args, "--handle-key-file"); key != "" {
		secret, err := p.node.secret(p.Server)
		if err != nil {
			return "", err
		}
		binds = append(binds, bind{secret, filepath.Dir(key), true})
	}
	for _, d := range []string{"dev", "proc"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	for _, b := range binds {
		dst := filepath.Join(dir, b.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return "", err
		}
		if err := run("mount", "--bind", b.src, dst); err != nil {
			return "", err
		}
		if b.ro {
			if err := run("mount", "-o", "remount,bind,ro", dst); err != nil {
				return "", err
			}
		}
	}
	for _, dev := range []string{"null", "zero", "random", "urandom"} {
		f := filepath.Join(dir, "dev", dev)
		os.WriteFile(f, nil, 0o644)
		if err := run("mount", "--bind", "/dev/"+dev, f); err != nil {
			return "", err
		}
	}
	if err := run("mount", "-t", "proc", "proc", filepath.Join(dir, "proc")); err != nil {
		return "", err
	}
	return dir, run("mount", "-o", "remount,ro", dir)
}

// secret is the server's handle-key Secret as kubelet projects it: created
// once per server and kept across pods.
func (n *Node) secret(s spec.Server) (string, error) {
	dir := filepath.Join("/run/lab/secrets", s.Name)
	key := filepath.Join(dir, "handle.key")
	if _, err := os.Stat(key); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	rand.Read(b)
	if err := os.WriteFile(key, b, 0o440); err != nil {
		return "", err
	}
	return dir, os.Chown(key, 0, n.Config.Cluster.RunAsUser)
}

// WaitReady polls /readyz as the readiness probe does.
func (p *Pod) WaitReady(timeout time.Duration) error {
	url := p.httpURL("/readyz")
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("nasd exited before ready (log %s)", p.log.Name())
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p.endpoint(true)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// httpURL is path on nasd's HTTP endpoint (probes, metrics).
func (p *Pod) httpURL(path string) string {
	return fmt.Sprintf("http://%s:%d%s", p.IP, flagPort(p.Args, "--http-listen"), path)
}

// Metrics returns nasd's /metrics page.
func (p *Pod) Metrics() (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.httpURL("/metrics"))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Stop sends SIGTERM as kubelet does and waits for the exit.
func (p *Pod) Stop() error { return p.signal(syscall.SIGTERM, 70*time.Second) }

// Kill is kill -9 (an OOM kill, a node crash as nasd sees it).
func (p *Pod) Kill() error { return p.signal(syscall.SIGKILL, 10*time.Second) }

func (p *Pod) signal(sig syscall.Signal, wait time.Duration) error {
	if p.cmd == nil {
		return errNotRunning
	}
	if err := p.endpoint(false); err != nil {
		return err
	}
	// ip netns exec execs chroot, which execs nasd: one pid.
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(wait):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("nasd did not exit %s after %v", wait, sig)
	}
}

// Restart is a container restart in place: same emptyDir.
func (p *Pod) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	if err := p.Start(false); err != nil {
		return err
	}
	return p.WaitReady(2 * time.Minute)
}

// Replace is a new pod: a new emptyDir, the same Secret; nasd re-syncs the
// export from the Windows share.
func (p *Pod) Replace() error {
	if err := p.Stop(); err != nil {
		return err
	}
	if err := p.Start(true); err != nil {
		return err
	}
	return p.WaitReady(2 * time.Minute)
}

// ReplaceRoutedAtStart is Replace with the Service routing to the new pod
// from its start instead of from Ready: what a client that mounts the pod's
// IP sees, or one behind a Deployment without a readiness probe. nasd
// itself must hold such a client (JUKEBOX) until its initial sync is done.
func (p *Pod) ReplaceRoutedAtStart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	if err := p.Start(true); err != nil {
		return err
	}
	if err := p.endpoint(true); err != nil {
		return err
	}
	return p.WaitReady(2 * time.Minute)
}

// Log is nasd's log so far (all containers of this pod).
func (p *Pod) Log() string {
	b, _ := os.ReadFile(filepath.Join(LogsDir, p.Server.Name+".log"))
	return string(b)
}
