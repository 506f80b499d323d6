package components

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
)

// DeployedOutput is the stack output holding, per server, the volume as the
// last successful run deployed it (Deployed). The next run reads it back
// through a StackReference to its own stack, the one place a Pulumi program
// can see what it deployed before, to tell the user before anything moves
// what a change of the shared definition will do (VolumeChange).
const DeployedOutput = "deployedVolumes"

// Deployed is a server's volume plus the address its PV points at.
type Deployed struct {
	Volume
	NFSServer string `json:"nfsServer"`
}

// FieldChange is one field of a volume's definition that differs from what
// the stack deployed.
type FieldChange struct {
	Field    string // the config key (exportPath, capacity, ...)
	From, To string
	InPlace  bool // Kubernetes changes it on the live objects; else replace
}

// VolumeChange is what a run does to one server's PV/PVC.
type VolumeChange struct {
	Server string
	New    bool // not in the stack's last outputs: created (or imported)
	Fields []FieldChange
}

// Replaces reports whether the change deletes and recreates the PV/PVC.
func (c VolumeChange) Replaces() bool {
	return slices.ContainsFunc(c.Fields, func(f FieldChange) bool { return !f.InPlace })
}

// ReplacingFields lists the fields that make it a replacement.
func (c VolumeChange) ReplacingFields() string {
	var out []string
	for _, f := range c.Fields {
		if !f.InPlace {
			out = append(out, fmt.Sprintf("%s %s -> %s", f.Field, f.From, f.To))
		}
	}
	return strings.Join(out, ", ")
}

// volumeFields are the fields of a deployed volume, with the config key a
// user edits and whether Kubernetes can change it on a live static PV/PVC.
// Replacing: the PV's nfs source (server, path, readOnly) and volumeMode are
// immutable; a PVC's spec is immutable but for its storage request, which a
// static class (no allowVolumeExpansion) cannot grow either, and a bound PV
// keeps its claim's uid, so the PV goes with its claim (PVReplaceOnChanges
// and PVCReplaceOnChanges say the same to the engine). In place: labels,
// mount options, the reclaim policy.
var volumeFields = []struct {
	key     string
	inPlace bool
	get     func(Deployed) any
}{
	{"volumeName", false, func(d Deployed) any { return d.Name }},
	{"claim", false, func(d Deployed) any { return d.Claim.Namespace + "/" + d.Claim.Name }},
	{"exportPath", false, func(d Deployed) any { return d.ExportPath }},
	{"readOnly", false, func(d Deployed) any { return d.ReadOnly }},
	{"capacity", false, func(d Deployed) any { return d.Capacity }},
	{"accessModes", false, func(d Deployed) any { return d.AccessModes }},
	{"storageClassName", false, func(d Deployed) any { return d.StorageClassName }},
	{"volumeMode", false, func(d Deployed) any { return d.VolumeMode }},
	{"nfs.server", false, func(d Deployed) any { return d.NFSServer }},
	{"mountOptions", true, func(d Deployed) any { return d.MountOptions }},
	{"labels", true, func(d Deployed) any { return d.Labels }},
	{"reclaimPolicy", true, func(d Deployed) any { return d.ReclaimPolicy }},
}

// ChangesOf compares the volumes about to be deployed with the deployed ones
// (nil: none known), in the order of next. Unchanged servers are left out.
func ChangesOf(prev, next map[string]Deployed, order []string) []VolumeChange {
	var out []VolumeChange
	for _, name := range order {
		n := next[name]
		p, ok := prev[name]
		if !ok {
			out = append(out, VolumeChange{Server: name, New: true})
			continue
		}
		c := VolumeChange{Server: name}
		for _, f := range volumeFields {
			a, b := f.get(p), f.get(n)
			if reflect.DeepEqual(a, b) || (isEmpty(a) && isEmpty(b)) {
				continue
			}
			c.Fields = append(c.Fields, FieldChange{Field: f.key, From: show(a), To: show(b), InPlace: f.inPlace})
		}
		if len(c.Fields) > 0 {
			out = append(out, c)
		}
	}
	return out
}

func isEmpty(v any) bool {
	r := reflect.ValueOf(v)
	return !r.IsValid() || r.IsZero() || ((r.Kind() == reflect.Slice || r.Kind() == reflect.Map) && r.Len() == 0)
}

func show(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return `""`
		}
		return v
	case map[string]string:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + v[k]
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}

// deployedOutputs is the value of DeployedOutput for these volumes.
func deployedOutputs(d map[string]Deployed) pulumi.Map {
	out := pulumi.Map{}
	for name, v := range d {
		b, _ := json.Marshal(v) // plain strings, slices and maps always marshal
		out[name] = pulumi.String(b)
	}
	return out
}

// previousDeployed reads DeployedOutput of the stack's last successful run
// through a StackReference to the stack itself. A stack that never ran (or
// ran a program without the output) has none: nil.
func previousDeployed(ctx *pulumi.Context) (map[string]Deployed, error) {
	self := fmt.Sprintf("%s/%s/%s", ctx.Organization(), ctx.Project(), ctx.Stack())
	ref, err := pulumi.NewStackReference(ctx, "deployed", &pulumi.StackReferenceArgs{Name: pulumi.String(self)})
	if err != nil {
		return nil, fmt.Errorf("reading what the stack deployed: %w", err)
	}
	res, err := internals.UnsafeAwaitOutput(ctx.Context(), ref.GetOutput(pulumi.String(DeployedOutput)))
	if err != nil {
		return nil, fmt.Errorf("reading what the stack deployed: %w", err)
	}
	m, ok := res.Value.(map[string]any)
	if !res.Known || !ok {
		return nil, nil
	}
	out := map[string]Deployed{}
	for name, v := range m {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var d Deployed
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			return nil, fmt.Errorf("reading what the stack deployed: output %s.%s: %w", DeployedOutput, name, err)
		}
		out[name] = d
	}
	return out, nil
}
