// Package kube runs, inside a kernel-lab guest, a real single-node
// Kubernetes cluster: the toolchain's etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy (iptables
// mode) with Debian's containerd, runc and CNI plugins. All its state is on
// the guest's tmpfs and all its traffic on the guest's own network (lo, a
// dummy interface holding the node IP, the CNI bridge).
//
// The guest's / is the host's: every path a component writes outside its
// configured directories is covered by a guest tmpfs first (isolate).
//
// Everything here runs as root inside the guest only.
package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// The node's fixed names and addresses (all inside the guest).
const (
	Context     = "kernellab" // the kubeconfig's context
	NodeName    = "lab-node"
	NodeIP      = "192.168.200.2" // on a dummy interface: kubelet refuses a loopback node IP
	PodCIDR     = "10.244.0.0/24"
	ClusterCIDR = "10.244.0.0/16"
	Dir         = "/run/lab/kube" // certificates, configs, etcd, logs
	apiPort     = "6443"
	// ToolchainBin holds etcd, the Kubernetes binaries and kubectl.
	ToolchainBin = "/var/cache/nas-toolchain/bin"
)

// Node is a running cluster.
type Node struct {
	Kubeconfig string
	procs      []proc
	// Steps records how long each start step took, in order.
	Steps []Step
}

// Step is one timed part of Start.
type Step struct {
	Name string
	Took time.Duration
}

// Options configure Start.
type Options struct {
	ServiceCIDR string   // the apiserver's --service-cluster-ip-range
	PauseImage  string   // the sandbox image reference (imported, never pulled)
	Images      []string // image tarballs to import into containerd's k8s.io namespace
}

// Start isolates the guest's writable paths, then starts containerd, the
// control plane, kubelet and kube-proxy, imports the images and waits for
// the node to be Ready.
func Start(o Options) (*Node, error) {
	n := &Node{Kubeconfig: filepath.Join(Dir, "admin.kubeconfig")}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"isolate", isolate},
		{"modules and network", network},
		{"certificates", func() error { return certificates(n.Kubeconfig) }},
		{"containerd", func() error { return n.containerd(o) }},
		{"images", func() error { return importImages(o.Images) }},
		{"control plane", func() error { return n.controlPlane(o) }},
		{"kubelet", n.kubelet},
		{"kube-proxy", func() error { return n.kubeProxy(o) }},
		{"node ready", n.waitReady},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.fn(); err != nil {
			n.Stop()
			return nil, fmt.Errorf("kube: %s: %w (logs in %s)", s.name, err, logsDir)
		}
		n.Steps = append(n.Steps, Step{s.name, time.Since(t0)})
		fmt.Printf("kube: %s in %.1fs\n", s.name, time.Since(t0).Seconds())
	}
	return n, nil
}

var logsDir = filepath.Join(Dir, "logs")

// isolate covers with guest tmpfs every host path the node writes whatever
// its configuration says: kubelet's /var/lib/kubelet/device-plugins and
// /var/log/pods, CNI's /var/lib/cni, containerd's defaults; and gives the
// guest a /proc/cpuinfo kubelet accepts (UML's has no "cpu MHz": kubelet
// stops with "could not detect clock speed").
func isolate() error {
	for _, d := range []string{"/var/lib", "/var/log"} {
		if err := run("mount", "-t", "tmpfs", "-o", "mode=0755", "node-"+filepath.Base(d), d); err != nil {
			return err
		}
	}
	// The boot's /var/lib/nfs tmpfs is hidden now: mount.nfs wants the directory.
	for _, d := range []string{"/var/lib/nfs", logsDir, filepath.Join(Dir, "home"), filepath.Join(Dir, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// kubelet's pod cgroups (v2) need these controllers below the root.
	if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu +io +memory +pids"), 0o644); err != nil {
		return fmt.Errorf("cgroup controllers: %w", err)
	}
	// kubectl and others cache under $HOME.
	if !strings.HasPrefix(os.Getenv("HOME"), "/run/") {
		os.Setenv("HOME", filepath.Join(Dir, "home"))
	}
	cpuinfo := filepath.Join(Dir, "cpuinfo")
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return err
	}
	if err := os.WriteFile(cpuinfo, []byte(kubeletCPUInfo(string(b))), 0o444); err != nil {
		return err
	}
	if err := run("mount", "--bind", cpuinfo, "/proc/cpuinfo"); err != nil {
		return err
	}
	// iptables-legacy for kube-proxy and the bridge plugin: the UML kernel
	// has nf_tables but not the nft NAT expressions.
	for _, t := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		if err := os.Symlink("/usr/sbin/xtables-legacy-multi", filepath.Join(Dir, "bin", t)); err != nil {
			return err
		}
	}
	os.Setenv("PATH", filepath.Join(Dir, "bin")+":"+ToolchainBin+":"+os.Getenv("PATH"))
	return nil
}

// kubeletCPUInfo adds to each processor of UML's /proc/cpuinfo the lines
// cadvisor reads (clock speed, topology).
func kubeletCPUInfo(orig string) string {
	var out strings.Builder
	for _, block := range strings.Split(strings.TrimSpace(orig), "\n\n") {
		out.WriteString(block)
		id := "0"
		for _, l := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "processor" {
				id = strings.TrimSpace(v)
			}
		}
		fmt.Fprintf(&out, "\ncpu MHz\t\t: 2000.000\nphysical id\t: 0\nsiblings\t: 1\ncore id\t\t: %s\ncpu cores\t: 1\n\n", id)
	}
	return out.String()
}

var modules = []string{
	"overlay", "dummy", "veth", "bridge", "br_netfilter",
	"nf_conntrack", "nf_nat", "ip_tables", "iptable_nat", "iptable_filter", "iptable_mangle",
	"xt_nat", "xt_conntrack", "xt_tcpudp", "xt_comment", "xt_mark", "xt_MASQUERADE",
	"xt_addrtype", "xt_statistic", "xt_multiport", "xt_physdev", "ipt_REJECT",
	"nfs", "nfsv3", "9pnet", "9pnet_fd", "9p",
}

// network: the node IP on a dummy interface, the default route to it (so
// a clusterIP is routed, then DNATed by kube-proxy, and anything else dies
// there), forwarding and bridge netfilter as kube-proxy needs them.
func network() error {
	if err := node.LoadModules(modules...); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "node0", "type", "dummy"},
		{"ip", "addr", "add", NodeIP + "/24", "dev", "node0"},
		{"ip", "link", "set", "node0", "up"},
		{"ip", "route", "add", "default", "dev", "node0"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"},
	} {
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func certificates(kubeconfig string) error {
	p, err := newPKI(filepath.Join(Dir, "pki"))
	if err != nil {
		return err
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(NodeIP), net.ParseIP("10.96.0.1")}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if err := p.issue("apiserver", "kube-apiserver", nil, ips, dns, true); err != nil {
		return err
	}
	if err := p.issue("admin", "kernellab-admin", []string{"system:masters"}, nil, nil, false); err != nil {
		return err
	}
	if err := p.issue("kubelet", "system:node:"+NodeName, []string{"system:nodes"}, nil, nil, false); err != nil {
		return err
	}
	if err := p.serviceAccountKey(); err != nil {
		return err
	}
	server := "https://127.0.0.1:" + apiPort
	if err := p.kubeconfig(kubeconfig, "admin", server); err != nil {
		return err
	}
	return p.kubeconfig(filepath.Join(Dir, "kubelet.kubeconfig"), "kubelet", server)
}

func (n *Node) containerd(o Options) error {
	cniConf := filepath.Join(Dir, "cni", "net.d")
	if err := os.MkdirAll(cniConf, 0o755); err != nil {
		return err
	}
	// The bridge plugin makes cni0 and masquerades with iptables; host-local
	// keeps its leases under /run.
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "lab", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}`, filepath.Join(Dir, "cni", "ipam"), PodCIDR)
	if err := os.WriteFile(filepath.Join(cniConf, "10-lab.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, o.PauseImage, cniConf)
	file := filepath.Join(Dir, "containerd.toml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		return err
	}
	if err := n.start("containerd", "containerd", "--config", file); err != nil {
		return err
	}
	return waitFor(60*time.Second, func() error {
		return run("ctr", "--address", "/run/containerd/containerd.sock", "version")
	})
}

func importImages(tarballs []string) error {
	for _, t := range tarballs {
		if err := run("ctr", "--namespace", "k8s.io", "images", "import", t); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) controlPlane(o Options) error {
	p := filepath.Join(Dir, "pki")
	if err := n.start("etcd", filepath.Join(ToolchainBin, "etcd"),
		"--data-dir", filepath.Join(Dir, "etcd"), "--unsafe-no-fsync",
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "default=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381"); err != nil {
		return err
	}
	if err := n.start("kube-apiserver", filepath.Join(ToolchainBin, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--advertise-address="+NodeIP, "--secure-port="+apiPort,
		"--tls-cert-file="+p+"/apiserver.crt", "--tls-private-key-file="+p+"/apiserver.key", "--client-ca-file="+p+"/ca.crt",
		"--service-account-key-file="+p+"/sa.pub", "--service-account-signing-key-file="+p+"/sa.key",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+o.ServiceCIDR,
		"--authorization-mode=Node,RBAC", "--allow-privileged=true",
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--kubelet-client-certificate="+p+"/admin.crt", "--kubelet-client-key="+p+"/admin.key"); err != nil {
		return err
	}
	if err := waitFor(4*time.Minute, n.apiReady); err != nil {
		return err
	}
	kc := n.Kubeconfig
	if err := n.start("kube-controller-manager", filepath.Join(ToolchainBin, "kube-controller-manager"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", "--leader-elect=false",
		"--service-account-private-key-file="+p+"/sa.key", "--root-ca-file="+p+"/ca.crt",
		"--use-service-account-credentials=true", "--service-cluster-ip-range="+o.ServiceCIDR,
		"--cluster-signing-cert-file="+p+"/ca.crt", "--cluster-signing-key-file="+p+"/ca.key"); err != nil {
		return err
	}
	return n.start("kube-scheduler", filepath.Join(ToolchainBin, "kube-scheduler"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", "--leader-elect=false")
}

// apiReady asks the apiserver's /readyz with the admin certificate.
func (n *Node) apiReady() error {
	p := filepath.Join(Dir, "pki")
	cert, err := tls.LoadX509KeyPair(p+"/admin.crt", p+"/admin.key")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(p + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	resp, err := c.Get("https://127.0.0.1:" + apiPort + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

func (n *Node) kubelet() error {
	p := filepath.Join(Dir, "pki")
	// Eviction thresholds must be positive ("memory.available must be
	// positive"); small ones keep a tmpfs node from evicting its pods.
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
resolvConf: ""
podCIDR: %q
# The guest is one slow CPU shared by the whole cluster: starting a shim
# can take minutes there (the default 2m ends in "context deadline exceeded").
runtimeRequestTimeout: 10m
`, p+"/ca.crt", PodCIDR)
	file := filepath.Join(Dir, "kubelet.yaml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		return err
	}
	return n.start("kubelet", filepath.Join(ToolchainBin, "kubelet"),
		"--config="+file, "--kubeconfig="+filepath.Join(Dir, "kubelet.kubeconfig"),
		"--root-dir=/var/lib/kubelet", "--cert-dir="+filepath.Join(Dir, "kubelet-pki"),
		"--hostname-override="+NodeName, "--node-ip="+NodeIP, "--v=1")
}

func (n *Node) kubeProxy(o Options) error {
	// conntrack sizes 0: kube-proxy leaves the guest kernel's sysctls alone.
	config := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %q
hostnameOverride: %q
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, n.Kubeconfig, ClusterCIDR, NodeName)
	file := filepath.Join(Dir, "kube-proxy.yaml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		return err
	}
	if err := n.start("kube-proxy", filepath.Join(ToolchainBin, "kube-proxy"), "--config="+file, "--v=1"); err != nil {
		return err
	}
	// Its first sync has made the Service chains.
	return waitFor(2*time.Minute, func() error { return run("iptables", "-t", "nat", "-n", "-L", "KUBE-SERVICES") })
}

func (n *Node) waitReady() error {
	if err := waitFor(5*time.Minute, func() error {
		_, err := n.Kubectl("wait", "--for=condition=Ready", "node/"+NodeName, "--timeout=20s")
		return err
	}); err != nil {
		return err
	}
	return waitFor(2*time.Minute, func() error {
		_, err := n.Kubectl("get", "serviceaccount", "default", "-n", "default")
		return err
	})
}

// Kubectl runs the toolchain's kubectl as the admin.
func (n *Node) Kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(ToolchainBin, "kubectl"), append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// start runs a component in the background, its output in logs/<name>.log.
func (n *Node) start(name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(logsDir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if name == "containerd" {
		// Debian's containerd, shim, runc and CNI plugins are built with Go
		// 1.19, which prints `GODEBUG: unknown cpu feature "avx512f"` to
		// stdout: the shim's address handshake then fails ("failed to start
		// shim: ... connect: invalid argument"). Go 1.19 uses no AVX-512.
		cmd.Env = withoutEnv(os.Environ(), "GODEBUG")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	n.procs = append(n.procs, proc{name, cmd, done})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	return nil
}

func withoutEnv(env []string, key string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return out
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Stop ends the components, the last started first; kubelet's containers
// die with the guest.
func (n *Node) Stop() {
	for i := len(n.procs) - 1; i >= 0; i-- {
		p := n.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	n.procs = nil
}

// LogTail is the end of a component's log, for failure messages.
func LogTail(name string, lines int) string {
	b, err := os.ReadFile(filepath.Join(logsDir, name+".log"))
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func waitFor(timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		case <-time.After(time.Second):
		}
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Exited reports a component that is no longer running.
func (n *Node) Exited() error {
	for _, p := range n.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, LogTail(p.name, 20))
		default:
		}
	}
	return nil
}
