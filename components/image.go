package components

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/nasimage/image"
)

// ImageRepository is the repository of the built nasd image. The .invalid
// top-level domain never resolves (RFC 6761), so a reference that did not
// reach the node is an ErrImageNeverPull or a failed pull, never an image
// some registry happens to serve (docker.io/library/nasd was Docker Hub's).
const ImageRepository = "nas-topology.invalid/nasd"

// buildImage builds the nasd image for the nodes' architecture, once per
// process and architecture. The module is found from the working directory:
// the project directory when pulumi runs the program. ctx is the program's:
// a cancelled `pulumi up` (Ctrl-C) stops the build.
func buildImage(ctx context.Context, arch string) (*image.Result, error) {
	builtMu.Lock()
	defer builtMu.Unlock()
	if res, ok := built[arch]; ok {
		return res, nil
	}
	res, err := image.Build(ctx, image.Options{Repository: ImageRepository, GoArch: arch})
	if err != nil {
		return nil, err
	}
	built[arch] = res
	return res, nil
}

var (
	builtMu sync.Mutex
	built   = map[string]*image.Result{}
)

// PullPolicy is the imagePullPolicy that fits how the image reaches the
// node: a loaded image (minikube, containerd, or the built one unloaded with
// loader none) is never pulled, so a failed load shows as ErrImageNeverPull
// instead of a pull from elsewhere; a pushed or prebuilt one is pulled once
// (its tag is content-derived, or the user's).
func PullPolicy(loader string, prebuilt bool) string {
	switch {
	case loader == image.LoaderRegistry, loader == image.LoaderNone && prebuilt:
		return "IfNotPresent"
	}
	return "Never"
}

// resolveImage returns the nasd reference the Deployments run. The image is
// built from the nasd source of this checkout in preview and up alike
// (reproducible and cached: same source, same digest, same reference, so an
// unchanged nasd never rolls the pods), and loaded into the cluster only
// during up.
func resolveImage(ctx *pulumi.Context, c *spec.Cluster) (string, error) {
	c.ImagePullPolicy = PullPolicy(c.ImageLoader, c.Image != "")
	if c.ImageLoader == image.LoaderNone && c.Image != "" {
		return c.Image, nil // a prebuilt reference
	}
	res, err := buildImage(ctx.Context(), c.NodeArch)
	if err != nil {
		return "", fmt.Errorf("building the nasd image: %w", err)
	}
	_ = ctx.Log.Info(fmt.Sprintf("nasd image %s (linux/%s, %s, %.1f MB, cached: %v)",
		res.Reference, res.GoArch, res.Digest, float64(res.Size)/1e6, res.Cached), nil)
	opts := image.LoadOptions{MinikubeProfile: c.MinikubeProfile, Registry: c.ImageRegistry, Output: io.Discard}
	if ctx.DryRun() {
		// Preview: the reference up will use, without touching the cluster.
		return image.PlannedReference(c.ImageLoader, res, opts), nil
	}
	ref, err := image.Load(ctx.Context(), c.ImageLoader, res, opts)
	if err != nil {
		return "", fmt.Errorf("loading the nasd image (%s=%s): %w", image.SettingLoader, c.ImageLoader, err)
	}
	return ref, nil
}
