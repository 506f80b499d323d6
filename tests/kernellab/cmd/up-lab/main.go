// Command up-lab is `make up-lab`: the main job (`pulumi up --stack dev`)
// on a Linux machine without Minikube. It boots the kernel lab's guest with
// a real Kubernetes node in it (tests/kernellab/kube), runs the real program
// onto that node and leaves a shell on the guest's console; leaving the
// shell stops the guest. Run it from the project root, as root (make up-lab).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nas-topology/nas-topology/tests/kernellab"
	"github.com/nas-topology/nas-topology/tests/kernellab/labnode"
)

func main() {
	os.Exit(run())
}

func run() int {
	project, err := filepath.Abs(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "up-lab:", err)
		return 1
	}
	// Not under /tmp: the guest mounts its own tmpfs there.
	dir, err := os.MkdirTemp("/var/tmp", "up-lab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "up-lab:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	fmt.Fprintln(os.Stderr, "up-lab: building the program, the node's images and the nasd image ...")
	g, err := labnode.Prepare(project, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "up-lab:", err)
		return 1
	}
	g.Env["LAB_UP"] = "1"
	fmt.Fprintln(os.Stderr, "up-lab: booting the guest (the node is ready in about a minute, pulumi up takes about three)")
	res, err := kernellab.Boot(kernellab.Guest{
		Dir: dir, Command: []string{g.Tests}, Env: g.Env, MemoryMB: 4096,
		Stdin: os.Stdin, Timeout: 24 * time.Hour, ReadOnlyHost: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "up-lab:", err)
		return 1
	}
	return res.ExitCode
}
