package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// checkImage asserts everything we promise about a nasd image: OCI media
// types, config, and the one layer's exact content. It returns /nasd.
func checkImage(t *testing.T, img v1.Image, res *Result) []byte {
	t.Helper()
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %q (%v), want %q", mt, err, types.OCIManifestSchema1)
	}
	digest, err := img.Digest()
	if err != nil || digest.String() != res.Digest {
		t.Errorf("digest %s (%v), want %s", digest, err, res.Digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != res.GoArch {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, res.GoArch)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("User = %q", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/nasd"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("Entrypoint %q Cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if !cf.Created.Time.Equal(epoch) {
		t.Errorf("Created = %s, want the epoch", cf.Created)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "nasd",
		"org.opencontainers.image.source":   "https://" + ModulePath,
		"org.opencontainers.image.revision": res.SourceHash,
		"org.opencontainers.image.version":  "dev",
	}
	for k, v := range wantLabels {
		if got := cf.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %q", mt)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	type entry struct {
		mode int64
		typ  byte
	}
	want := map[string]entry{
		"etc/":       {0o755, tar.TypeDir},
		"etc/group":  {0o644, tar.TypeReg},
		"etc/passwd": {0o644, tar.TypeReg},
		"nasd":       {0o755, tar.TypeReg},
		"tmp/":       {0o1777, tar.TypeDir},
	}
	var names []string
	var nasd, passwd []byte
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		w, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected file %s in the layer", hdr.Name)
			continue
		}
		if hdr.Mode != w.mode || hdr.Typeflag != w.typ || hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: mode %o type %c uid %d gid %d mtime %s", hdr.Name, hdr.Mode, hdr.Typeflag, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Name {
		case "nasd":
			nasd = data
		case "etc/passwd":
			passwd = data
		}
	}
	if len(names) != len(want) {
		t.Errorf("layer has %v, want %d entries", names, len(want))
	}
	if !strings.Contains(string(passwd), "nasd:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nasd user 65532:\n%s", passwd)
	}
	if int64(len(nasd)) != res.BinarySize {
		t.Errorf("/nasd is %d bytes, Result.BinarySize %d", len(nasd), res.BinarySize)
	}
	return nasd
}

func TestImageContent(t *testing.T) {
	res := sharedImage(t)
	img, err := openImage(res)
	if err != nil {
		t.Fatal(err)
	}
	nasd := checkImage(t, img, res)

	// A static binary: no program interpreter (dynamic loader), the right machine.
	f, err := elf.NewFile(bytes.NewReader(nasd))
	if err != nil {
		t.Fatalf("/nasd is not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/nasd has a PT_INTERP program header: it is dynamically linked")
		}
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("/nasd machine %s, want EM_X86_64", f.Machine)
	}
	if syms, _ := f.Symbols(); len(syms) != 0 {
		t.Errorf("/nasd has %d symbols: not stripped (-s -w)", len(syms))
	}

	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("running /nasd needs a linux/amd64 host")
	}
	bin := filepath.Join(t.TempDir(), "nasd")
	if err := os.WriteFile(bin, nasd, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nasd serve") {
		t.Errorf("/nasd --help: %v\n%s", err, out)
	}
}

// TestTarballLoadable reads the docker tarball the loaders use: tagged with
// the reference, holding the same config and layer.
func TestTarballLoadable(t *testing.T) {
	res := sharedImage(t)
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(res.TarballPath) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{res.Reference}) {
		t.Fatalf("tarball manifest.json %+v, want one image tagged %s", m, res.Reference)
	}
	img, err := tarball.ImageFromPath(res.TarballPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := openImage(res)
	if err != nil {
		t.Fatal(err)
	}
	// The docker tarball format has no manifest of its own (docker load
	// writes one), so compare what it carries: config and layer.
	c1, _ := img.ConfigName()
	c2, _ := orig.ConfigName()
	if c1 != c2 {
		t.Errorf("tarball config %s, image config %s", c1, c2)
	}
	l1, _ := img.Layers()
	l2, _ := orig.Layers()
	if len(l1) != 1 || len(l2) != 1 {
		t.Fatalf("layers: tarball %d, image %d", len(l1), len(l2))
	}
	d1, _ := l1[0].Digest()
	d2, _ := l2[0].Digest()
	if d1 != d2 {
		t.Errorf("tarball layer %s, image layer %s", d1, d2)
	}
}

func TestLayerTarDeterministic(t *testing.T) {
	a, err := layerTar([]byte("binary"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := layerTar([]byte("binary"))
	if !bytes.Equal(a, b) {
		t.Error("layerTar is not deterministic")
	}
}

// Every architecture nasd is built for: the image config's platform and
// the ELF machine of /nasd are that architecture's (cross-compiled: the
// binary is static Go).
func TestImageForEachArch(t *testing.T) {
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	variants := map[string]string{"amd64": "", "arm64": "v8"}
	sharedImage(t) // the snapshot
	for _, arch := range Arches {
		t.Run(arch, func(t *testing.T) {
			res, err := Build(context.Background(), Options{ModuleDir: snapshotDir(), CacheDir: filepath.Join(testRoot, "cache"), GoArch: arch})
			if err != nil {
				t.Fatal(err)
			}
			if res.GoArch != arch {
				t.Errorf("GoArch %q", res.GoArch)
			}
			img, err := openImage(res)
			if err != nil {
				t.Fatal(err)
			}
			nasd := checkImage(t, img, res) // platform linux/<arch>
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Variant != variants[arch] {
				t.Errorf("variant %q, want %q", cf.Variant, variants[arch])
			}
			f, err := elf.NewFile(bytes.NewReader(nasd))
			if err != nil {
				t.Fatal(err)
			}
			want, ok := machines[arch]
			if !ok {
				t.Fatalf("no ELF machine known for %s: add it here", arch)
			}
			if f.Machine != want {
				t.Errorf("/nasd machine %s, want %s", f.Machine, want)
			}
		})
	}
	if _, err := Build(context.Background(), Options{ModuleDir: snapshotDir(), CacheDir: t.TempDir(), GoArch: "riscv64"}); err == nil {
		t.Error("an architecture nasd is not built for was accepted")
	}
}

// A cancelled build stops (the go tool and its compilers with it), reports
// the cancellation, and leaves no cache entry.
func TestBuildHonoursCancellation(t *testing.T) {
	sharedImage(t)
	cache := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the go build has started: its process is in the cache's
	// temp directory's build, so wait for that directory to appear.
	go func() {
		for {
			entries, _ := os.ReadDir(cache)
			if len(entries) > 0 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := Build(ctx, Options{ModuleDir: snapshotDir(), CacheDir: cache, Version: "cancelled"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build after cancel: %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		t.Errorf("cache entry %s left after a cancelled build", e.Name())
	}
}
