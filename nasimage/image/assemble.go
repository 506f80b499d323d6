package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Files of a cache entry.
const (
	tarballName = "nasd.tar"
	layoutName  = "oci"
)

// epoch is every timestamp in the image: file mtimes, history, created.
var epoch = time.Unix(0, 0).UTC()

// The account files: root, and the nasd user the pod runs as (so tools and
// logs show a name, and HOME resolves).
var (
	passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnasd:x:%d:%d:nasd:/:/sbin/nologin\n", UID, GID)
	group  = fmt.Sprintf("root:x:0:\nnasd:x:%d:\n", GID)
)

type assembleParams struct {
	goArch     string
	repository string
	labels     map[string]string
}

// layerTar returns the uncompressed layer: a fixed file tree around the nasd
// binary, in a fixed order, with fixed owners, modes and times.
func layerTar(nasd []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		mode int64
		data []byte
		dir  bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "nasd", mode: 0o755, data: nasd},
		// Go's os.TempDir; the root filesystem may be read-only, but /tmp can
		// then be a volume and must exist as a mount point.
		{name: "tmp/", mode: 0o1777, dir: true},
	}
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newImage assembles the image around the nasd binary.
func newImage(nasd []byte, p assembleParams) (v1.Image, error) {
	layerBytes, err := layerTar(nasd)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching,
	)
	if err != nil {
		return nil, err
	}
	platform := &v1.ConfigFile{
		Architecture: p.goArch,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", UID, GID),
			Entrypoint: []string{"/nasd"},
			WorkingDir: "/",
			Labels:     p.labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if p.goArch == "arm64" {
		platform.Variant = "v8"
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, platform); err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "nasimage/image: go build " + NasdPackage,
		},
	})
}

// assemble builds the image from the binary at binPath and writes it into
// dir twice: as an OCI layout (exact bytes, for pushing) and as a docker
// tarball tagged with the digest-derived reference (for minikube/ctr).
func assemble(binPath, dir string, p assembleParams) (*Result, error) {
	nasd, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	img, err := newImage(nasd, p)
	if err != nil {
		return nil, fmt.Errorf("assembling the nasd image: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ref := fmt.Sprintf("%s:sha-%s", p.repository, digest.Hex[:12])
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	res := &Result{
		Reference:   ref,
		Digest:      digest.String(),
		GoArch:      p.goArch,
		BinarySize:  int64(len(nasd)),
		TarballPath: filepath.Join(dir, tarballName),
		LayoutPath:  filepath.Join(dir, layoutName),
	}
	if res.LayerSize, res.Size, err = sizes(img); err != nil {
		return nil, err
	}
	lp, err := layout.Write(res.LayoutPath, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := lp.AppendImage(img); err != nil {
		return nil, fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := tarball.WriteToFile(res.TarballPath, tag, img); err != nil {
		return nil, fmt.Errorf("writing the image tarball: %w", err)
	}
	return res, nil
}

// sizes returns the compressed layer bytes and the whole image (manifest +
// config + layers).
func sizes(img v1.Image) (layer, total int64, err error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, 0, err
	}
	total = int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		layer += l.Size
		total += l.Size
	}
	return layer, total, nil
}

// openImage reads a built image back from its OCI layout.
func openImage(res *Result) (v1.Image, error) {
	lp, err := layout.FromPath(res.LayoutPath)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w (rebuild it with image.Build)", res.Reference, err)
	}
	h, err := v1.NewHash(res.Digest)
	if err != nil {
		return nil, err
	}
	return lp.Image(h)
}
