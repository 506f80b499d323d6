//go:build kernellab

// Package realnode runs inside the kernel lab's guest (the host's
// TestRealNode boots it): a real single-node Kubernetes cluster (package
// kube), the Windows share as `minikube mount` makes it, and the real
// `pulumi up --stack dev` of this project onto it. The tests check what
// kwok cannot show: the nasd pods run, their probes answer, the security
// context holds, kubelet mounts every PV for an app pod.
package realnode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/kube"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

var (
	cluster *kube.Node
	cfg     *spec.Config
	project string // the host's copy of the project, prepared for this cluster
)

func TestMain(m *testing.M) {
	if os.Getenv("LAB_GUEST") != "1" {
		fmt.Println("realnode: these tests run inside the kernel lab's guest: make lab-node")
		os.Exit(2)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	start := time.Now()
	project = os.Getenv("LAB_PROJECT")
	if err := os.MkdirAll(os.Getenv("HOME"), 0o755); err != nil {
		fmt.Println("realnode:", err)
		return 1
	}
	var err error
	if cfg, err = node.Load(project); err != nil {
		fmt.Println("realnode:", err)
		return 1
	}
	if err := guestCaches(); err != nil {
		fmt.Println("realnode: caches:", err)
		return 1
	}
	if err := node.ServeWindows(cfg); err != nil {
		fmt.Println("realnode: windows share:", err)
		return 1
	}
	images, _ := filepath.Glob(filepath.Join(os.Getenv("LAB_IMAGES"), "*.tar"))
	cluster, err = kube.Start(kube.Options{ServiceCIDR: cfg.Cluster.ServiceCIDR, PauseImage: kube.PauseImage, Images: images})
	if err != nil {
		fmt.Println("realnode:", err)
		dumpLogs()
		return 1
	}
	fmt.Printf("realnode: node ready %.0fs after the guest started\n", time.Since(start).Seconds())
	if os.Getenv("LAB_UP") == "1" {
		code := upLab()
		cluster.Stop()
		return code
	}
	code := m.Run()
	memory()
	if code != 0 {
		dumpLogs()
	}
	cluster.Stop()
	return code
}

// guestCaches puts a guest overlay over the host's Go and Pulumi caches:
// the guest reads what the host built (go list, the image cache, the
// toolchain's plugins) and writes to its own tmpfs.
func guestCaches() error {
	for i, dir := range strings.Fields(os.Getenv("LAB_OVERLAYS")) {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		up := fmt.Sprintf("/run/lab/overlay/%d", i)
		if err := os.MkdirAll(up+"/upper", 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(up+"/work", 0o755); err != nil {
			return err
		}
		if err := node.LoadModules("overlay"); err != nil {
			return err
		}
		if out, err := exec.Command("mount", "-t", "overlay", "-o", "lowerdir="+dir+",upperdir="+up+"/upper,workdir="+up+"/work", "guest-cache", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("overlay on %s: %v: %s", dir, err, out)
		}
	}
	return nil
}

// memory prints what the guest uses (the kernel's view: all of it is the node).
func memory() {
	out, _ := exec.Command("free", "-m").CombinedOutput()
	fmt.Printf("realnode: guest memory:\n%s", out)
}

func dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(kube.Dir, "logs", "*.log"))
	more, _ := filepath.Glob(filepath.Join(node.LogsDir, "*.log"))
	for _, l := range append(logs, more...) {
		b, _ := os.ReadFile(l)
		s := string(b)
		if len(s) > 6000 {
			s = "...\n" + s[len(s)-6000:]
		}
		fmt.Printf("==== %s\n%s\n", l, s)
	}
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cluster.Kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apply sends a manifest to the cluster.
func apply(t *testing.T, manifest string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(kube.ToolchainBin, "kubectl"), "--kubeconfig", cluster.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v: %s\n%s", err, out, manifest)
	}
}

type podList struct {
	Items []pod `json:"items"`
}

type pod struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Containers []struct {
			Image string `json:"image"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			ImageID string `json:"imageID"`
			Ready   bool   `json:"ready"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p pod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

func pods(t *testing.T, namespace, selector string) []pod {
	t.Helper()
	args := []string{"get", "pods", "-n", namespace, "-o", "json"}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	var l podList
	if err := json.Unmarshal([]byte(kubectl(t, args...)), &l); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitPod waits until the pod is Running and Ready.
func waitPod(t *testing.T, namespace, name string, timeout time.Duration) pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var p pod
		out, err := cluster.Kubectl("get", "pod", "-n", namespace, name, "-o", "json")
		if err == nil && json.Unmarshal([]byte(out), &p) == nil && p.Status.Phase == "Running" && p.ready() {
			return p
		}
		if time.Now().After(deadline) {
			desc, _ := cluster.Kubectl("describe", "pod", "-n", namespace, name)
			t.Fatalf("pod %s/%s not Running and Ready after %s:\n%s", namespace, name, timeout, desc)
		}
		time.Sleep(2 * time.Second)
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(bytes.TrimSpace(b))
}
