package image

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// fakeResult is enough for the loaders that only pass the tarball path on.
func fakeResult() *Result {
	return &Result{
		Reference:   DefaultRepository + ":sha-0123456789ab",
		Digest:      "sha256:0123456789ab" + strings.Repeat("0", 52),
		TarballPath: "/cache/entry/nasd.tar",
	}
}

func TestLoadNone(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		res     *Result
		opts    LoadOptions
		want    string
		wantErr string
	}{
		{name: "built reference", res: fakeResult(), want: fakeResult().Reference},
		{name: "prebuilt reference wins", res: fakeResult(), opts: LoadOptions{Reference: "registry.example/nasd:1.0"}, want: "registry.example/nasd:1.0"},
		{name: "prebuilt without a build", opts: LoadOptions{Reference: "nasd:prebuilt"}, want: "nasd:prebuilt"},
		{name: "nothing at all", wantErr: SettingReference},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(ctx, LoaderNone, tt.res, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Load = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLoadUnknownLoader(t *testing.T) {
	_, err := Load(context.Background(), "docker", fakeResult(), LoadOptions{})
	if err == nil {
		t.Fatal("unknown loader accepted")
	}
	for _, want := range []string{`"docker"`, SettingLoader, "minikube, containerd, registry, none"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if ValidateLoader("minikube") != nil || ValidateLoader("") == nil {
		t.Error("ValidateLoader")
	}
}

// TestLoadMissingTool runs with an empty PATH: the error says what to install
// and which setting to change instead.
func TestLoadMissingTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tests := []struct {
		loader string
		opts   LoadOptions
		want   []string
	}{
		{LoaderMinikube, LoadOptions{}, []string{"needs minikube on PATH", "install minikube", SettingLoader, "containerd, registry, none"}},
		{LoaderContainerd, LoadOptions{}, []string{"needs ctr on PATH", "install containerd", SettingLoader, "minikube, registry, none"}},
		{LoaderRegistry, LoadOptions{}, []string{"needs a registry", SettingRegistry, SettingLoader}},
	}
	for _, tt := range tests {
		t.Run(tt.loader, func(t *testing.T) {
			for name, err := range map[string]error{
				"CheckLoader": CheckLoader(tt.loader, tt.opts),
				"Load":        func() error { _, err := Load(context.Background(), tt.loader, fakeResult(), tt.opts); return err }(),
			} {
				if err == nil {
					t.Fatalf("%s succeeded without the tool", name)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s error %q does not mention %q", name, err, w)
					}
				}
			}
		})
	}
	if err := CheckLoader(LoaderNone, LoadOptions{}); err != nil {
		t.Errorf("none needs no tool: %v", err)
	}
}

// TestLoadCommands puts fake minikube and ctr on PATH that record their
// arguments, to check the command lines (the real tools need a cluster).
func TestLoadCommands(t *testing.T) {
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	for _, tool := range []string{"minikube", "ctr"} {
		script := "#!/bin/sh\necho \"$0 $*\" > " + record + "\necho loaded\n"
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	res := fakeResult()
	tests := []struct {
		loader string
		opts   LoadOptions
		want   string
	}{
		{LoaderMinikube, LoadOptions{}, "minikube image load /cache/entry/nasd.tar"},
		{LoaderMinikube, LoadOptions{MinikubeProfile: "nas"}, "minikube image load --profile nas /cache/entry/nasd.tar"},
		{LoaderContainerd, LoadOptions{}, "ctr --namespace k8s.io images import /cache/entry/nasd.tar"},
		{LoaderContainerd, LoadOptions{ContainerdNamespace: "other", ContainerdAddress: "/run/k3s/containerd/containerd.sock"},
			"ctr --namespace other --address /run/k3s/containerd/containerd.sock images import /cache/entry/nasd.tar"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var out strings.Builder
			tt.opts.Output = &out
			ref, err := Load(context.Background(), tt.loader, res, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if ref != res.Reference {
				t.Errorf("reference %q, want the built %q", ref, res.Reference)
			}
			got, _ := os.ReadFile(record)
			if line := strings.TrimSpace(strings.TrimPrefix(string(got), bin+"/")); line != tt.want {
				t.Errorf("ran %q, want %q", line, tt.want)
			}
			if out.String() != "loaded\n" {
				t.Errorf("output %q", out.String())
			}
		})
	}

	// A failing tool: its output is in the error.
	if err := os.WriteFile(filepath.Join(bin, "minikube"), []byte("#!/bin/sh\necho 'no cluster' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Load(context.Background(), LoaderMinikube, res, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "no cluster") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing minikube: %v", err)
	}
}

// TestLoadRegistry pushes the real image to an in-process registry on
// loopback and reads it back.
func TestLoadRegistry(t *testing.T) {
	res := sharedImage(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	ref, err := Load(context.Background(), LoaderRegistry, res, LoadOptions{Registry: host + "/team/"})
	if err != nil {
		t.Fatal(err)
	}
	if want := host + "/team/nasd:" + res.Tag(); ref != want {
		t.Errorf("reference %q, want %q", ref, want)
	}
	// What a preview shows is what up then uses.
	if planned := PlannedReference(LoaderRegistry, res, LoadOptions{Registry: host + "/team/"}); planned != ref {
		t.Errorf("PlannedReference %q, Load %q", planned, ref)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("reading back %s: %v", ref, err)
	}
	// Same digest as built: pushed byte for byte, not re-encoded.
	checkImage(t, img, res)
}
