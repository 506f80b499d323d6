// Command nasd-image builds the nasd container image (see package
// nasimage/image) and prints its reference, digest and size; with -load it
// also loads it into a cluster.
//
//	go run ./nasimage/cmd/nasd-image                  # build (cached) and print
//	go run ./nasimage/cmd/nasd-image -load minikube   # and minikube image load
//	go run ./nasimage/cmd/nasd-image -json            # the whole result as JSON
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nas-topology/nas-topology/nasimage/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nasd-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts     image.Options
		lo       image.LoadOptions
		loader   string
		asJSON   bool
		loadHelp = "load the image with this loader: " + strings.Join(image.Loaders, ", ") + " (empty: build only)"
	)
	fs.StringVar(&opts.GoArch, "arch", image.DefaultGoArch, "GOARCH of the binary and image platform")
	fs.StringVar(&opts.CacheDir, "cache", "", "cache directory (default: user cache dir/nas-topology/image)")
	fs.StringVar(&opts.ModuleDir, "module", "", "nas-topology module root (default: found above the working directory)")
	fs.StringVar(&opts.Repository, "repository", image.DefaultRepository, "repository of the image reference")
	fs.StringVar(&opts.Version, "version", "dev", "org.opencontainers.image.version label")
	fs.StringVar(&loader, "load", "", loadHelp)
	fs.StringVar(&lo.MinikubeProfile, "minikube-profile", "", "minikube --profile for -load minikube")
	fs.StringVar(&lo.ContainerdNamespace, "ctr-namespace", "k8s.io", "ctr --namespace for -load containerd")
	fs.StringVar(&lo.ContainerdAddress, "ctr-address", "", "ctr --address for -load containerd")
	fs.StringVar(&lo.Registry, "registry", "", "registry[/path] for -load registry, e.g. localhost:5000")
	fs.BoolVar(&lo.Insecure, "insecure", false, "push over plain HTTP (-load registry)")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nasd-image: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if loader != "" {
		// Before the build: a wrong loader or a missing tool fails at once.
		if err := image.CheckLoader(loader, lo); err != nil {
			fmt.Fprintf(stderr, "nasd-image: %v\n", err)
			return 2
		}
	}

	res, err := image.Build(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "nasd-image: %v\n", err)
		return 1
	}
	loaded := ""
	if loader != "" {
		lo.Output = stderr
		if loaded, err = image.Load(ctx, loader, res, lo); err != nil {
			fmt.Fprintf(stderr, "nasd-image: %v\n", err)
			return 1
		}
	}

	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			*image.Result
			Cached bool   `json:"cached"`
			Loaded string `json:"loaded,omitempty"`
		}{res, res.Cached, loaded}); err != nil {
			fmt.Fprintf(stderr, "nasd-image: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "reference  %s\n", res.Reference)
	fmt.Fprintf(stdout, "digest     %s\n", res.Digest)
	fmt.Fprintf(stdout, "size       %d bytes (%.1f MB; layer %d bytes, /nasd %d bytes uncompressed)\n",
		res.Size, float64(res.Size)/1e6, res.LayerSize, res.BinarySize)
	fmt.Fprintf(stdout, "platform   linux/%s, %s\n", res.GoArch, res.GoVersion)
	fmt.Fprintf(stdout, "source     %s\n", res.SourceHash)
	fmt.Fprintf(stdout, "tarball    %s\n", res.TarballPath)
	fmt.Fprintf(stdout, "cached     %t\n", res.Cached)
	if loaded != "" {
		fmt.Fprintf(stdout, "loaded     %s (%s)\n", loaded, loader)
	}
	return 0
}
