package image

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests share one snapshot of the module and one build of it: a nasd
// `go build` is the slow part. The snapshot also keeps the tests apart from
// edits made to the working tree while they run.
var (
	testRoot  string // removed by TestMain
	buildOnce sync.Once
	shared    *Result
	sharedErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nasd-image-test-")
	if err != nil {
		panic(err)
	}
	testRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// snapshotDir is the module copy the shared image is built from.
func snapshotDir() string { return filepath.Join(testRoot, "src") }

// sharedImage builds the snapshot once for all tests.
func sharedImage(t *testing.T) *Result {
	t.Helper()
	buildOnce.Do(func() {
		root, err := findModule(".")
		if err != nil {
			sharedErr = err
			return
		}
		if sharedErr = copyModule(root, snapshotDir()); sharedErr != nil {
			return
		}
		start := time.Now()
		shared, sharedErr = Build(context.Background(), Options{
			ModuleDir: snapshotDir(),
			CacheDir:  filepath.Join(testRoot, "cache"),
		})
		if sharedErr == nil {
			t.Logf("built %s in %s: image %d bytes (layer %d), /nasd %d bytes",
				shared.Reference, time.Since(start).Round(time.Millisecond), shared.Size, shared.LayerSize, shared.BinarySize)
		}
	})
	if sharedErr != nil {
		t.Fatalf("building the shared image: %v", sharedErr)
	}
	return shared
}

// copyModule copies what a nasd build reads: go.mod, go.sum and nasimage/.
func copyModule(from, to string) error {
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := copyFile(filepath.Join(from, f), filepath.Join(to, f)); err != nil {
			return err
		}
	}
	return filepath.WalkDir(filepath.Join(from, "nasimage"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, filepath.Join(to, rel))
	})
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

func TestBuildResult(t *testing.T) {
	res := sharedImage(t)
	if res.Cached {
		t.Error("first build in an empty cache reported Cached")
	}
	if !strings.HasPrefix(res.Digest, "sha256:") || len(res.Digest) != len("sha256:")+64 {
		t.Errorf("Digest = %q", res.Digest)
	}
	if want := DefaultRepository + ":sha-" + res.Digest[7:19]; res.Reference != want {
		t.Errorf("Reference = %q, want %q (derived from the digest)", res.Reference, want)
	}
	if res.Tag() != "sha-"+res.Digest[7:19] {
		t.Errorf("Tag() = %q", res.Tag())
	}
	if res.GoArch != "amd64" || !strings.HasPrefix(res.GoVersion, "go1.") || !strings.HasPrefix(res.SourceHash, "sha256:") {
		t.Errorf("GoArch %q GoVersion %q SourceHash %q", res.GoArch, res.GoVersion, res.SourceHash)
	}
	if res.LayerSize <= 0 || res.Size <= res.LayerSize || res.BinarySize <= res.LayerSize {
		t.Errorf("sizes: layer %d, image %d, binary %d", res.LayerSize, res.Size, res.BinarySize)
	}
	// "A few MB": fail loudly if the image balloons (a dependency, lost -s -w).
	if res.Size > 20<<20 {
		t.Errorf("image is %d bytes, more than 20 MiB", res.Size)
	}
	t.Logf("image %s: %.2f MB compressed (layer %d bytes), /nasd %.2f MB", res.Digest, float64(res.Size)/1e6, res.LayerSize, float64(res.BinarySize)/1e6)
}

func TestBuildCachedWhenSourceUnchanged(t *testing.T) {
	first := sharedImage(t)
	start := time.Now()
	again, err := Build(context.Background(), Options{ModuleDir: snapshotDir(), CacheDir: filepath.Join(testRoot, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached {
		t.Error("second build with unchanged sources did not come from the cache")
	}
	if again.Digest != first.Digest || again.Reference != first.Reference || again.TarballPath != first.TarballPath {
		t.Errorf("cached result differs:\n%+v\n%+v", again, first)
	}
	t.Logf("cached Build took %s (go env + go list, no go build)", time.Since(start).Round(time.Millisecond))
}

// TestBuildReproducible builds the same sources again, in another directory
// and with an empty cache, so `go build` and the assembly run again.
func TestBuildReproducible(t *testing.T) {
	first := sharedImage(t)
	dir := filepath.Join(testRoot, "copy-same")
	if err := copyModule(snapshotDir(), dir); err != nil {
		t.Fatal(err)
	}
	second, err := Build(context.Background(), Options{ModuleDir: dir, CacheDir: filepath.Join(testRoot, "cache-same")})
	if err != nil {
		t.Fatal(err)
	}
	if second.Cached {
		t.Fatal("build in an empty cache directory reported Cached")
	}
	if second.Digest != first.Digest {
		t.Errorf("same sources, different digests: %s vs %s", first.Digest, second.Digest)
	}
	if second.SourceHash != first.SourceHash {
		t.Errorf("same sources, different source hashes: %s vs %s", first.SourceHash, second.SourceHash)
	}
}

// TestBuildSourceChange edits a nasd source file in a copy of the module:
// the source hash, the binary (layer) and so the digest must all change.
// Adding a _test.go file, which is not compiled into nasd, changes nothing.
func TestBuildSourceChange(t *testing.T) {
	first := sharedImage(t)
	dir := filepath.Join(testRoot, "copy-changed")
	if err := copyModule(snapshotDir(), dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	goCmd := mustGo(t)

	// A test file is not part of the binary: same fingerprint.
	testFile := filepath.Join(dir, "nasimage", "cmd", "nasd", "zz_image_test.go")
	if err := os.WriteFile(testFile, []byte("package main\n\nconst imageTestMarker = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fp, err := fingerprint(ctx, goCmd, dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if fp.source != first.SourceHash {
		t.Errorf("adding a _test.go file changed the source hash")
	}

	// A change to a compiled file: a new string the binary prints.
	mainGo := filepath.Join(dir, "nasimage", "cmd", "nasd", "main.go")
	src, err := os.ReadFile(mainGo)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(src), "nasd serve [flags]", "nasd serve [flags] (changed by TestBuildSourceChange)", 1)
	if changed == string(src) {
		t.Fatal("main.go no longer has the usage line this test edits")
	}
	if err := os.WriteFile(mainGo, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := Build(ctx, Options{ModuleDir: dir, CacheDir: filepath.Join(testRoot, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if second.Cached {
		t.Error("changed sources were served from the cache")
	}
	if second.SourceHash == first.SourceHash {
		t.Error("source hash unchanged after editing main.go")
	}
	if second.Digest == first.Digest || second.Reference == first.Reference {
		t.Errorf("digest/reference unchanged after editing main.go: %s", second.Reference)
	}
	l1, l2 := layerDigest(t, first), layerDigest(t, second)
	if l1 == l2 {
		t.Error("layer (binary) unchanged after editing main.go: only the labels changed")
	}
}

func TestFindModule(t *testing.T) {
	root, err := findModule(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "nasimage", "image", "build.go")); err != nil {
		t.Errorf("findModule(.) = %s: %v", root, err)
	}
	if _, err := findModule(t.TempDir()); err == nil || !strings.Contains(err.Error(), "ModuleDir") {
		t.Errorf("findModule outside the module: %v", err)
	}
}

func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i, name := range []string{"a", "b", "c", "d"} {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	pruneCache(dir, 2)
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "c,d" {
		t.Errorf("after pruning to 2: %v, want the two most recent [c d]", names)
	}
}

func mustGo(t *testing.T) string {
	t.Helper()
	o, err := Options{ModuleDir: snapshotDir(), CacheDir: t.TempDir()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return o.GoCommand
}

func layerDigest(t *testing.T, res *Result) string {
	t.Helper()
	img, err := openImage(res)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	return m.Layers[0].Digest.String()
}
