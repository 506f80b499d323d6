package kube

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The node pulls nothing: these images are built on the host from local
// binaries and imported into containerd.
const (
	PauseImage   = "registry.k8s.io/pause:kernellab"
	BusyboxImage = "docker.io/library/busybox:kernellab"
)

// ImageFile is one file of a one-layer image: contents from a host file,
// or a symlink when Link is set.
type ImageFile struct {
	Path string // inside the image, e.g. bin/busybox
	From string // host file (its contents, mode 0755)
	Link string // symlink target
}

// WriteImage writes a docker-archive tarball (what `ctr images import`
// reads) of a linux/amd64 image with one layer of files and the entrypoint.
func WriteImage(file, ref string, files []ImageFile, entrypoint []string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.Path, Linkname: f.Link, Mode: 0o777}); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(f.From)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: 0o755, Size: int64(len(b))}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: mustDiffIDs(img)},
		Config:       v1.Config{Entrypoint: entrypoint, Env: []string{"PATH=/bin"}},
	})
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(file, tag, img)
}

func mustDiffIDs(img v1.Image) []v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil
	}
	return cf.RootFS.DiffIDs
}

// BusyboxFiles is Debian's static busybox with a link per applet it lists.
func BusyboxFiles(busybox string, applets []string) []ImageFile {
	files := []ImageFile{{Path: "bin/busybox", From: busybox}}
	for _, a := range applets {
		if a != "busybox" {
			files = append(files, ImageFile{Path: "bin/" + a, Link: "busybox"})
		}
	}
	return files
}
