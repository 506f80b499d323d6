// Package node builds, inside a kernel-lab guest, the storage side of a
// Minikube node as the program renders it: the Windows share mounted the way
// `minikube mount` mounts it (9P2000.L over TCP), one nasd "pod" per server
// (its own network namespace on a bridge, the Deployment's mount layout, the
// Deployment's uid, exactly the arguments components.NasdArgs renders), the
// Service as kube-proxy makes it (iptables DNAT of clusterIP:2049 and :111),
// and the kernel NFS client mounting each PV as components.VolumeFor renders
// it. knfsd runs beside it as the reference server.
//
// Everything here runs as root inside the guest only.
package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// Guest paths. /run and /tmp are the guest's tmpfs; Disk is the ext4 image
// the host made (the node's disk: emptyDirs and knfsd's exports live there).
const (
	Disk        = "/run/lab/disk"
	Backing     = "/run/lab/windows" // the Windows directories, behind the 9p share
	AppsDir     = "/run/lab/apps"    // where the kernel client mounts each PV
	LogsDir     = "/run/lab/logs"
	bridgeName  = "cni0"
	bridgeCIDR  = "10.244.0.1/24"
	podNet      = "10.244.0."
	diodPort    = "5640" // minikube mount serves 9p on a high port too
	knfsdPrefix = "/run/lab/disk/knfsd"
)

// Node is the guest's node: config, pods, mounts.
type Node struct {
	Config  *spec.Config
	Nasd    string // the nasd binary (static), copied into each pod's root
	Servers []spec.Server
	Pods    map[string]*Pod
	KnfsdOn bool
}

// Load reads the dev stack's config of the project in dir the way the
// program does.
func Load(dir string) (*spec.Config, error) {
	raw, err := spec.MergedConfig(dir, "dev")
	if err != nil {
		return nil, err
	}
	return spec.Load(func(k string) (string, bool) { v, ok := raw[k]; return v, ok })
}

// Setup builds the node: modules, network, the Windows share, a pod per
// server (started and ready), knfsd, and the PV mounts.
func Setup(cfg *spec.Config, nasd string) (*Node, error) {
	n := &Node{Config: cfg, Nasd: nasd, Servers: cfg.Servers, Pods: map[string]*Pod{}}
	WindowsUID = cfg.Cluster.RunAsUser
	uid, gid, ok := cfg.Cluster.Owner()
	if !ok {
		return nil, fmt.Errorf("the lab's apps run as cluster.filesOwner, which is %q: set it to UID:GID", cfg.Cluster.FilesOwner)
	}
	AppUID, AppGID = uid, gid
	steps := []struct {
		name string
		fn   func() error
	}{
		{"modules", loadModules},
		{"network", n.network},
		{"windows share", n.windowsShare},
		{"knfsd", n.startKnfsd},
		{"pods", n.startPods},
		{"mounts", n.mountVolumes},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.fn(); err != nil {
			return n, fmt.Errorf("node setup: %s: %w", s.name, err)
		}
		fmt.Printf("node: %s ready in %.2fs\n", s.name, time.Since(t0).Seconds())
	}
	return n, nil
}

// modules in load order (modprobe resolves the rest).
var modules = []string{
	"netfs", "fscache", "sunrpc", "grace", "lockd", "nfs_acl", "nfs", "nfsv3",
	"oid_registry", "auth_rpcgss", "nfsd",
	"9pnet", "9pnet_fd", "9p",
	"veth", "bridge", "nf_conntrack", "nf_nat", "ip_tables", "iptable_nat", "iptable_filter", "xt_nat", "xt_conntrack", "xt_tcpudp", "ipt_REJECT",
}

func loadModules() error {
	if err := os.MkdirAll(LogsDir, 0o755); err != nil {
		return err
	}
	return LoadModules(modules...)
}

// LoadModules inserts kernel modules (and their dependencies) from
// user-mode-linux's module tree.
func LoadModules(names ...string) error {
	dep, err := readModulesDep()
	if err != nil {
		return err
	}
	loaded := map[string]bool{}
	for _, m := range names {
		if err := dep.load(m, loaded); err != nil {
			return err
		}
	}
	return nil
}

// network makes the pod bridge and the route to the Service range, as a
// node with a bridge CNI and kube-proxy has them.
func (n *Node) network() error {
	cmds := [][]string{
		{"ip", "link", "add", bridgeName, "type", "bridge"},
		{"ip", "addr", "add", bridgeCIDR, "dev", bridgeName},
		{"ip", "link", "set", bridgeName, "up"},
		{"ip", "route", "add", n.Config.Cluster.ServiceCIDR, "dev", bridgeName},
	}
	for _, c := range cmds {
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// windowsShare serves Backing with diod and mounts it at the cluster's
// windowsRoot as `minikube mount --uid U --gid U` does: 9P2000.L over TCP,
// msize 262144, and every file the node sees owned by U (the README's
// minikube mount gives nasd's uid). diod squashes all access to a user with
// that uid, which the guest adds to its own copy of /etc/passwd. Each
// server's directory is made behind the share (hostPath DirectoryOrCreate).
func (n *Node) windowsShare() error {
	uid := n.Config.Cluster.RunAsUser
	if err := guestUser("windows", uid); err != nil {
		return err
	}
	if err := os.MkdirAll(Backing, 0o755); err != nil {
		return err
	}
	if err := run("mount", "-t", "tmpfs", "-o", "mode=0755", "windows", Backing); err != nil {
		return err
	}
	if err := os.Chown(Backing, uid, uid); err != nil {
		return err
	}
	for _, s := range n.Servers {
		if err := WindowsMkdirAll(filepath.Join(Backing, s.Name)); err != nil {
			return err
		}
	}
	diod := exec.Command("diod", "-f", "-n", "-S", "-U", "windows", "-l", "127.0.0.1:"+diodPort, "-e", Backing, "-L", filepath.Join(LogsDir, "diod.log"))
	if err := diod.Start(); err != nil {
		return err
	}
	if err := WaitTCP("127.0.0.1:"+diodPort, 10*time.Second); err != nil {
		return err
	}
	// The guest's / is the host's: shadow the mount point's parent with a
	// tmpfs so nothing is created on the host.
	root := n.Config.Cluster.WindowsRoot
	if err := run("mount", "-t", "tmpfs", "-o", "mode=0755", "node-mnt", filepath.Dir(root)); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	return run("mount", "-t", "9p", "-o", "trans=tcp,port="+diodPort+",version=9p2000.L,msize=262144,aname="+Backing+",uname=root,access=any", "127.0.0.1", root)
}

// ServeWindows serves the Windows share and mounts it at the cluster's
// windowsRoot as `minikube mount` does (see windowsShare), for a node whose
// pods kubelet runs.
func ServeWindows(cfg *spec.Config) error {
	WindowsUID = cfg.Cluster.RunAsUser
	if err := os.MkdirAll(LogsDir, 0o755); err != nil {
		return err
	}
	if err := LoadModules("9pnet", "9pnet_fd", "9p"); err != nil {
		return err
	}
	n := &Node{Config: cfg, Servers: cfg.Servers}
	return n.windowsShare()
}

// guestUser adds a user (and its group) to the guest's own copies of
// /etc/passwd and /etc/group, bound over the host's.
func guestUser(name string, uid int) error {
	for _, f := range []struct{ path, line string }{
		{"/etc/passwd", fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin\n", name, uid, uid)},
		{"/etc/group", fmt.Sprintf("%s:x:%d:\n", name, uid)},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		cp := filepath.Join("/run/lab", filepath.Base(f.path))
		if err := os.WriteFile(cp, append(b, f.line...), 0o644); err != nil {
			return err
		}
		if err := run("mount", "--bind", cp, f.path); err != nil {
			return err
		}
	}
	return nil
}

// WindowsUID owns everything on the Windows side, as minikube mount's --uid
// makes it look; set by Setup.
var WindowsUID int

// WindowsWriteFile writes a file behind the share as the Windows user.
func WindowsWriteFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Chown(path, WindowsUID, WindowsUID)
}

// WindowsMkdirAll makes directories behind the share as the Windows user.
func WindowsMkdirAll(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := WindowsMkdirAll(filepath.Dir(path)); err != nil {
		return err
	}
	if err := os.Mkdir(path, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return os.Chown(path, WindowsUID, WindowsUID)
}

func (n *Node) startPods() error {
	for i, s := range n.Servers {
		cs, ok := n.Config.Cluster.Servers[s.Name]
		if !ok {
			return fmt.Errorf("no cluster.servers entry for %s", s.Name)
		}
		p := &Pod{node: n, Server: s, ClusterIP: cs.ClusterIP, IP: fmt.Sprintf("%s%d", podNet, 10+i), netns: "pod-" + s.Name}
		if err := p.network(); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		n.Pods[s.Name] = p
		if err := p.Start(true); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	for _, s := range n.Servers {
		if err := n.Pods[s.Name].WaitReady(2 * time.Minute); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return nil
}

// Volume is what the program renders for a server's PV.
func (n *Node) Volume(s spec.Server) components.Volume {
	return components.VolumeFor(n.Config.Shared, s)
}

// MountPoint is where the kernel client mounts a server's PV.
func MountPoint(s spec.Server) string { return filepath.Join(AppsDir, s.Name) }

// KnfsdMountPoint is where the kernel client mounts knfsd's twin of a server.
func KnfsdMountPoint(s spec.Server) string { return filepath.Join(AppsDir, "knfsd-"+s.Name) }

// MountOptions are the options kubelet passes to mount for a PV: the PV's
// mountOptions, plus ro when the NFS source is read-only.
func MountOptions(v components.Volume) string {
	opts := slices.Clone(v.MountOptions)
	if v.ReadOnly {
		opts = append(opts, "ro")
	}
	return strings.Join(opts, ",")
}

// Source is the NFS source kubelet mounts for a server's PV: its
// clusterIP and export path.
func (n *Node) Source(s spec.Server) string {
	return n.Pods[s.Name].ClusterIP + ":" + n.Volume(s).ExportPath
}

// KnfsdSource is the NFS source of knfsd's twin of a server.
func KnfsdSource(s spec.Server) string { return "127.0.0.1:" + KnfsdExport(s) }

// Mount mounts an NFS source at dir (made if missing) with the kernel client.
func Mount(source, dir, options string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return run("mount", "-t", "nfs", "-o", options, source, dir)
}

func (n *Node) mountVolumes() error {
	for _, s := range n.Servers {
		opts := MountOptions(n.Volume(s))
		if err := Mount(n.Source(s), MountPoint(s), opts); err != nil {
			return err
		}
		if n.KnfsdOn {
			if err := Mount(KnfsdSource(s), KnfsdMountPoint(s), opts); err != nil {
				return err
			}
		}
	}
	return nil
}

// KnfsdExport is the directory knfsd exports as the twin of a server.
func KnfsdExport(s spec.Server) string { return filepath.Join(knfsdPrefix, s.Name) }

// startKnfsd exports, for every server, a directory of the node's disk with
// the options nasd is given (ro/rw, sync, root_squash, the server's fsid).
func (n *Node) startKnfsd() error {
	if err := os.MkdirAll("/proc/fs/nfsd", 0o755); err == nil {
		run("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
	}
	os.MkdirAll("/run/rpcbind", 0o755)
	for _, f := range []string{"etab", "rmtab", "xtab"} { // /var/lib/nfs is the guest's tmpfs
		if err := os.WriteFile(filepath.Join("/var/lib/nfs", f), nil, 0o644); err != nil {
			return err
		}
	}
	if err := run("rpcbind", "-w"); err != nil {
		return err
	}
	if err := knfsdClientGroups(); err != nil {
		return err
	}
	for _, s := range n.Servers {
		dir := KnfsdExport(s)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// The app's uid owns the share, as on the NAS.
		if err := os.Chown(dir, AppUID, AppGID); err != nil {
			return err
		}
		mode := "rw"
		if s.ReadOnly {
			mode = "ro"
		}
		opts := fmt.Sprintf("%s,sync,root_squash,no_subtree_check,fsid=%d", mode, *s.FSID)
		if err := run("exportfs", "-o", opts, "127.0.0.1:"+dir); err != nil {
			return err
		}
	}
	if err := run("rpc.mountd", "--no-nfs-version", "4"); err != nil {
		return err
	}
	if err := run("rpc.nfsd", "--no-nfs-version", "4", "8"); err != nil {
		return err
	}
	n.KnfsdOn = true
	return nil
}

// knfsdClientGroups makes the guest's rpc.mountd use the groups the
// client sends (the knfsd default, and what nasd does), not the server's
// user database: Debian's /etc/nfs.conf sets manage-gids=y, which gives a
// uid the server does not know no supplementary groups. A guest-only
// copy of the file is bound over it.
func knfsdClientGroups() error {
	b, err := os.ReadFile("/etc/nfs.conf")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cp := "/run/lab/nfs.conf"
	if err := os.WriteFile(cp, bytes.ReplaceAll(b, []byte("\nmanage-gids=y"), []byte("\nmanage-gids=n")), 0o644); err != nil {
		return err
	}
	return run("mount", "--bind", cp, "/etc/nfs.conf")
}

// RestartKnfsd stops and starts knfsd's threads, the reference for a server
// restart under a hard mount.
func RestartKnfsd() error {
	if err := run("rpc.nfsd", "0"); err != nil {
		return err
	}
	time.Sleep(time.Second)
	return run("rpc.nfsd", "--no-nfs-version", "4", "8")
}

// AppUID and AppGID are the ids the lab's "apps" run as (not root: root
// is squashed): cluster.filesOwner, the owner the NAS gives the Windows
// files and the export roots (knfsd's twins are chowned to it too).
var AppUID, AppGID = 1000, 1000

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WaitTCP waits up to timeout for something to listen on addr.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errNotRunning = errors.New("not running")
