package spec

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/nas-topology/nas-topology/nasimage/image"
)

var (
	// DNS-1123 label (namespaces, server names) and subdomain (PV, PVC and class names, hosts).
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// Kubernetes resource.Quantity grammar: number, then a binary (Ki..Ei) or
	// decimal (n..E) suffix or an exponent. Capacities are never signed.
	quantity = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$`)
	// Label keys: optional DNS prefix, then a name of at most 63 characters; values likewise (may be empty).
	labelName  = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	mountOptRe = regexp.MustCompile(`^[A-Za-z0-9_.=:/-]+$`)
)

var accessModes = []string{"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}

func validate(c *Config, e *errs) {
	validateShared(&c.Shared, e)
	switch c.Target {
	case TargetCluster:
		validateCluster(c.Cluster, c.Servers, e)
	case TargetExternal:
		validateExternal(c.External, c.Servers, e)
	case "":
		e.add(KeyTarget, "is required: %q (run the servers in the cluster) or %q (physical NAS addresses)", TargetCluster, TargetExternal)
	default:
		e.add(KeyTarget, "unknown target %q: want %q or %q", c.Target, TargetCluster, TargetExternal)
	}
}

func validateShared(s *Shared, e *errs) {
	if !dnsLabel.MatchString(s.NasNamespace) {
		e.add(KeyNasNamespace, "%q is not a valid namespace name (DNS-1123 label)", s.NasNamespace)
	}
	if !dnsSubdomain.MatchString(s.StorageClassName) {
		e.add(KeyStorageClassName, "%q is not a valid storage class name", s.StorageClassName)
	}
	if s.ReclaimPolicy != "Retain" {
		e.add(KeyReclaimPolicy, "must be Retain (got %q): a static PV of a NAS must never delete or recycle its data", s.ReclaimPolicy)
	}
	if len(s.MountOptions) == 0 {
		e.add(KeyMountOptions, "is empty: the PVs need explicit NFS mount options (at least nfsvers=3) so dev and production mount alike")
	}
	for i, o := range s.MountOptions {
		if !mountOptRe.MatchString(o) {
			e.add(fmt.Sprintf("%s[%d]", KeyMountOptions, i), "%q is not a single mount option (no spaces or commas; one option per item)", o)
		}
	}
	validateLabels(KeyLabels, s.Labels, e)
	if len(s.Servers) == 0 {
		e.add(KeyServers, "is empty: at least one server is needed")
	}

	names := make([]string, len(s.Servers))
	for i, srv := range s.Servers {
		names[i] = srv.Name
	}
	label := serverFields(names) // servers[<name>], or servers[<i>] when the name does not say which
	seen := map[string]int{}
	fsids := map[int]int{}
	volumes := map[string]int{}
	claims := map[Claim]int{}
	for i, srv := range s.Servers {
		f := func(field string) string { return label[i] + "." + field }
		if !dnsLabel.MatchString(srv.Name) {
			e.add(f("name"), "%q is not a valid server name (DNS-1123 label: lower case letters, digits, '-')", srv.Name)
		} else if j, dup := seen[srv.Name]; dup {
			e.add(f("name"), "duplicate server name %q (also %s)", srv.Name, label[j])
		} else {
			seen[srv.Name] = i
		}
		if !srv.Role.Valid() {
			e.add(f("role"), "unknown role %q: want one of %v", srv.Role, Roles)
		}
		switch {
		case srv.FSID == nil:
			e.add(f("fsid"), "is missing: every export needs a unique fsid")
		case *srv.FSID < 1:
			e.add(f("fsid"), "must be a positive integer, got %d", *srv.FSID)
		default:
			if j, dup := fsids[*srv.FSID]; dup {
				e.add(f("fsid"), "duplicate fsid %d (also %s)", *srv.FSID, label[j])
			} else {
				fsids[*srv.FSID] = i
			}
		}
		if !path.IsAbs(srv.ExportPath) || path.Clean(srv.ExportPath) != srv.ExportPath || srv.ExportPath == "/" {
			e.add(f("exportPath"), "%q must be a clean absolute path below / (e.g. /exports/input-1)", srv.ExportPath)
		}
		switch {
		case !quantity.MatchString(srv.Capacity):
			e.add(f("capacity"), "%q is not a Kubernetes quantity (e.g. 500Gi, 2Ti)", srv.Capacity)
		case zeroQuantity(srv.Capacity):
			e.add(f("capacity"), "%q is zero: a volume needs a positive capacity (e.g. 500Gi)", srv.Capacity)
		}
		if len(srv.AccessModes) == 0 {
			e.add(f("accessModes"), "is empty: want some of %v", accessModes)
		}
		for k, m := range srv.AccessModes {
			if !slices.Contains(accessModes, m) {
				e.add(fmt.Sprintf("%s[%d]", f("accessModes"), k), "unknown access mode %q: want one of %v", m, accessModes)
			} else if srv.ReadOnly && m != "ReadOnlyMany" {
				e.add(fmt.Sprintf("%s[%d]", f("accessModes"), k), "%s on a read-only export: use ReadOnlyMany", m)
			}
		}
		if srv.Role.ReadOnly() && !srv.ReadOnly {
			e.add(f("readOnly"), "must be true for the %s server %q: the %s NAS is read-only in production", srv.Role, srv.Name, srv.Role)
		}
		if !dnsSubdomain.MatchString(srv.VolumeName) {
			e.add(f("volumeName"), "%q is not a valid PersistentVolume name", srv.VolumeName)
		} else if j, dup := volumes[srv.VolumeName]; dup {
			e.add(f("volumeName"), "duplicate PersistentVolume name %q (also %s)", srv.VolumeName, label[j])
		} else {
			volumes[srv.VolumeName] = i
		}
		if !dnsLabel.MatchString(srv.Claim.Namespace) {
			e.add(f("claim.namespace"), "%q is not a valid namespace name", srv.Claim.Namespace)
		}
		if !dnsSubdomain.MatchString(srv.Claim.Name) {
			e.add(f("claim.name"), "%q is not a valid PersistentVolumeClaim name", srv.Claim.Name)
		} else if j, dup := claims[srv.Claim]; dup {
			e.add(f("claim"), "duplicate claim %s/%s (also %s)", srv.Claim.Namespace, srv.Claim.Name, label[j])
		} else {
			claims[srv.Claim] = i
		}
		validateLabels(f("labels"), srv.Labels, e)
	}
}

func validateLabels(field string, labels map[string]string, e *errs) {
	for _, k := range sortedKeys(labels) {
		name := k
		if prefix, rest, ok := strings.Cut(k, "/"); ok {
			name = rest
			if !dnsSubdomain.MatchString(prefix) {
				e.add(field+"."+k, "label key prefix %q is not a DNS subdomain", prefix)
			}
		}
		if name == "" || !labelName.MatchString(name) {
			e.add(field+"."+k, "%q is not a valid label key", k)
		}
		if !labelName.MatchString(labels[k]) {
			e.add(field+"."+k, "%q is not a valid label value", labels[k])
		}
	}
}

func validateCluster(c *Cluster, servers []Server, e *errs) {
	const key = KeyCluster
	if !path.IsAbs(c.WindowsRoot) {
		e.add(key+".windowsRoot", "%q must be an absolute path inside the node (e.g. /mnt/windows)", c.WindowsRoot)
	}
	switch {
	case !slices.Contains(image.Loaders, c.ImageLoader):
		e.add(key+".imageLoader", "unknown image loader %q: want one of %v", c.ImageLoader, image.Loaders)
	case c.ImageLoader == image.LoaderRegistry && c.ImageRegistry == "":
		e.add(key+".imageRegistry", "is required with imageLoader registry (e.g. localhost:5000)")
	case c.Image != "" && c.ImageLoader != image.LoaderNone:
		e.add(key+".image", "a prebuilt image is only used with imageLoader none; with %q the image is built from nasimage/ (remove image, or set imageLoader: none)", c.ImageLoader)
	}
	if !slices.Contains(image.Arches, c.NodeArch) {
		e.add(key+".nodeArch", "unknown node architecture %q: nasd is built for %v", c.NodeArch, image.Arches)
	}
	if strings.ContainsAny(c.Image, " \t\n") {
		e.add(key+".image", "%q is not an image reference", c.Image)
	}
	if !quantity.MatchString(c.ExportSizeLimit) {
		e.add(key+".exportSizeLimit", "%q is not a Kubernetes quantity", c.ExportSizeLimit)
	}
	if c.RunAsUser < 1 {
		e.add(key+".runAsUser", "must be a non-root uid, got %d", c.RunAsUser)
	}
	if _, _, ok := c.Owner(); c.FilesOwner != "" && !ok {
		e.add(key+".filesOwner", "%q is not UID:GID (e.g. \"1000:1000\")", c.FilesOwner)
	}
	cidr, err := netip.ParsePrefix(c.ServiceCIDR)
	if err != nil {
		e.add(key+".serviceCIDR", "%q is not a CIDR (e.g. 10.96.0.0/12)", c.ServiceCIDR)
	}

	ips := map[netip.Addr]string{}
	ports := map[int]string{}
	for _, srv := range servers {
		f := func(field string) string { return fmt.Sprintf("%s.servers.%s.%s", key, srv.Name, field) }
		cs, ok := c.Servers[srv.Name]
		if !ok {
			e.add(fmt.Sprintf("%s.servers.%s", key, srv.Name), "is missing: every server needs a clusterIP and a nodePort")
			continue
		}
		ip, err := netip.ParseAddr(cs.ClusterIP)
		switch {
		case err != nil:
			e.add(f("clusterIP"), "%q is not a valid IP address", cs.ClusterIP)
		case cidr.IsValid() && !cidr.Contains(ip):
			e.add(f("clusterIP"), "%s is outside the service CIDR %s", ip, cidr)
		case reservedClusterIP(cidr, ip) != "":
			e.add(f("clusterIP"), "%s is %s", ip, reservedClusterIP(cidr, ip))
		default:
			if other, dup := ips[ip]; dup {
				e.add(f("clusterIP"), "duplicate clusterIP %s (also %s)", ip, other)
			}
			ips[ip] = srv.Name
		}
		for _, np := range []struct {
			field string
			port  int
		}{{"nodePort", cs.NodePort}, {"portmapperNodePort", cs.PortmapperNodePort}} {
			field, port := np.field, np.port
			if port < NodePortMin || port > NodePortMax {
				e.add(f(field), "%d is outside the NodePort range %d-%d", port, NodePortMin, NodePortMax)
			} else if other, dup := ports[port]; dup {
				e.add(f(field), "duplicate node port %d (also %s)", port, other)
			} else {
				ports[port] = srv.Name + "." + field
			}
		}
	}
	unknownServers(key+".servers", sortedKeys(c.Servers), servers, e)
}

// reservedClusterIP says why ip may not be a server's fixed clusterIP in
// cidr, or "" if it may: the network address (and for IPv4 the broadcast
// address) is never allocated, the first address is the kubernetes Service
// (the API server), the tenth the cluster DNS Service (kubeadm's and
// minikube's kube-dns, 10.96.0.10 in the default range).
func reservedClusterIP(cidr netip.Prefix, ip netip.Addr) string {
	network := cidr.Masked().Addr()
	nth := func(n int) netip.Addr {
		a := network
		for range n {
			a = a.Next()
		}
		return a
	}
	switch ip {
	case network:
		return "the network address of " + cidr.String()
	case nth(1):
		return "the first address of " + cidr.String() + ": the kubernetes Service (the API server) has it"
	case nth(10):
		return "the tenth address of " + cidr.String() + ": the cluster DNS Service (kube-dns) has it"
	}
	if ip.Is4() && cidr.Bits() < 31 {
		b := network.As4()
		host := uint32(1)<<(32-cidr.Bits()) - 1
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
		if ip == netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) {
			return "the broadcast address of " + cidr.String()
		}
	}
	return ""
}

// zeroQuantity reports whether a valid quantity is zero (0, 0Gi, 0.0Ti, 0e3).
func zeroQuantity(q string) bool {
	m := quantity.FindStringSubmatch(q)
	return m != nil && strings.Trim(m[1], "0.") == ""
}

func validateExternal(x *External, servers []Server, e *errs) {
	const key = KeyExternal + ".addresses"
	for _, srv := range servers {
		f := key + "." + srv.Name
		addr, ok := x.Addresses[srv.Name]
		if !ok || addr == "" {
			e.add(f, "is missing: an external target needs the physical NAS address of every server")
			continue
		}
		if msg := checkNFSAddress(addr); msg != "" {
			e.add(f, "%s", msg)
		}
	}
	unknownServers(key, sortedKeys(x.Addresses), servers, e)
}

// checkNFSAddress says what is wrong with a PV's nfs.server, or "" if nothing.
// kubelet mounts from the node, where cluster DNS does not resolve.
func checkNFSAddress(addr string) string {
	if _, err := netip.ParseAddr(addr); err == nil {
		return ""
	}
	host := strings.TrimSuffix(strings.ToLower(addr), ".")
	if IsClusterDNSName(host) {
		return fmt.Sprintf("%q is a cluster DNS name: kubelet mounts NFS from the node, where cluster DNS does not resolve; use an IP address or a host name the nodes resolve", addr)
	}
	if !dnsSubdomain.MatchString(host) {
		return fmt.Sprintf("%q is neither an IP address nor a valid host name", addr)
	}
	return ""
}

// IsClusterDNSName reports whether host is a Kubernetes Service DNS name.
func IsClusterDNSName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return strings.HasSuffix(host, ".svc") || strings.HasSuffix(host, ".svc.cluster.local") || strings.HasSuffix(host, ".cluster.local")
}

// unknownServers reports stack entries for servers the shared config does not have:
// most likely a typo that would otherwise leave the real server unconfigured.
func unknownServers(field string, names []string, servers []Server, e *errs) {
	for _, n := range names {
		if !slices.ContainsFunc(servers, func(s Server) bool { return s.Name == n }) {
			e.add(field+"."+n, "no server named %q in the shared config (Pulumi.yaml servers)", n)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
