package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nas-topology/nas-topology/components/spec"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestKubeContext(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("contexts:\n- name: kind\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("contexts:\n- name: minikube\n  context: {cluster: minikube}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, context, kubeconfig, home string
		target                          spec.Target
		want                            string // in the error; "" = passes
		skipped                         bool
	}{
		{name: "found in the second file", context: "minikube", kubeconfig: a + ":" + b},
		{name: "missing", context: "minikube", kubeconfig: a, want: `the kube context "minikube" (nas-topology:kubeContext) does not exist: it is not in the kubeconfig (` + a + `), which has kind; run ` + "`minikube start`"},
		{name: "no kubeconfig at all", context: "minikube", home: dir, want: "no kubeconfig exists (" + filepath.Join(dir, ".kube", "config") + ")"},
		{name: "production", context: "ocp-prod", kubeconfig: a, target: spec.TargetExternal, want: "log in to the cluster"},
		{name: "no context configured", skipped: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := map[string]string{"HOME": tc.home}
			if tc.kubeconfig != "" {
				e["KUBECONFIG"] = tc.kubeconfig
			}
			target := tc.target
			if target == "" {
				target = spec.TargetCluster
			}
			c := kubeContext(&spec.Config{Target: target, KubeContext: tc.context}, env(e))
			if tc.skipped != (c.Skipped != "") {
				t.Fatalf("skipped = %q", c.Skipped)
			}
			switch {
			case tc.want == "" && c.Err != nil:
				t.Fatalf("unexpected error: %v", c.Err)
			case tc.want != "" && (c.Err == nil || !strings.Contains(c.Err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", c.Err, tc.want)
			case c.Err != nil && strings.Count(c.Err.Error(), "\n") > 0:
				t.Fatalf("not one line: %q", c.Err)
			}
		})
	}
}

func TestLoaderChecks(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing on it
	cfg := &spec.Config{Target: spec.TargetCluster, Cluster: &spec.Cluster{ImageLoader: "minikube"}}
	checks := Run(cfg, env(nil))
	if checks[0].Err == nil || !strings.Contains(checks[0].Err.Error(), `image loader "minikube" needs minikube on PATH`) {
		t.Fatalf("loader check: %+v", checks[0])
	}
	if got := First(checks); got != checks[0].Err {
		t.Fatalf("First is the loader's problem, got %v", got)
	}
	cfg.Cluster.ImageLoader = "none"
	checks = Run(cfg, env(nil))
	if checks[0].Skipped == "" || checks[0].Err != nil {
		t.Fatalf("loader none: %+v", checks[0])
	}
	if s := Summary(checks); !strings.Contains(s, "image loader none: skipped") || !strings.Contains(s, "kube context: skipped") {
		t.Fatalf("summary %q", s)
	}
	// An external target loads no image.
	if checks := Run(&spec.Config{Target: spec.TargetExternal}, env(nil)); len(checks) != 1 {
		t.Fatalf("external: %+v", checks)
	}
}
