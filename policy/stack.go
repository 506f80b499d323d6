package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"

	"github.com/nas-topology/nas-topology/components/spec"
)

// inOrder is the resources sorted by URN, so that of two clashing resources
// the same one is always reported, whatever order the engine sends them in.
func inOrder(rs []policyx.AnalyzerResource) []policyx.AnalyzerResource {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b policyx.AnalyzerResource) int { return strings.Compare(a.URN, b.URN) })
	return out
}

// about points the checker at one resource of the stack.
func about(c *checker, r policyx.AnalyzerResource, kind string) node {
	n := root(r.Properties)
	name := or(n.get("metadata", "name").str(), r.Name)
	if ns := n.get("metadata", "namespace").str(); ns != "" {
		name = ns + "/" + name
	}
	c.urn = r.URN
	c.subject = fmt.Sprintf("%s %q", kind, name)
	return n
}

// checkNodePorts: every fixed NodePort is inside the range and used once in
// the stack. Ports left to the cluster (no nodePort) are not checked.
func checkNodePorts(rs []policyx.AnalyzerResource, c *checker) {
	seen := map[int]string{}
	for _, r := range inOrder(rs) {
		if r.Type != typeService {
			continue
		}
		svc := about(c, r, "Service")
		ports := svc.get("spec", "ports")
		if ports.v.IsComputed() {
			c.known(ports)
			continue
		}
		for _, p := range ports.items() {
			np := p.get("nodePort")
			if !c.known(np) || !np.v.IsNumber() || np.v.AsNumber() == 0 {
				continue
			}
			port := int(np.v.AsNumber())
			switch other, dup := seen[port]; {
			case port < spec.NodePortMin || port > spec.NodePortMax:
				c.failf("%s %d is outside the NodePort range %d-%d", np.path, port, spec.NodePortMin, spec.NodePortMax)
			case dup:
				c.failf("%s %d is also the node port of %s", np.path, port, other)
			default:
				seen[port] = c.subject + " " + np.path
			}
		}
	}
}

// checkClusterIPs: no two Services ask for the same clusterIP. Unset, "None"
// (headless) and unknown addresses are not compared.
func checkClusterIPs(rs []policyx.AnalyzerResource, c *checker) {
	seen := map[string]string{}
	for _, r := range inOrder(rs) {
		if r.Type != typeService {
			continue
		}
		svc := about(c, r, "Service")
		ips := map[string]bool{}
		for _, n := range append([]node{svc.get("spec", "clusterIP")}, svc.get("spec", "clusterIPs").items()...) {
			if c.known(n) && n.str() != "" && n.str() != "None" {
				ips[n.str()] = true
			}
		}
		for _, ip := range sortedKeys(ips) {
			if other, dup := seen[ip]; dup {
				c.failf("clusterIP %s is also the clusterIP of %s", ip, other)
				continue
			}
			seen[ip] = c.subject
		}
	}
}

// checkFSIDs: no two containers in the stack export with the same fsid
// (`--fsid=N` in their command or args): NFS clients tell exports apart by it.
func checkFSIDs(rs []policyx.AnalyzerResource, c *checker) {
	seen := map[int]string{}
	for _, r := range inOrder(rs) {
		w, ok := workloadOf(r.Type, r.Name, r.Properties)
		if !ok {
			continue
		}
		c.urn = r.URN
		c.subject = fmt.Sprintf("%s %q", w.kind, w.name)
		for _, ctr := range containers(w.pod) {
			for _, field := range []string{"command", "args"} {
				n := ctr.get(field)
				if !c.known(n) {
					continue
				}
				list, _ := n.strs()
				raw, ok := parseFlags(list)["fsid"]
				if !ok {
					continue
				}
				fsid, err := strconv.Atoi(raw)
				if err != nil || fsid < 1 {
					c.failf("--fsid=%s in %s is not a positive integer", raw, n.path)
					continue
				}
				if other, dup := seen[fsid]; dup {
					c.failf("fsid %d (%s) is also the fsid of %s", fsid, n.path, other)
					continue
				}
				seen[fsid] = c.subject
			}
		}
	}
}

// checkClaimClasses: every claim with a volumeName binds a PersistentVolume of
// this stack with the same storage class (else Kubernetes never binds it).
func checkClaimClasses(rs []policyx.AnalyzerResource, c *checker) {
	classes := map[string]node{} // PV name -> spec.storageClassName
	for _, r := range inOrder(rs) {
		if r.Type == typePV {
			n := root(r.Properties)
			if name := n.get("metadata", "name"); name.str() != "" {
				classes[name.str()] = n.get("spec", "storageClassName")
			}
		}
	}
	for _, r := range inOrder(rs) {
		if r.Type != typePVC {
			continue
		}
		pvc := about(c, r, "PersistentVolumeClaim")
		vn := pvc.get("spec", "volumeName")
		if !c.known(vn) || vn.str() == "" {
			continue // no volumeName: reported by nas-pvc-matches-shared-spec
		}
		pvClass, ok := classes[vn.str()]
		if !ok {
			c.failf("binds the PersistentVolume %q, which this stack does not define", vn.str())
			continue
		}
		class := pvc.get("spec", "storageClassName")
		if !c.known(class) || !c.known(pvClass) {
			continue
		}
		if class.str() != pvClass.str() {
			c.failf("spec.storageClassName is %s but its PersistentVolume %q has %s: the claim would never bind", class.show(), vn.str(), pvClass.show())
		}
	}
}
