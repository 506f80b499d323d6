//go:build kernellab

package realnode

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/kube"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

const appLabel = "kernellab/app" // on every app pod

// pulumi runs the real CLI in the project copy and fails the test on error.
func pulumi(t *testing.T, args ...string) string {
	t.Helper()
	t0 := time.Now()
	out, err := pulumiRun(args...)
	t.Logf("pulumi %s: %.0fs", strings.Join(args, " "), time.Since(t0).Seconds())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pulumiRun runs the real CLI in the project copy (its file backend on the
// guest's tmpfs), its output streamed to the console.
func pulumiRun(args ...string) (string, error) {
	cmd := exec.Command("pulumi", append(args, "--non-interactive")...)
	cmd.Dir = project
	cmd.Env = append(os.Environ(),
		"PULUMI_BACKEND_URL=file:///run/lab/pulumi-state",
		"PULUMI_CONFIG_PASSPHRASE=kernellab",
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
		"PULUMI_IGNORE_AMBIENT_PLUGINS=true",
		"KUBECONFIG="+cluster.Kubeconfig,
	)
	if err := os.MkdirAll("/run/lab/pulumi-state", 0o755); err != nil {
		return "", err
	}
	var out bytes.Buffer
	console, flushed := prefixed("pulumi| ")
	w := io.MultiWriter(&out, console)
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	console.Close()
	<-flushed
	if err != nil {
		return out.String(), fmt.Errorf("pulumi %s: %v (its output is above, prefixed pulumi|)", strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// windowsFile is the file each server's Windows directory holds before up.
func windowsFile(s spec.Server) (name, content string) {
	return "from-windows.txt", "written on Windows for " + s.Name
}

// TestPulumiDev: the real `pulumi up --stack dev` onto the node, then what
// only a real node shows, then the day-2 rollout and the destroy.
func TestPulumiDev(t *testing.T) {
	for _, s := range cfg.Servers {
		name, content := windowsFile(s)
		if err := node.WindowsWriteFile(filepath.Join(node.Backing, s.Name, name), []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	pulumi(t, "stack", "init", "dev")
	t0 := time.Now()
	pulumi(t, "up", "--stack", "dev", "--yes", "--skip-preview")
	t.Logf("pulumi up --stack dev took %.0fs", time.Since(t0).Seconds())

	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"NasdPodsReady", nasdPodsReady},
		{"SecurityContextEnforced", securityContextEnforced},
		{"AppsMountEveryClaim", appsMountEveryClaim},
		{"RolloutKeepsAppsWorking", rolloutKeepsAppsWorking},
		{"DestroyKeepsWindowsFiles", destroyKeepsWindowsFiles},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			return
		}
	}
}

// nasdPodsReady: every server of Pulumi.yaml has one nasd pod, Running and
// Ready through its real readiness probe (after the initial sync).
func nasdPodsReady(t *testing.T) {
	for _, s := range cfg.Servers {
		eventually(t, 3*time.Minute, s.Name+" Running and Ready", func() error {
			out, err := cluster.Kubectl("get", "pods", "-n", cfg.NasNamespace, "-l", "app.kubernetes.io/instance="+s.Name, "-o", "jsonpath={range .items[*]}{.status.phase} {.status.containerStatuses[0].ready}{\"\\n\"}{end}")
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "Running true" {
				return fmt.Errorf("pods: %q", out)
			}
			return nil
		})
	}
}

// securityContextEnforced reads the kernel's view of every nasd process on
// the node: the configured non-root uid, no capabilities at all, no new
// privileges, a read-only root filesystem.
func securityContextEnforced(t *testing.T) {
	procs := nasdProcesses(t)
	if len(procs) != len(cfg.Servers) {
		t.Fatalf("%d nasd processes on the node, want one per server (%d): %v", len(procs), len(cfg.Servers), procs)
	}
	uid := strconv.Itoa(cfg.Cluster.RunAsUser)
	for _, pid := range procs {
		status := readFile(filepath.Join("/proc", pid, "status"))
		for _, want := range []string{
			"Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid,
			"Gid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid,
			"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000",
			"NoNewPrivs:\t1",
		} {
			if !strings.Contains(status, want) {
				t.Errorf("nasd pid %s: /proc/%s/status lacks %q:\n%s", pid, pid, want, status)
			}
		}
		root := rootMountOptions(readFile(filepath.Join("/proc", pid, "mountinfo")))
		if !strings.Contains(","+root+",", ",ro,") {
			t.Errorf("nasd pid %s: root filesystem mounted %q, want read-only", pid, root)
		}
	}
}

// nasdProcesses are the node's processes running the image's /nasd.
func nasdProcesses(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline := readFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if argv0, _, _ := strings.Cut(cmdline, "\x00"); argv0 == "/nasd" {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// rootMountOptions are the mount options of "/" in a mountinfo.
func rootMountOptions(mountinfo string) string {
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			return f[5]
		}
	}
	return ""
}

// appsMountEveryClaim: one app pod per claim of Pulumi.yaml, mounting it
// through kubelet. The node's /proc/mounts shows the PV's source and mount
// options; the app reads the Windows file; on servers that write back, the
// app's file reaches the Windows directory; the backup claim is read-only.
func appsMountEveryClaim(t *testing.T) {
	for _, s := range cfg.Servers {
		// One at a time: the guest's one CPU starts one shim at a time anyway.
		apply(t, appPod(s))
		t0 := time.Now()
		p := waitPod(t, s.Claim.Namespace, appName(s), 6*time.Minute)
		t.Logf("%s: app pod Running and Ready in %.0fs", s.Name, time.Since(t0).Seconds())
		v := components.VolumeFor(cfg.Shared, s)
		mount := kubeletMount(t, p, s)
		for _, o := range kernelOptions(node.MountOptions(v)) {
			if !strings.Contains(","+mount.options+",", ","+o+",") {
				t.Errorf("%s: kubelet mounted %s with %q, missing %q (the PV's mountOptions)", s.Name, mount.source, mount.options, o)
			}
		}
		wantSource := cfg.Cluster.Servers[s.Name].ClusterIP + ":" + v.ExportPath
		if mount.source != wantSource {
			t.Errorf("%s: kubelet mounted %s, want the PV's %s", s.Name, mount.source, wantSource)
		}
		name, content := windowsFile(s)
		if got := kubectl(t, "exec", "-n", s.Claim.Namespace, appName(s), "--", "cat", "/data/"+name); strings.TrimSpace(got) != content {
			t.Errorf("%s: the app read %q from the Windows file, want %q", s.Name, got, content)
		}
		out, err := cluster.Kubectl("exec", "-n", s.Claim.Namespace, appName(s), "--", "sh", "-c", "echo result of "+s.Name+" > /data/from-app.txt")
		switch {
		case s.ReadOnly && err == nil:
			t.Errorf("%s: the app wrote to a read-only claim", s.Name)
		case s.ReadOnly && !strings.Contains(out, "Read-only file system"):
			t.Errorf("%s: writing to the read-only claim failed with %q, want EROFS", s.Name, out)
		case !s.ReadOnly && err != nil:
			t.Errorf("%s: the app cannot write: %v", s.Name, err)
		}
		if s.Role.WritesWindows() {
			eventually(t, time.Minute, s.Name+": the app's file in the Windows directory", func() error {
				if got := readFile(filepath.Join(node.Backing, s.Name, "from-app.txt")); got != "result of "+s.Name {
					return fmt.Errorf("Windows side has %q", got)
				}
				return nil
			})
		}
	}
}

func appName(s spec.Server) string { return "app-" + s.Name }

// appPod mounts the server's claim at /data as cluster.filesOwner, the
// owner the NAS gives the files (nasd checks credentials as the NAS does).
func appPod(s spec.Server) string {
	uid, gid, ok := cfg.Cluster.Owner()
	if !ok { // no filesOwner: the files are nasd's own
		uid, gid = cfg.Cluster.RunAsUser, cfg.Cluster.RunAsUser
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {%q: "true"}}
spec:
  dnsPolicy: Default
  securityContext: {runAsUser: %d, runAsGroup: %d}
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, %q]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: %s, readOnly: %t}
`, appName(s), s.Claim.Namespace, appLabel, uid, gid, kube.BusyboxImage, appLoop(s), s.Claim.Name, s.ReadOnly)
}

type nfsMount struct{ source, target, options string }

// kubeletMount is the node's NFS mount of the server's PV for the pod.
func kubeletMount(t *testing.T, p pod, s spec.Server) nfsMount {
	t.Helper()
	want := filepath.Join("/var/lib/kubelet/pods", p.Metadata.UID, "volumes/kubernetes.io~nfs", s.VolumeName)
	for _, l := range strings.Split(readFile("/proc/mounts"), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && f[1] == want && strings.HasPrefix(f[2], "nfs") {
			return nfsMount{f[0], f[1], f[3]}
		}
	}
	t.Fatalf("%s: no NFS mount at %s in the node's /proc/mounts:\n%s", s.Name, want, readFile("/proc/mounts"))
	return nfsMount{}
}

// kernelOptions are mount options as /proc/mounts spells them.
func kernelOptions(opts string) []string {
	var out []string
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, "nfsvers="); ok {
			o = "vers=" + v
		}
		out = append(out, o)
	}
	return out
}

// appLoop is what every app does for as long as it runs, once a second:
// read the Windows file and, unless the claim is read-only, append a
// numbered line to its log (a new open and close each time: the kernel
// client flushes at close). Every failure is one "ERR" line on stdout.
func appLoop(s spec.Server) string {
	name, _ := windowsFile(s)
	write := `echo "line $i" >> /data/app-loop.log || echo "ERR write $i"`
	if s.ReadOnly {
		write = ":"
	}
	return `i=0; while true; do
  cat /data/` + name + ` > /dev/null || echo "ERR read $i"
  ` + write + `
  i=$((i+1)); sleep 1
done`
}

// appErrors are the failures an app has reported so far.
func appErrors(t *testing.T, s spec.Server) []string {
	t.Helper()
	var errs []string
	for _, l := range strings.Split(kubectl(t, "logs", "-n", s.Claim.Namespace, appName(s)), "\n") {
		if strings.HasPrefix(l, "ERR") {
			errs = append(errs, l)
		}
	}
	return errs
}

// deploymentImages maps each server's Deployment to the image it runs.
func deploymentImages(t *testing.T) map[string]string {
	t.Helper()
	images := map[string]string{}
	for _, s := range cfg.Servers {
		images[s.Name] = kubectl(t, "get", "deployment", "-n", cfg.NasNamespace, s.Name, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	}
	return images
}

// rolloutKeepsAppsWorking: a change to nasd's source gives a new image
// digest; `pulumi up` builds it, loads it into containerd and rolls every
// Deployment. The apps keep their mounts and report no failed read or write,
// and on servers that write back every line the apps wrote reaches the
// Windows directory.
func rolloutKeepsAppsWorking(t *testing.T) {
	before := deploymentImages(t)
	// An init function: it is in the binary whatever the linker drops.
	change := "package main\n\nimport \"os\"\n\nfunc init() { os.Setenv(\"NASD_KERNELLAB_REVISION\", \"2\") }\n"
	if err := os.WriteFile(filepath.Join(project, "nasimage/cmd/nasd/kernellab_revision.go"), []byte(change), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	pulumi(t, "up", "--stack", "dev", "--yes", "--skip-preview")
	t.Logf("pulumi up of the new image took %.0fs", time.Since(t0).Seconds())
	after := deploymentImages(t)
	for _, s := range cfg.Servers {
		if after[s.Name] == before[s.Name] {
			t.Errorf("%s: still runs %s after the source change", s.Name, before[s.Name])
		}
	}
	nasdPodsReady(t)
	for _, s := range cfg.Servers {
		for _, p := range pods(t, cfg.NasNamespace, "app.kubernetes.io/instance="+s.Name) {
			if p.Spec.Containers[0].Image != after[s.Name] {
				t.Errorf("%s: pod %s runs %s, want %s", s.Name, p.Metadata.Name, p.Spec.Containers[0].Image, after[s.Name])
			}
		}
	}
	// A few more rounds against the new pods.
	time.Sleep(5 * time.Second)
	for _, s := range cfg.Servers {
		p := waitPod(t, s.Claim.Namespace, appName(s), time.Minute)
		kubeletMount(t, p, s)
		if errs := appErrors(t, s); len(errs) > 0 {
			t.Errorf("%s: the app failed %d times during the rollout: %v", s.Name, len(errs), errs)
		}
		if !s.Role.WritesWindows() {
			continue
		}
		// Lines 0..n the app wrote are all on the Windows side, in order.
		eventually(t, time.Minute, s.Name+": the app's lines in the Windows directory", func() error {
			lines := strings.Split(readFile(filepath.Join(node.Backing, s.Name, "app-loop.log")), "\n")
			for i, l := range lines {
				if l != fmt.Sprintf("line %d", i) {
					return fmt.Errorf("line %d of the Windows copy is %q", i, l)
				}
			}
			if len(lines) < 10 {
				return fmt.Errorf("only %d lines", len(lines))
			}
			return nil
		})
	}
}

// destroyKeepsWindowsFiles: the apps go (a claim in use is never deleted),
// then `pulumi destroy` removes every object of the stack; the Windows
// directories keep their files, the apps' results included.
func destroyKeepsWindowsFiles(t *testing.T) {
	kubectl(t, "delete", "pods", "--all-namespaces", "-l", appLabel+"=true", "--grace-period=1")
	pulumi(t, "destroy", "--stack", "dev", "--yes", "--skip-preview")
	for _, s := range cfg.Servers {
		if out, err := cluster.Kubectl("get", "pv", s.VolumeName, "--ignore-not-found", "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("PV %s after destroy: %q %v", s.VolumeName, out, err)
		}
		name, content := windowsFile(s)
		if got := readFile(filepath.Join(node.Backing, s.Name, name)); got != content {
			t.Errorf("%s: the Windows file is %q after destroy, want %q", s.Name, got, content)
		}
		if s.Role.WritesWindows() {
			if got := readFile(filepath.Join(node.Backing, s.Name, "from-app.txt")); got != "result of "+s.Name {
				t.Errorf("%s: the app's result on the Windows side is %q after destroy", s.Name, got)
			}
		}
	}
	for _, ns := range []string{cfg.NasNamespace} {
		if out, _ := cluster.Kubectl("get", "deployments,services", "-n", ns, "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("left in %s after destroy: %s", ns, out)
		}
	}
}

// prefixed writes lines to stdout with a prefix (the guest's console).
func prefixed(prefix string) (*io.PipeWriter, <-chan struct{}) {
	r, w := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Println(prefix + sc.Text())
		}
	}()
	return w, done
}
