// Package preflight checks, before anything is planned or deployed, what a
// stack needs from the machine it runs on: the kube context named in the
// config and the image loader's tool. Each failed check is one sentence that
// names the missing piece and the fix. `make up` runs it first; the program
// runs it too (a warning at preview, an error at up).
package preflight

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/nasimage/image"
)

// Check is one preflight check and its outcome.
type Check struct {
	Name    string // "kube context", "image loader"
	Skipped string // why it did not run ("" if it ran)
	Err     error  // the problem, one sentence; nil if fine
}

// Run checks a validated stack config. lookupEnv is os.LookupEnv (tests pass their own).
func Run(cfg *spec.Config, lookupEnv func(string) (string, bool)) []Check {
	// The loader first: without minikube, `minikube start` is no fix.
	var out []Check
	if cfg.Target == spec.TargetCluster {
		out = append(out, loader(cfg.Cluster))
	}
	return append(out, kubeContext(cfg, lookupEnv))
}

// First is the first failed check, or nil.
func First(checks []Check) error {
	for _, c := range checks {
		if c.Err != nil {
			return c.Err
		}
	}
	return nil
}

// Summary says in one line which checks passed, failed or were skipped.
func Summary(checks []Check) string {
	var parts []string
	for _, c := range checks {
		switch {
		case c.Err != nil:
			parts = append(parts, c.Name+": FAILED")
		case c.Skipped != "":
			parts = append(parts, c.Name+": skipped ("+c.Skipped+")")
		default:
			parts = append(parts, c.Name+": ok")
		}
	}
	return "preflight: " + strings.Join(parts, "; ")
}

func loader(c *spec.Cluster) Check {
	ch := Check{Name: "image loader " + c.ImageLoader}
	if c.ImageLoader == image.LoaderNone {
		ch.Skipped = "loader none loads nothing"
		return ch
	}
	if err := image.CheckLoader(c.ImageLoader, image.LoadOptions{Registry: c.ImageRegistry, MinikubeProfile: c.MinikubeProfile}); err != nil {
		ch.Err = fmt.Errorf("%w.", err)
	}
	return ch
}

// kubeContext checks that the context the provider will use is in the
// kubeconfig (the files of $KUBECONFIG, else ~/.kube/config).
func kubeContext(cfg *spec.Config, lookupEnv func(string) (string, bool)) Check {
	want := cfg.KubeContext
	ch := Check{Name: fmt.Sprintf("kube context %q", want)}
	if want == "" {
		ch.Name = "kube context"
		ch.Skipped = "none configured: the kubeconfig's current context is used"
		return ch
	}
	files := kubeconfigFiles(lookupEnv)
	var names []string
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		found = append(found, f)
		var kc struct {
			Contexts []struct {
				Name string `yaml:"name"`
			} `yaml:"contexts"`
		}
		if yaml.Unmarshal(b, &kc) != nil {
			continue
		}
		for _, c := range kc.Contexts {
			names = append(names, c.Name)
		}
	}
	if slices.Contains(names, want) {
		return ch
	}
	fix := "run `minikube start`"
	if cfg.Target == spec.TargetExternal {
		fix = "log in to the cluster (e.g. `oc login`)"
	}
	where := "no kubeconfig exists (" + strings.Join(files, ", ") + ")"
	if len(found) > 0 {
		where = "it is not in the kubeconfig (" + strings.Join(found, ", ") + ")"
		if len(names) > 0 {
			where += ", which has " + strings.Join(names, ", ")
		}
	}
	ch.Err = fmt.Errorf("the kube context %q (%s:%s) does not exist: %s; %s, or set %s:%s to an existing context.",
		want, spec.Namespace, spec.KeyKubeContext, where, fix, spec.Namespace, spec.KeyKubeContext)
	return ch
}

func kubeconfigFiles(lookupEnv func(string) (string, bool)) []string {
	if v, ok := lookupEnv("KUBECONFIG"); ok && v != "" {
		var out []string
		for _, f := range filepath.SplitList(v) {
			if f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	home, _ := lookupEnv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return []string{filepath.Join(home, ".kube", "config")}
}
