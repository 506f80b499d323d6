package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// ProjectConfig reads the project-level `config:` of dir/Pulumi.yaml and
// returns each key of the project namespace with its raw value, encoded the
// way the Pulumi engine hands it to programs (objects and arrays as JSON).
func ProjectConfig(dir string) (map[string]string, error) {
	var project struct {
		Config map[string]struct {
			Value   any `yaml:"value"`
			Default any `yaml:"default"`
		} `yaml:"config"`
	}
	if err := readYAML(filepath.Join(dir, "Pulumi.yaml"), &project); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range project.Config {
		val := v.Value
		if val == nil {
			val = v.Default
		}
		raw, err := engineValue(val)
		if err != nil {
			return nil, fmt.Errorf("Pulumi.yaml config %s: %w", k, err)
		}
		out[strings.TrimPrefix(k, Namespace+":")] = raw
	}
	return out, nil
}

// StackConfig reads dir/Pulumi.<stack>.yaml and returns the keys of the
// project namespace with their raw values.
func StackConfig(dir, stack string) (map[string]string, error) {
	var file struct {
		Config map[string]any `yaml:"config"`
	}
	if err := readYAML(filepath.Join(dir, "Pulumi."+stack+".yaml"), &file); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range file.Config {
		name, ok := strings.CutPrefix(k, Namespace+":")
		if !ok {
			continue // other namespaces (e.g. kubernetes:) are not ours
		}
		raw, err := engineValue(v)
		if err != nil {
			return nil, fmt.Errorf("Pulumi.%s.yaml config %s: %w", stack, k, err)
		}
		out[name] = raw
	}
	return out, nil
}

// MergedConfig is what the engine gives a program of that stack: project
// values, overridden by stack values.
func MergedConfig(dir, stack string) (map[string]string, error) {
	merged, err := ProjectConfig(dir)
	if err != nil {
		return nil, err
	}
	st, err := StackConfig(dir, stack)
	if err != nil {
		return nil, err
	}
	maps.Copy(merged, st)
	return merged, nil
}

// CheckSharedNotOverridden fails when a shared key's effective value differs
// from Pulumi.yaml: a stack file (or `pulumi config set`) has overridden it,
// which would make that stack's volumes differ from production's.
func CheckSharedNotOverridden(project map[string]string, get Getter) error {
	e := &errs{}
	for _, k := range SharedKeys {
		want, inProject := project[k]
		got, set := get(k)
		if !inProject {
			if set {
				e.add(k, "is set in the stack config but not in Pulumi.yaml; shared keys belong in Pulumi.yaml only, so every stack renders the same PersistentVolumes")
			}
			continue
		}
		if !set || !sameJSON(want, got) {
			e.add(k, "differs from Pulumi.yaml (overridden in the stack config?); shared keys belong in Pulumi.yaml only, so every stack renders the same PersistentVolumes")
		}
	}
	return e.err()
}

// engineValue encodes a YAML value as the engine does: scalars as text,
// everything else as JSON.
func engineValue(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int, bool, float64:
		return fmt.Sprint(v), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// sameJSON compares two raw values as JSON when both parse, else as text.
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return a == b
	}
	return reflect.DeepEqual(va, vb)
}

func readYAML(path string, out any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
