package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Loader names: where Load puts the image.
const (
	// LoaderMinikube runs `minikube image load <tarball>` (the dev default).
	LoaderMinikube = "minikube"
	// LoaderContainerd runs `ctr -n k8s.io images import <tarball>` on this
	// machine (a node whose containerd the kubelet uses).
	LoaderContainerd = "containerd"
	// LoaderRegistry pushes to LoadOptions.Registry.
	LoaderRegistry = "registry"
	// LoaderNone loads nothing: the image is already where the cluster pulls
	// from (LoadOptions.Reference, or the built reference).
	LoaderNone = "none"
)

// Loaders lists the valid loader names.
var Loaders = []string{LoaderMinikube, LoaderContainerd, LoaderRegistry, LoaderNone}

// Stack settings named in error messages, so a user knows what to change.
const (
	SettingLoader    = "nas-topology:cluster.imageLoader"
	SettingRegistry  = "nas-topology:cluster.imageRegistry"
	SettingReference = "nas-topology:cluster.image"
)

// LoadOptions configure Load. Only the fields of the chosen loader are read.
type LoadOptions struct {
	// MinikubeProfile is minikube's --profile (empty: minikube's default).
	MinikubeProfile string
	// ContainerdNamespace is ctr's --namespace ("k8s.io", the kubelet's).
	ContainerdNamespace string
	// ContainerdAddress is ctr's --address (empty: ctr's default socket).
	ContainerdAddress string
	// Registry is where LoaderRegistry pushes, e.g. "localhost:5000" or
	// "registry.example.com/team": the reference becomes
	// <Registry>/nasd:sha-<12 hex>.
	Registry string
	// Insecure pushes over plain HTTP. Loopback and private addresses use
	// HTTP anyway (go-containerregistry's rule).
	Insecure bool
	// Reference is the prebuilt image LoaderNone returns (empty: the built one).
	Reference string
	// Output receives the loader tool's output (nil: discarded; it is in the
	// error when the tool fails).
	Output io.Writer
}

// ValidateLoader reports whether name is a loader, with the valid names when
// it is not. Use it where the setting is parsed (it runs no tool).
func ValidateLoader(loader string) error {
	for _, l := range Loaders {
		if loader == l {
			return nil
		}
	}
	return fmt.Errorf("unknown image loader %q: %s must be one of %s", loader, SettingLoader, strings.Join(Loaders, ", "))
}

// CheckLoader checks, without loading anything, that the loader can run: its
// tool is on PATH, its settings are present. Preview can call it to fail
// early; Load calls it first.
func CheckLoader(loader string, opts LoadOptions) error {
	if err := ValidateLoader(loader); err != nil {
		return err
	}
	switch loader {
	case LoaderMinikube:
		_, err := lookTool(loader, "minikube", "install minikube (https://minikube.sigs.k8s.io/docs/start/; on Linux without Minikube, `make up-lab` runs the dev stack on a Kubernetes node inside a user-mode-linux guest)")
		return err
	case LoaderContainerd:
		_, err := lookTool(loader, "ctr", "install containerd, which ships ctr, or run this on the node")
		return err
	case LoaderRegistry:
		if opts.Registry == "" {
			return fmt.Errorf("image loader %q needs a registry to push to: set %s (e.g. localhost:5000), or choose another %s (%s)",
				loader, SettingRegistry, SettingLoader, strings.Join(others(loader), ", "))
		}
		if _, err := name.NewRegistry(strings.SplitN(opts.Registry, "/", 2)[0]); err != nil {
			return fmt.Errorf("%s %q: %w", SettingRegistry, opts.Registry, err)
		}
	}
	return nil
}

// Load makes the built image res available to the cluster with the named
// loader and returns the reference the Deployments must use: res.Reference,
// except for LoaderRegistry (rewritten to the registry) and LoaderNone with a
// prebuilt LoadOptions.Reference. res may be nil only for LoaderNone with a
// Reference.
func Load(ctx context.Context, loader string, res *Result, opts LoadOptions) (string, error) {
	if err := CheckLoader(loader, opts); err != nil {
		return "", err
	}
	if loader == LoaderNone {
		if opts.Reference != "" {
			return opts.Reference, nil
		}
		if res == nil {
			return "", fmt.Errorf("image loader %q needs a prebuilt image: set %s", loader, SettingReference)
		}
		return res.Reference, nil
	}
	if res == nil {
		return "", fmt.Errorf("image loader %q: no image was built", loader)
	}
	switch loader {
	case LoaderMinikube:
		args := []string{"image", "load"}
		if opts.MinikubeProfile != "" {
			args = append(args, "--profile", opts.MinikubeProfile)
		}
		return res.Reference, runTool(ctx, opts.Output, "minikube", append(args, res.TarballPath)...)
	case LoaderContainerd:
		ns := opts.ContainerdNamespace
		if ns == "" {
			ns = "k8s.io"
		}
		args := []string{"--namespace", ns}
		if opts.ContainerdAddress != "" {
			args = append(args, "--address", opts.ContainerdAddress)
		}
		return res.Reference, runTool(ctx, opts.Output, "ctr", append(args, "images", "import", res.TarballPath)...)
	default: // LoaderRegistry
		return push(ctx, res, opts)
	}
}

// PlannedReference is the reference Load will return for res, without
// loading anything: what a preview shows the Deployments will run.
func PlannedReference(loader string, res *Result, opts LoadOptions) string {
	switch {
	case loader == LoaderNone && opts.Reference != "":
		return opts.Reference
	case loader == LoaderRegistry:
		return registryReference(res, opts)
	}
	return res.Reference
}

// registryReference is the built reference moved to opts.Registry.
func registryReference(res *Result, opts LoadOptions) string {
	built, err := name.NewTag(res.Reference)
	if err != nil {
		return res.Reference // Build always makes a valid tag
	}
	return fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(opts.Registry, "/"), path.Base(built.RepositoryStr()), built.TagStr())
}

// push writes the image, byte for byte (same digest), to the registry.
func push(ctx context.Context, res *Result, opts LoadOptions) (string, error) {
	ref := registryReference(res, opts)
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	dst, err := name.NewTag(ref, nameOpts...)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", SettingRegistry, opts.Registry, err)
	}
	img, err := openImage(res)
	if err != nil {
		return "", err
	}
	if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	return ref, nil
}

// lookTool finds a loader's command, or says what to install or change.
func lookTool(loader, tool, install string) (string, error) {
	p, err := exec.LookPath(tool)
	if err != nil {
		return "", fmt.Errorf("image loader %q needs %s on PATH (%v): %s, or set %s to one of %s",
			loader, tool, errors.Unwrap(err), install, SettingLoader, strings.Join(others(loader), ", "))
	}
	return p, nil
}

func others(loader string) []string {
	var out []string
	for _, l := range Loaders {
		if l != loader {
			out = append(out, l)
		}
	}
	return out
}

func runTool(ctx context.Context, output io.Writer, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, tool, args...)
	var captured bytes.Buffer
	w := io.Writer(&captured)
	if output != nil {
		w = io.MultiWriter(&captured, output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, strings.TrimSpace(captured.String()))
	}
	return nil
}
