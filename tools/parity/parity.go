// Package parity compares the PersistentVolumes and PersistentVolumeClaims
// that two `pulumi preview --json` runs plan (dev and ocp): every input field
// must be equal except a PV's spec.nfs.server. It is what `make parity` runs.
package parity

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/nas-topology/nas-topology/components/kinds"
)

// Volume types compared, by Pulumi type token.
const (
	TypePV  = kinds.PersistentVolume
	TypePVC = kinds.PersistentVolumeClaim
)

// Exempt is the one field allowed to differ: where the NFS server is.
const Exempt = "PersistentVolume spec.nfs.server"

// Objects maps "Kind/name" (namespace/name for PVCs) to its planned inputs,
// flattened to dotted field paths.
type Objects map[string]map[string]any

// Preview is the part of `pulumi preview --json` this project reads: the
// planned steps, each with the state before (refreshed, with --refresh) and
// the state the step ends in.
type Preview struct {
	Steps []Step `json:"steps"`
}

// Step is one planned resource operation.
type Step struct {
	Op       string `json:"op"` // create, update, replace, import, same, ...
	URN      string `json:"urn"`
	OldState *struct {
		Type    string         `json:"type"`
		Outputs map[string]any `json:"outputs"`
	} `json:"oldState"`
	NewState *struct {
		Type   string         `json:"type"`
		Inputs map[string]any `json:"inputs"`
	} `json:"newState"`
	DetailedDiff map[string]json.RawMessage `json:"detailedDiff"`
	DiffReasons  []string                   `json:"diffReasons"`
}

// Type is the resource type the step ends in ("" for a pure delete).
func (s Step) Type() string {
	if s.NewState == nil {
		return ""
	}
	return s.NewState.Type
}

// Name is the logical name at the end of the step's URN.
func (s Step) Name() string { return s.URN[strings.LastIndex(s.URN, "::")+2:] }

// ReadPreview decodes a `pulumi preview --json` output.
func ReadPreview(r io.Reader) (*Preview, error) {
	var p Preview
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, fmt.Errorf("not a `pulumi preview --json` output: %w", err)
	}
	return &p, nil
}

// FromPreview reads the PVs and PVCs a preview plans (creates, updates,
// replacements and unchanged steps alike: whatever state the step ends in).
func FromPreview(r io.Reader) (Objects, error) {
	p, err := ReadPreview(r)
	if err != nil {
		return nil, err
	}
	out := Objects{}
	for _, s := range p.Steps {
		if s.Type() != TypePV && s.Type() != TypePVC {
			continue
		}
		kind := strings.TrimPrefix(s.NewState.Type, "kubernetes:core/v1:")
		key := kind + "/" + objectName(s.NewState.Inputs)
		fields := map[string]any{}
		flatten("", s.NewState.Inputs, fields)
		out[key] = fields
	}
	return out, nil
}

func objectName(inputs map[string]any) string {
	md, _ := inputs["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if ns, ok := md["namespace"].(string); ok && ns != "" {
		return ns + "/" + name
	}
	return name
}

func flatten(prefix string, v any, out map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			out[prefix] = v
		}
		for k, e := range v {
			if prefix != "" {
				k = prefix + "." + k
			}
			flatten(k, e, out)
		}
	default:
		out[prefix] = v
	}
}

// Difference is one field that differs between the stacks.
type Difference struct {
	Object string // "PersistentVolume/nas-input-1"
	Field  string // "spec.capacity.storage"
	Dev    any    // nil: absent in dev
	OCP    any    // nil: absent in ocp
}

func (d Difference) String() string {
	show := func(v any) string {
		if v == nil {
			return "(absent)"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprintf("%s %s\n    dev: %s\n    ocp: %s", d.Object, d.Field, show(d.Dev), show(d.OCP))
}

// Compare lists every difference between dev and ocp, except Exempt, sorted.
func Compare(dev, ocp Objects) []Difference {
	var diffs []Difference
	for _, obj := range unionKeys(dev, ocp) {
		d, inDev := dev[obj]
		o, inOCP := ocp[obj]
		if !inDev || !inOCP {
			diffs = append(diffs, Difference{Object: obj, Field: "(object)", Dev: present(inDev), OCP: present(inOCP)})
			continue
		}
		for _, f := range unionKeys(d, o) {
			if strings.SplitN(obj, "/", 2)[0]+" "+f == Exempt {
				continue
			}
			if !reflect.DeepEqual(d[f], o[f]) {
				diffs = append(diffs, Difference{Object: obj, Field: f, Dev: d[f], OCP: o[f]})
			}
		}
	}
	return diffs
}

func present(ok bool) any {
	if ok {
		return "planned"
	}
	return nil
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
