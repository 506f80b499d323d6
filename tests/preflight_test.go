package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// withKubeconfig makes the program see a kubeconfig with these contexts only.
func withKubeconfig(t *testing.T, contexts ...string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "kubeconfig")
	var b strings.Builder
	b.WriteString("contexts:\n")
	for _, c := range contexts {
		b.WriteString("- name: " + c + "\n")
	}
	require.NoError(t, os.WriteFile(f, []byte(b.String()), 0o600))
	old := components.LookupEnv
	components.LookupEnv = func(k string) (string, bool) {
		if k == "KUBECONFIG" {
			return f, true
		}
		return os.LookupEnv(k)
	}
	t.Cleanup(func() { components.LookupEnv = old })
}

// stackRaw is the committed merged config of a stack, namespaced for the engine.
func stackRaw(t *testing.T, stack string, edit func(map[string]string)) map[string]string {
	t.Helper()
	raw, err := spec.MergedConfig(projectDir(t), stack)
	require.NoError(t, err)
	if edit != nil {
		edit(raw)
	}
	cfg := map[string]string{}
	for k, v := range raw {
		cfg[spec.Namespace+":"+k] = v
	}
	return cfg
}

func loaderNone(cfg map[string]string) {
	cfg[spec.KeyCluster] = strings.Replace(cfg[spec.KeyCluster], `"imageLoader":"minikube"`, `"imageLoader":"none"`, 1)
}

// `up` checks the kube context and the loader's tool before it registers
// anything, and stops with one sentence; preview used to check neither.
func TestUpStopsAtThePreflight(t *testing.T) {
	t.Run("no minikube", func(t *testing.T) {
		dir, raw := projectDir(t), stackRaw(t, "dev", nil) // before PATH loses git
		t.Setenv("PATH", t.TempDir())
		withKubeconfig(t, "minikube")
		r, err := runMode(t, dir, "dev", raw, false)
		require.ErrorContains(t, err, `image loader "minikube" needs minikube on PATH`)
		assert.Empty(t, r.ofType(typeDeployment))
	})
	t.Run("no kube context", func(t *testing.T) {
		withKubeconfig(t, "kind")
		r, err := runMode(t, projectDir(t), "dev", stackRaw(t, "dev", loaderNone), false)
		require.ErrorContains(t, err, `the kube context "minikube" (nas-topology:kubeContext) does not exist`)
		assert.Empty(t, r.ofType(typeDeployment))
	})
	t.Run("production without its context", func(t *testing.T) {
		withKubeconfig(t, "minikube")
		_, err := runMode(t, projectDir(t), "ocp", stackRaw(t, "ocp", nil), false)
		require.ErrorContains(t, err, `the kube context "ocp-prod"`)
	})
	t.Run("all there", func(t *testing.T) {
		withKubeconfig(t, "minikube")
		r, err := runMode(t, projectDir(t), "dev", stackRaw(t, "dev", loaderNone), false)
		require.NoError(t, err)
		assert.NotEmpty(t, r.ofType(typeDeployment))
	})
}

// A preview without the cluster still plans (`make parity`, an operator
// planning production offline): the failed checks are warnings.
func TestPreviewWarnsAboutThePreflight(t *testing.T) {
	withKubeconfig(t)
	for _, stack := range []string{"dev", "ocp"} {
		r, err := runMode(t, projectDir(t), stack, stackRaw(t, stack, nil), true)
		require.NoError(t, err, stack)
		assert.NotEmpty(t, r.ofType(typePV), stack)
	}
}
