package main

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"github.com/nas-topology/nas-topology/components/kinds"
	"github.com/nas-topology/nas-topology/components/spec"
)

// Labels of the nasd workloads (components/workload.go).
const (
	labelName     = "app.kubernetes.io/name"
	labelInstance = "app.kubernetes.io/instance"
	labelRole     = "nas-topology/role"
	nasdName      = "nasd"
)

// podTemplates says where each workload type keeps its pod template.
var podTemplates = map[string][]string{
	kinds.Deployment:                 {"spec", "template"},
	"kubernetes:apps/v1:StatefulSet": {"spec", "template"},
	"kubernetes:apps/v1:DaemonSet":   {"spec", "template"},
	"kubernetes:apps/v1:ReplicaSet":  {"spec", "template"},
	"kubernetes:batch/v1:Job":        {"spec", "template"},
	"kubernetes:batch/v1:CronJob":    {"spec", "jobTemplate", "spec", "template"},
	typePod:                          nil, // the pod itself
}

// workload is a resource that runs pods.
type workload struct {
	kind   string // Deployment, Pod, ...
	name   string
	labels node // the resource's own labels
	tmpl   node // the pod template's labels (the pod's own for a Pod)
	pod    node // the pod spec
}

func workloadOf(typ, urnName string, props property.Map) (workload, bool) {
	path, ok := podTemplates[typ]
	if !ok {
		return workload{}, false
	}
	r := root(props)
	tmpl := r.get(path...)
	w := workload{
		kind:   typ[strings.LastIndex(typ, ":")+1:],
		labels: r.get("metadata", "labels"),
		tmpl:   tmpl.get("metadata", "labels"),
		pod:    tmpl.get("spec"),
	}
	w.name = or(r.get("metadata", "name").str(), urnName)
	if ns := r.get("metadata", "namespace").str(); ns != "" {
		w.name = ns + "/" + w.name
	}
	return w, true
}

// label is a label of the resource or, failing that, of its pod template.
func (w workload) label(key string) string {
	return or(w.labels.get(key).str(), w.tmpl.get(key).str())
}

// isNasd tells the nasd workloads apart (app.kubernetes.io/name=nasd on the
// resource or its pods). Unknown labels are recorded and count as "no".
func isNasd(w workload, c *checker) bool {
	if w.label(labelName) == nasdName {
		return true
	}
	c.known(w.labels)
	c.known(w.tmpl)
	return false
}

// containers are all the containers of a pod spec, init and ephemeral ones too.
func containers(pod node) []node {
	var out []node
	for _, k := range []string{"containers", "initContainers", "ephemeralContainers"} {
		out = append(out, pod.get(k).items()...)
	}
	return out
}

// checkPodSecurity: a nasd pod meets the "restricted" pod security standard
// (hostPath volumes aside: nasd's Windows directory is one by design), with a
// read-only root filesystem, requests and limits, and bounded emptyDirs.
func checkPodSecurity(in input, c *checker) {
	w, ok := workloadOf(in.typ, in.name, in.props)
	if !ok || !isNasd(w, c) {
		return
	}
	c.subject = fmt.Sprintf("%s %q", w.kind, w.name)
	pod := w.pod
	if pod.v.IsComputed() {
		c.known(pod)
		return
	}
	for _, f := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if n := pod.get(f); c.known(n) && n.isTrue() {
			c.failf("%s is true: the restricted pod security standard forbids the node's namespaces", n.path)
		}
	}
	psc := pod.get("securityContext")
	if n := psc.get("runAsUser"); c.known(n) && n.v.IsNumber() && n.v.AsNumber() == 0 {
		c.failf("%s is 0: nasd must not run as root", n.path)
	}
	all := containers(pod)
	if len(all) == 0 {
		c.known(pod.get("containers"))
	}
	for _, ctr := range all {
		checkContainerSecurity(ctr, psc, c)
	}
	for _, vol := range pod.get("volumes").items() {
		ed := vol.get("emptyDir")
		if !c.known(ed) || !ed.v.IsMap() {
			continue
		}
		if sl := ed.get("sizeLimit"); sl.str() == "" && !sl.v.IsNumber() {
			c.failf("emptyDir volume %q has no sizeLimit: an unbounded emptyDir lets a runaway writer fill the node's disk", vol.get("name").str())
		}
	}
}

func checkContainerSecurity(ctr, psc node, c *checker) {
	sc := ctr.get("securityContext")
	if n := sc.get("privileged"); c.known(n) && n.isTrue() {
		c.failf("%s is true: privileged containers are forbidden", n.path)
	}
	if n := sc.get("allowPrivilegeEscalation"); c.known(n) && !n.isFalse() {
		c.failf("%s is %s, must be false", n.path, n.show())
	}
	if n := sc.get("capabilities", "drop"); c.known(n) {
		if drop, _ := n.strs(); !slices.Contains(drop, "ALL") {
			c.failf("%s is %s, must contain \"ALL\"", n.path, n.show())
		}
	}
	if n := sc.get("capabilities", "add"); c.known(n) {
		if add, _ := n.strs(); len(add) > 0 || !(n.isNull() || n.v.IsArray()) {
			c.failf("%s is %s: nasd needs no capabilities (it listens on high ports)", n.path, n.show())
		}
	}
	// The container's setting wins over the pod's; one of them must say so.
	if n := effective(sc, psc, "runAsNonRoot"); c.known(n) && !n.isTrue() {
		c.failf("runAsNonRoot is %s (container and pod securityContext of %s): must be true", n.show(), ctr.path)
	}
	if n := sc.get("runAsUser"); c.known(n) && n.v.IsNumber() && n.v.AsNumber() == 0 {
		c.failf("%s is 0: nasd must not run as root", n.path)
	}
	if n := effective(sc, psc, "seccompProfile", "type"); c.known(n) && n.str() != "RuntimeDefault" && n.str() != "Localhost" {
		c.failf("seccompProfile.type is %s (container and pod securityContext of %s): must be \"RuntimeDefault\" (or \"Localhost\")", n.show(), ctr.path)
	}
	if n := sc.get("readOnlyRootFilesystem"); c.known(n) && !n.isTrue() {
		c.failf("%s is %s, must be true: nasd writes only to its volumes", n.path, n.show())
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if n := ctr.get("resources", kind, res); c.known(n) && n.str() == "" && !n.v.IsNumber() {
				c.failf("%s is not set: every container needs cpu and memory requests and limits", n.path)
			}
		}
	}
	for _, p := range ctr.get("ports").items() {
		if n := p.get("hostPort"); c.known(n) && n.v.IsNumber() && n.v.AsNumber() != 0 {
			c.failf("%s is %s: host ports are forbidden (the Service publishes nasd)", n.path, n.show())
		}
	}
}

// effective is the container's security setting if set, else the pod's.
func effective(sc, psc node, keys ...string) node {
	if n := sc.get(keys...); !n.isNull() {
		return n
	}
	return psc.get(keys...)
}

// checkNasdExport: nasd serves its server as Pulumi.yaml defines it (fsid,
// export path, role), and a read-only server (the backup) runs read-only: the
// export is "ro" and the Windows directory (hostPath) is mounted read-only.
func checkNasdExport(in input, c *checker) {
	w, ok := workloadOf(in.typ, in.name, in.props)
	if !ok || !isNasd(w, c) {
		return
	}
	c.subject = fmt.Sprintf("%s %q", w.kind, w.name)
	inst := w.label(labelInstance)
	srv := in.exp.byServer[inst]
	if srv == nil {
		c.failf("runs nasd but its %s label %q names no server of %s", labelInstance, inst, in.exp.file)
		return
	}
	src := fmt.Sprintf("Pulumi.yaml (server %s)", srv.Name)
	ctr := nasdContainer(w.pod)
	args := ctr.get("args")
	if !c.known(args) {
		return
	}
	list, _ := args.strs()
	flags := parseFlags(list)
	want := map[string]string{"role": string(srv.Role), "export-path": srv.ExportPath}
	if srv.FSID != nil {
		want["fsid"] = strconv.Itoa(*srv.FSID)
	}
	for _, k := range sortedKeys(want) {
		if got, ok := flags[k]; !ok || got != want[k] {
			c.failf("nasd --%s is %q (%s), %s says %q", k, got, args.path, src, want[k])
		}
	}
	readOnly := srv.ReadOnly || srv.Role.ReadOnly() || spec.Role(w.label(labelRole)).ReadOnly()
	if !readOnly {
		return
	}
	opts := strings.Split(flags["options"], ",")
	if !slices.Contains(opts, "ro") || slices.Contains(opts, "rw") {
		c.failf("nasd --options is %q: the %s server is read-only, its export must be \"ro\"", flags["options"], srv.Name)
	}
	hostPaths := map[string]bool{}
	for _, v := range w.pod.get("volumes").items() {
		if hp := v.get("hostPath"); c.known(hp) && hp.v.IsMap() {
			hostPaths[v.get("name").str()] = true
		}
	}
	for _, m := range ctr.get("volumeMounts").items() {
		if !hostPaths[m.get("name").str()] {
			continue
		}
		if ro := m.get("readOnly"); c.known(ro) && !ro.isTrue() {
			c.failf("%s mounts the hostPath volume %q writable: the %s server is read-only", m.path, m.get("name").str(), srv.Name)
		}
	}
}

// nasdContainer is the container named nasd, else the first one.
func nasdContainer(pod node) node {
	ctrs := pod.get("containers").items()
	for _, ctr := range ctrs {
		if ctr.get("name").str() == nasdName {
			return ctr
		}
	}
	if len(ctrs) > 0 {
		return ctrs[0]
	}
	return pod.get("containers")
}

// parseFlags reads "--name=value" and "--name value" arguments.
func parseFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val = args[i+1]
			i++
		}
		out[name] = val
	}
	return out
}

// checkHandleKey: nasd MACs its file handles with the key of --handle-key-file;
// the file must come from a Secret volume (which outlives the pod, unlike the
// emptyDir), mounted read-only, with a mode that neither allows writes nor
// lets other users read it.
func checkHandleKey(in input, c *checker) {
	w, ok := workloadOf(in.typ, in.name, in.props)
	if !ok || !isNasd(w, c) {
		return
	}
	c.subject = fmt.Sprintf("%s %q", w.kind, w.name)
	ctr := nasdContainer(w.pod)
	args := ctr.get("args")
	if !c.known(args) {
		return
	}
	list, _ := args.strs()
	keyFile := parseFlags(list)["handle-key-file"]
	if keyFile == "" {
		c.failf("nasd has no --handle-key-file (%s): its handle key would live in the pod's state directory and every pod replacement would make the clients' file handles stale", args.path)
		return
	}
	mounts := ctr.get("volumeMounts")
	if !c.known(mounts) {
		return
	}
	// The mount holding the file: the longest mountPath above it.
	var mount node
	best := -1
	for _, m := range mounts.items() {
		mp := path.Clean(m.get("mountPath").str())
		if m.get("mountPath").str() != "" && strings.HasPrefix(path.Clean(keyFile), strings.TrimSuffix(mp, "/")+"/") && len(mp) > best {
			mount, best = m, len(mp)
		}
	}
	if best < 0 {
		c.failf("nasd --handle-key-file=%s is on no volume mount: the key would be read from the image", keyFile)
		return
	}
	if ro := mount.get("readOnly"); c.known(ro) && !ro.isTrue() {
		c.failf("%s mounts the handle key volume %q writable: it must be read-only", mount.path, mount.get("name").str())
	}
	name := mount.get("name").str()
	vols := w.pod.get("volumes")
	if !c.known(vols) {
		return
	}
	for _, v := range vols.items() {
		if v.get("name").str() != name {
			continue
		}
		sec := v.get("secret")
		if !c.known(sec) {
			return
		}
		if !sec.v.IsMap() {
			c.failf("volume %q holding nasd's handle key (%s) is not a Secret volume: the key must outlive the pod", name, v.path)
			return
		}
		if sn := sec.get("secretName"); c.known(sn) && sn.str() == "" {
			c.failf("%s is %s: the handle key volume names no Secret", sn.path, sn.show())
		}
		if m := sec.get("defaultMode"); c.known(m) && m.v.IsNumber() && int(m.v.AsNumber())&0o227 != 0 {
			c.failf("%s is %#o: the handle key must not be writable or readable by other users (0400 or 0440)", m.path, int(m.v.AsNumber()))
		}
		return
	}
	c.failf("nasd's handle key mount %q names no volume of the pod", name)
}
