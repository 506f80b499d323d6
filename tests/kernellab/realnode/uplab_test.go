//go:build kernellab

package realnode

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// upLab is `make up-lab`: the main job on the guest's node, then a shell on
// the guest's console until the user leaves it (which stops everything).
func upLab() int {
	t0 := time.Now()
	for _, args := range [][]string{{"stack", "init", "dev"}, {"up", "--stack", "dev", "--yes", "--skip-preview"}} {
		if _, err := pulumiRun(args...); err != nil {
			fmt.Println("up-lab:", err)
			return 1
		}
	}
	fmt.Printf("up-lab: pulumi up --stack dev done in %.0fs\n\n", time.Since(t0).Seconds())
	fmt.Println("The dev topology runs on a Kubernetes node inside this user-mode-linux guest. The guest has no")
	fmt.Println("network device: the exports are reached from this shell (KUBECONFIG is set), for example:")
	fmt.Println("  kubectl get pods -A")
	for _, s := range cfg.Servers {
		v := components.VolumeFor(cfg.Shared, s)
		fmt.Printf("  mkdir -p /tmp/%s && mount -t nfs -o %s %s:%s /tmp/%s\n", s.Name, node.MountOptions(v), cfg.Cluster.Servers[s.Name].ClusterIP, v.ExportPath, s.Name)
	}
	fmt.Printf("The Windows side (behind the 9p share at %s) is %s/<server> on the guest's tmpfs.\n", cfg.Cluster.WindowsRoot, node.Backing)
	fmt.Println("Leave the shell (exit or Ctrl-D; Ctrl-C on the host also works) to stop the node and the guest; nothing of it stays on this machine.")
	sh := exec.Command("sh", "-i")
	sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, os.Stdout, os.Stderr
	sh.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig, "PS1=up-lab# ")
	sh.Dir = project
	sh.Run()
	return 0
}
