package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nas-topology/nas-topology/components/kinds"
	"github.com/nas-topology/nas-topology/components/spec"
)

// Type tokens of the Kubernetes resources the rules look at.
const (
	typePV      = kinds.PersistentVolume
	typePVC     = kinds.PersistentVolumeClaim
	typeService = kinds.Service
	typePod     = kinds.Pod
)

// nfsPV recognises a PersistentVolume with an nfs source and finds its server
// in the shared config by PV name (nil if it has none). nfs is false for
// anything else: other resources and other volume kinds are not ours.
func nfsPV(in input, c *checker) (r node, srv *server, nfs bool) {
	if in.typ != typePV {
		return node{}, nil, false
	}
	r = root(in.props)
	src := r.get("spec", "nfs")
	if src.v.IsComputed() {
		c.known(src)
		return r, nil, false
	}
	if !src.v.IsMap() {
		return r, nil, false
	}
	name := r.get("metadata", "name")
	c.subject = fmt.Sprintf("PersistentVolume %q", or(name.str(), in.name))
	if !c.known(name) {
		return r, nil, true
	}
	return r, in.exp.byVolume[name.str()], true
}

// checkPV: an NFS PersistentVolume is one of the shared volumes, and every field
// but nfs.server is the one components.VolumeFor renders from Pulumi.yaml.
func checkPV(in input, c *checker) {
	r, srv, nfs := nfsPV(in, c)
	if !nfs || r.get("metadata", "name").unknown() { // unknown: recorded by nfsPV
		return
	}
	if srv == nil {
		c.failf("has an nfs source but is not a volume of the shared config (no servers[].volumeName %q in %s); NFS volumes are defined there only, so that every stack gets the same ones",
			r.get("metadata", "name").str(), in.exp.file)
		return
	}
	v := srv.Volume
	src := fmt.Sprintf("Pulumi.yaml (server %s)", srv.Name)
	s := r.get("spec")

	if n := s.get("persistentVolumeReclaimPolicy"); c.known(n) && n.str() != "Retain" {
		c.failf("%s is %s, must be \"Retain\": a NAS volume must never delete or recycle its data", n.path, n.show())
	}
	c.wantStr(s.get("storageClassName"), v.StorageClassName, src)
	c.wantStr(s.get("capacity", "storage"), v.Capacity, src)
	c.wantStrs(s.get("accessModes"), v.AccessModes, false, src)
	c.wantStrs(s.get("mountOptions"), v.MountOptions, true, src)
	if n := s.get("volumeMode"); !n.isNull() {
		c.wantStr(n, v.VolumeMode, src)
	}
	c.wantStr(s.get("nfs", "path"), v.ExportPath, src)
	if n := s.get("nfs", "readOnly"); c.known(n) && n.isTrue() != v.ReadOnly {
		c.failf("%s is %s, %s says readOnly %t", n.path, n.show(), src, v.ReadOnly)
	}

	ref := s.get("claimRef")
	switch {
	case !c.known(ref):
	case !ref.v.IsMap():
		c.failf("spec.claimRef is not set: the volume must be reserved for its claim %s/%s, or any claim of the class could take it", v.Claim.Namespace, v.Claim.Name)
	default:
		c.wantStr(ref.get("namespace"), v.Claim.Namespace, src)
		c.wantStr(ref.get("name"), v.Claim.Name, src)
		if k := ref.get("kind"); !k.isNull() {
			c.wantStr(k, "PersistentVolumeClaim", "Kubernetes")
		}
	}

	labels := r.get("metadata", "labels")
	if c.known(labels) {
		got := labels.strMap()
		for _, k := range sortedKeys(v.Labels) {
			if got[k] != v.Labels[k] {
				c.failf("label %s is %q, %s says %q", k, got[k], src, v.Labels[k])
			}
		}
	}
}

// checkNFSServer: nfs.server is the address the stack config gives the server
// when the pack can see it; otherwise an IP address or a configured external
// host. Never a cluster DNS name: kubelet mounts from the node.
func checkNFSServer(in input, c *checker) {
	r, srv, nfs := nfsPV(in, c)
	if !nfs {
		return
	}
	n := r.get("spec", "nfs", "server")
	if !c.known(n) {
		return
	}
	addr := n.str()
	host := strings.TrimSuffix(strings.ToLower(addr), ".")
	_, ipErr := netip.ParseAddr(addr)
	want, configured := address{}, false
	if srv != nil {
		want, configured = in.stack.addresses[srv.Name]
	}
	switch {
	case addr == "":
		c.failf("spec.nfs.server is not set")
	case spec.IsClusterDNSName(host):
		c.failf("spec.nfs.server %q is a cluster DNS name: kubelet mounts NFS from the node, where cluster DNS names do not resolve; use the Service's fixed clusterIP (dev) or the NAS's address (production)", addr)
	case configured && addr != want.addr:
		c.failf("spec.nfs.server is %q, the stack config %s says %q", addr, want.key, want.addr)
	case configured, ipErr == nil:
	case slices.Contains(in.allowedHosts, host):
	default:
		c.failf("spec.nfs.server %q is neither an IP address nor a configured external host (%s:%s.addresses in the stack config, or the policy config allowedHosts)",
			addr, spec.Namespace, spec.KeyExternal)
	}
}

// checkPVC: every claim names its volume; a NAS claim (one the shared config
// defines) matches its volume's class, access modes and size; no other claim
// binds a NAS volume.
func checkPVC(in input, c *checker) {
	if in.typ != typePVC {
		return
	}
	r := root(in.props)
	nsN, nameN := r.get("metadata", "namespace"), r.get("metadata", "name")
	ns := or(nsN.str(), "default")
	c.subject = fmt.Sprintf("PersistentVolumeClaim %q", ns+"/"+or(nameN.str(), in.name))
	vn := r.get("spec", "volumeName")
	if c.known(vn) && vn.str() == "" {
		c.failf("spec.volumeName is not set: the claim must bind to its static PersistentVolume by name, not to whatever volume (or provisioner) matches")
	}
	if !c.known(nsN) || !c.known(nameN) {
		return
	}
	srv := in.exp.byClaim[spec.Claim{Namespace: ns, Name: nameN.str()}]
	if srv == nil {
		if other := in.exp.byVolume[vn.str()]; !vn.unknown() && other != nil {
			c.failf("binds the NAS volume %q, which Pulumi.yaml reserves for the claim %s/%s", vn.str(), other.Volume.Claim.Namespace, other.Volume.Claim.Name)
		}
		return
	}
	v := srv.Volume
	src := fmt.Sprintf("Pulumi.yaml (server %s)", srv.Name)
	if vn.str() != "" {
		c.wantStr(vn, v.Name, src)
	}
	s := r.get("spec")
	c.wantStr(s.get("storageClassName"), v.StorageClassName, src)
	c.wantStrs(s.get("accessModes"), v.AccessModes, false, src)
	c.wantStr(s.get("resources", "requests", "storage"), v.Capacity, src)
	if n := s.get("volumeMode"); !n.isNull() {
		c.wantStr(n, v.VolumeMode, src)
	}
}

func or(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
