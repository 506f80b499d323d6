package parity

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Drift is one PV/PVC field where the live object (the refreshed state) differs
// from the shared definition (what the program asks for).
type Drift struct {
	Object  string // "PersistentVolume/nas-input-1"
	Op      string // what up would do: update, replace
	Field   string // "spec.mountOptions[4]"
	Live    any
	Defined any
}

func (d Drift) String() string {
	show := func(v any) string {
		if v == nil {
			return "(absent)"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprintf("%s %s (up would %s)\n    production: %s\n    definition: %s", d.Object, d.Field, d.Op, show(d.Live), show(d.Defined))
}

// DriftFromPreview lists, from a `pulumi preview --refresh --json` of a stack
// that manages production's volumes, every PV/PVC field that up would change.
// Fields Kubernetes sets (status, claimRef uid, bind annotations) never show:
// they are not in the definition, so the provider reports no diff for them.
func DriftFromPreview(r io.Reader) ([]Drift, error) {
	p, err := ReadPreview(r)
	if err != nil {
		return nil, err
	}
	var drifts []Drift
	for _, s := range p.Steps {
		if s.Type() != TypePV && s.Type() != TypePVC {
			continue
		}
		switch s.Op {
		case "same", "read", "refresh", "import":
			continue
		}
		obj := strings.TrimPrefix(s.NewState.Type, "kubernetes:core/v1:") + "/" + objectName(s.NewState.Inputs)
		var live map[string]any
		if s.OldState != nil {
			live = s.OldState.Outputs
		}
		fields := make([]string, 0, len(s.DetailedDiff))
		for f := range s.DetailedDiff {
			fields = append(fields, f)
		}
		if len(fields) == 0 {
			fields = s.DiffReasons
		}
		sort.Strings(fields)
		for _, f := range fields {
			drifts = append(drifts, Drift{Object: obj, Op: s.Op, Field: f, Live: lookup(live, f), Defined: lookup(s.NewState.Inputs, f)})
		}
	}
	return drifts, nil
}

var pathPart = regexp.MustCompile(`[^.\[\]]+|\[\d+\]|\["[^"]*"\]`)

// lookup reads a Pulumi property path (spec.mountOptions[4],
// metadata.labels["app.kubernetes.io/name"]) from decoded JSON.
func lookup(v any, path string) any {
	for _, part := range pathPart.FindAllString(path, -1) {
		switch {
		case strings.HasPrefix(part, `["`):
			m, _ := v.(map[string]any)
			v = m[part[2:len(part)-2]]
		case strings.HasPrefix(part, "["):
			a, _ := v.([]any)
			i, _ := strconv.Atoi(part[1 : len(part)-1])
			if i >= len(a) {
				return nil
			}
			v = a[i]
		default:
			m, _ := v.(map[string]any)
			v = m[part]
		}
	}
	return v
}
