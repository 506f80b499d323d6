// Package labnode prepares, on the host, a kernel-lab guest that runs a real
// Kubernetes node (package kube) and the project's dev stack on it: the
// binaries and images the guest needs, a copy of the project pointed at the
// node.
package labnode

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nas-topology/nas-topology/tests/kernellab/kube"
)

// Guest is what a node guest needs from the host: the realnode test binary
// (which also serves `make up-lab`), its environment and the project copy.
type Guest struct {
	Tests   string
	Env     map[string]string
	Project string
}

// Prepare builds in dir what the guest's node runs: the realnode tests, the
// program, the pause and busybox images, a copy of the project whose dev
// stack points at the node (kube context, the containerd image loader; the
// committed stack files are not touched), and the nasd image in the
// program's own cache (so the first `pulumi up` finds it built).
func Prepare(project, dir string) (*Guest, error) {
	g := &Guest{Tests: filepath.Join(dir, "realnode.test"), Project: filepath.Join(dir, "project")}
	program := filepath.Join(dir, "nas-topology")
	pause := filepath.Join(dir, "pause")
	for _, argv := range [][]string{
		{"go", "test", "-c", "-tags", "kernellab", "-o", g.Tests, "./tests/kernellab/realnode"},
		{"go", "build", "-o", program, "."},
		{"go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "./tests/kernellab/kube/pause"},
	} {
		if err := build(project, argv...); err != nil {
			return nil, err
		}
	}
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return nil, err
	}
	if err := kube.WriteImage(filepath.Join(images, "pause.tar"), kube.PauseImage,
		[]kube.ImageFile{{Path: "pause", From: pause}}, []string{"/pause"}); err != nil {
		return nil, err
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("apt-get install busybox-static (make lab-deps): %w", err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, err
	}
	if err := kube.WriteImage(filepath.Join(images, "busybox.tar"), kube.BusyboxImage,
		kube.BusyboxFiles(busybox, strings.Fields(string(list))), []string{"/bin/sh"}); err != nil {
		return nil, err
	}

	if err := copyProject(project, g.Project); err != nil {
		return nil, err
	}
	for _, e := range []struct{ file, old, new string }{
		{"Pulumi.yaml", "\nruntime: go\n", "\nruntime:\n  name: go\n  options:\n    binary: " + program + "\n"},
		{"Pulumi.dev.yaml", "kubeContext: minikube", "kubeContext: " + kube.Context},
		{"Pulumi.dev.yaml", "imageLoader: minikube", "imageLoader: containerd"},
	} {
		if err := edit(filepath.Join(g.Project, e.file), e.old, e.new); err != nil {
			return nil, err
		}
	}
	// The image the program builds, in its cache (the same hash from any clone).
	if err := build(g.Project, "go", "run", "./nasimage/cmd/nasd-image"); err != nil {
		return nil, err
	}

	goEnv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOROOT").Output()
	if err != nil {
		return nil, err
	}
	ge := strings.Fields(string(goEnv))
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	g.Env = map[string]string{
		"LAB_GUEST":   "1",
		"LAB_PROJECT": g.Project,
		"LAB_IMAGES":  images,
		// Overlays the guest puts over the host's caches it uses.
		"LAB_OVERLAYS":   strings.Join([]string{cache, ge[1], pulumiHome}, " "),
		"GOCACHE":        ge[0],
		"GOMODCACHE":     ge[1],
		"XDG_CACHE_HOME": cache,
		"GOPROXY":        "off",
		"GOTELEMETRY":    "off",
		"HOME":           "/run/lab/home",
		"GOFLAGS":        "-mod=readonly",
		"PATH":           kube.ToolchainBin + ":" + filepath.Join(ge[2], "bin") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PULUMI_HOME":    pulumiHome,
	}
	return g, nil
}

// pulumiHome is the toolchain's Pulumi home (the kubernetes plugin).
var pulumiHome = filepath.Join(filepath.Dir(kube.ToolchainBin), "pulumi-home")

func build(dir string, argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// copyProject copies the tracked (and untracked, not ignored) files.
func copyProject(from, to string) error {
	files, err := exec.Command("git", "-C", from, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("git ls-files in %s: %w", from, err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		src := filepath.Join(from, f)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func edit(file, old, new string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(old)) {
		return fmt.Errorf("%s has no %q to point at the lab's node", file, old)
	}
	return os.WriteFile(file, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}
