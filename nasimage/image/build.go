package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Package paths and names of the thing we build.
const (
	// ModulePath is the module holding nasd; Build looks for its go.mod.
	ModulePath = "github.com/nas-topology/nas-topology"
	// NasdPackage is the package compiled into /nasd.
	NasdPackage = ModulePath + "/nasimage/cmd/nasd"
	// DefaultRepository is the repository part of Result.Reference.
	DefaultRepository = "docker.io/library/nasd"
	// DefaultGoArch is the architecture built when Options.GoArch is empty.
	DefaultGoArch = "amd64"
	// UID and GID of the nasd user baked into the image.
	UID = 65532
	GID = 65532

	// recipeVersion changes whenever the way an image is assembled changes,
	// so that old cache entries are not reused for a different recipe.
	recipeVersion = "nasd-image/1"
	// keepEntries bounds the cache: older entries are removed after a build.
	keepEntries = 6
)

// Arches are the architectures nasd is built and tested for (GOARCH names,
// the same as Kubernetes' kubernetes.io/arch node label).
var Arches = []string{"amd64", "arm64"}

// buildFlags are the `go build` flags that make the binary reproducible and
// small: no absolute paths, no VCS stamp, no symbol table/DWARF, no build id.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Options configure Build. The zero value builds linux/amd64 from the module
// found above the working directory, cached in the user cache directory.
type Options struct {
	// ModuleDir is the root of the nas-topology module (where go.mod is).
	// Empty: the first directory at or above the working directory whose
	// go.mod declares ModulePath.
	ModuleDir string
	// GoArch is the GOARCH of the binary and the image platform (amd64, arm64).
	GoArch string
	// CacheDir holds built images by input hash. Empty:
	// os.UserCacheDir()/nas-topology/image.
	CacheDir string
	// Repository is the repository of Result.Reference (DefaultRepository).
	Repository string
	// Version is the org.opencontainers.image.version label ("dev").
	Version string
	// GoCommand is the go tool to run ("go" on PATH).
	GoCommand string
}

// Result describes a built image. It is plain data (JSON in the cache), so it
// can be kept and passed around; Load reads the image from its files.
type Result struct {
	// Reference is Repository:sha-<first 12 hex of Digest>, e.g.
	// docker.io/library/nasd:sha-0123456789ab: what a Deployment runs.
	Reference string `json:"reference"`
	// Digest is the manifest digest, sha256:<64 hex>.
	Digest string `json:"digest"`
	// SourceHash is the hash of the nasd sources (the revision label).
	SourceHash string `json:"sourceHash"`
	// GoVersion is the toolchain that compiled /nasd.
	GoVersion string `json:"goVersion"`
	GoArch    string `json:"goArch"`
	// LayerSize is the compressed size of the one layer; Size adds the config
	// and the manifest: what a registry stores and a node downloads.
	LayerSize int64 `json:"layerSize"`
	Size      int64 `json:"size"`
	// BinarySize is the size of /nasd, uncompressed.
	BinarySize int64 `json:"binarySize"`
	// TarballPath is a `docker load`-able tarball tagged with Reference.
	TarballPath string `json:"tarballPath"`
	// LayoutPath is an OCI image layout holding the exact image (same digest).
	LayoutPath string `json:"layoutPath"`
	// Cached reports that Build found the image in the cache (no go build).
	Cached bool `json:"-"`
}

// Tag returns the tag part of the Reference (sha-<12 hex>).
func (r *Result) Tag() string {
	return r.Reference[strings.LastIndex(r.Reference, ":")+1:]
}

// buildMu serialises Builds in this process: a Pulumi program may ask from
// several places, and one `go build` at a time is what the machine can take.
var buildMu sync.Mutex

// Build builds the nasd image, or returns the cached one when the nasd
// sources, go.mod/go.sum, Go version and options are unchanged.
func Build(ctx context.Context, opts Options) (*Result, error) {
	buildMu.Lock()
	defer buildMu.Unlock()

	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fp, err := fingerprint(ctx, o.GoCommand, o.ModuleDir, o.GoArch)
	if err != nil {
		return nil, err
	}
	key := o.cacheKey(fp)
	entry := filepath.Join(o.CacheDir, key)
	if res, err := readEntry(entry); err == nil {
		res.Cached = true
		return res, nil
	}

	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	tmp, err := os.MkdirTemp(o.CacheDir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	defer os.RemoveAll(tmp) // after a successful rename it is gone already

	bin := filepath.Join(tmp, "nasd")
	if err := goBuild(ctx, o.GoCommand, o.ModuleDir, o.GoArch, bin); err != nil {
		return nil, err
	}
	res, err := assemble(bin, tmp, assembleParams{
		goArch:     o.GoArch,
		repository: o.Repository,
		labels:     o.labels(fp.source),
	})
	if err != nil {
		return nil, err
	}
	res.SourceHash = fp.source
	res.GoVersion = fp.goVersion
	if err := os.Remove(bin); err != nil { // the layer holds it
		return nil, err
	}
	if err := writeResult(tmp, res); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, entry); err != nil {
		// Another process built the same key meanwhile: use its entry.
		if existing, rerr := readEntry(entry); rerr == nil {
			return existing, nil
		}
		return nil, fmt.Errorf("image cache: %w", err)
	}
	pruneCache(o.CacheDir, keepEntries)
	return readEntry(entry)
}

func (o Options) withDefaults() (Options, error) {
	if o.GoArch == "" {
		o.GoArch = DefaultGoArch
	}
	if !slices.Contains(Arches, o.GoArch) {
		return o, fmt.Errorf("nasd image: GOARCH %q is not one of %v", o.GoArch, Arches)
	}
	if o.Repository == "" {
		o.Repository = DefaultRepository
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.GoCommand == "" {
		o.GoCommand = "go"
	}
	goCmd, err := exec.LookPath(o.GoCommand)
	if err != nil {
		return o, fmt.Errorf("building the nasd image needs the Go toolchain (go >= 1.26.6) on PATH: %w", err)
	}
	o.GoCommand = goCmd
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		o.CacheDir = filepath.Join(base, "nas-topology", "image")
	}
	if o.ModuleDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return o, err
		}
		if o.ModuleDir, err = findModule(wd); err != nil {
			return o, err
		}
	}
	abs, err := filepath.Abs(o.ModuleDir)
	if err != nil {
		return o, err
	}
	o.ModuleDir = abs
	return o, nil
}

// findModule walks up from dir to the go.mod that declares ModulePath.
func findModule(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && modulePathOf(data) == ModulePath {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of module %s at or above %s: set the module directory (image.Options.ModuleDir)", ModulePath, dir)
		}
		d = parent
	}
}

func modulePathOf(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// labels are the OCI annotations of the image config.
func (o Options) labels(sourceHash string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "nasd",
		"org.opencontainers.image.description": "NFS server and Windows sync of nas-topology",
		"org.opencontainers.image.source":      "https://" + ModulePath,
		// The source hash, not a git commit: it is what the binary is built
		// from, including uncommitted changes, and it is the same in any clone.
		"org.opencontainers.image.revision": sourceHash,
		"org.opencontainers.image.version":  o.Version,
	}
}

// cacheKey hashes every input of the image: the sources (fp), the toolchain,
// and the options that end up in the image.
func (o Options) cacheKey(fp sourceFingerprint) string {
	recipe, _ := json.Marshal(struct {
		Recipe, Source, GoVersion, GoArch, Repository, Version string
		Flags                                                  []string
	}{recipeVersion, fp.source, fp.goVersion, o.GoArch, o.Repository, o.Version, buildFlags})
	sum := sha256.Sum256(recipe)
	return hex.EncodeToString(sum[:16])
}

// buildEnv is the environment of `go list` and `go build`: the caller's,
// with everything that selects what is compiled pinned.
func buildEnv(goArch string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOWORK",
			"GOAMD64", "GOARM", "GOARM64", "GO386", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64", "GOWASM",
			"GOEXPERIMENT":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOOS=linux", "GOARCH="+goArch, "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
}

func goBuild(ctx context.Context, goCmd, moduleDir, goArch, out string) error {
	args := append([]string{"build", "-o", out}, buildFlags...)
	args = append(args, NasdPackage)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = moduleDir
	cmd.Env = buildEnv(goArch)
	killGroupOnCancel(cmd)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("go build %s (GOARCH=%s): %w", NasdPackage, goArch, context.Cause(ctx))
		}
		return fmt.Errorf("go build %s (GOARCH=%s): %w\n%s", NasdPackage, goArch, err, strings.TrimSpace(output.String()))
	}
	return nil
}

func writeResult(dir string, res *Result) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "result.json"), append(data, '\n'), 0o644)
}

// readEntry loads a cache entry; its file paths are re-rooted at dir, so a
// cache directory can move.
func readEntry(dir string) (*Result, error) {
	data, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, err
	}
	res.TarballPath = filepath.Join(dir, tarballName)
	res.LayoutPath = filepath.Join(dir, layoutName)
	for _, p := range []string{res.TarballPath, filepath.Join(res.LayoutPath, "index.json")} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	if res.Digest == "" || res.Reference == "" {
		return nil, errors.New("incomplete cache entry")
	}
	touch(dir)
	return &res, nil
}
