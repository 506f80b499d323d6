package tests

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// deployedBy is the DeployedOutput a stack's run of the committed config
// exported: what the next run compares its definition with.
func deployedBy(t *testing.T, stack string) map[string]any {
	t.Helper()
	cfg := loadStack(t, stack)
	out := map[string]any{}
	for _, s := range cfg.Servers {
		addr := ""
		if cfg.Cluster != nil {
			addr = cfg.Cluster.Servers[s.Name].ClusterIP
		} else {
			addr = cfg.External.Addresses[s.Name]
		}
		b, err := json.Marshal(components.Deployed{Volume: components.VolumeFor(cfg.Shared, s), NFSServer: addr})
		require.NoError(t, err)
		out[s.Name] = string(b)
	}
	return map[string]any{components.DeployedOutput: out}
}

func loadStack(t *testing.T, stack string) *spec.Config {
	t.Helper()
	raw, err := spec.MergedConfig(projectDir(t), stack)
	require.NoError(t, err)
	cfg, err := spec.Load(func(k string) (string, bool) { v, ok := raw[k]; return v, ok })
	require.NoError(t, err)
	return cfg
}

// runChanged runs a stack deployed from the committed config after edit
// changed its config: shared keys in a copy of Pulumi.yaml, stack keys in
// the config the engine passes.
func runChanged(t *testing.T, stack string, edit func(cfg map[string]string), dryRun bool) (*run, error) {
	t.Helper()
	dir := editedProject(t, stack, func(shared map[string]string) { edit(shared) })
	raw, err := spec.MergedConfig(dir, stack)
	require.NoError(t, err)
	edit(raw) // the stack keys (the shared ones are edited already: idempotent)
	cfg := map[string]string{}
	for k, v := range raw {
		cfg[spec.Namespace+":"+k] = v
	}
	return runAfter(t, dir, stack, cfg, dryRun, deployedBy(t, stack))
}

// editServer changes one server of the raw servers config.
func editServer(name string, edit func(s map[string]any)) func(cfg map[string]string) {
	return func(cfg map[string]string) {
		var servers []map[string]any
		if err := json.Unmarshal([]byte(cfg[spec.KeyServers]), &servers); err != nil {
			panic(err)
		}
		for _, s := range servers {
			if s["name"] == name {
				edit(s)
			}
		}
		b, _ := json.Marshal(servers)
		cfg[spec.KeyServers] = string(b)
	}
}

// Each change of a deployed server's volume, as production's stack sees it:
// one Kubernetes cannot make in place fails the run before anything is
// registered, in preview and up alike, naming the server and the field and
// giving the migration path; one it can make goes ahead. (Before, a capacity
// change was planned as an in-place update that failed halfway.)
func TestProductionRefusesReplacingChangesWithTheMigrationPath(t *testing.T) {
	cfg := loadStack(t, "ocp")
	withKubeconfig(t, cfg.KubeContext)     // up checks the context first
	srv := cfg.Servers[len(cfg.Servers)-1] // any server: the last one
	cases := []struct {
		field   string
		edit    func(cfg map[string]string)
		refused bool
	}{
		{"exportPath", editServer(srv.Name, func(s map[string]any) { s["exportPath"] = "/exports/elsewhere" }), true},
		{"capacity", editServer(srv.Name, func(s map[string]any) { s["capacity"] = "9Ti" }), true},
		{"accessModes", editServer(srv.Name, func(s map[string]any) { s["accessModes"] = []string{"ReadWriteOnce"} }), true},
		{"readOnly", editServer(srv.Name, func(s map[string]any) { s["readOnly"] = !srv.ReadOnly; s["accessModes"] = []string{"ReadOnlyMany"} }), true},
		{"volumeName", editServer(srv.Name, func(s map[string]any) { s["volumeName"] = srv.VolumeName + "-2" }), true},
		{"claim", editServer(srv.Name, func(s map[string]any) {
			s["claim"] = map[string]string{"namespace": srv.Claim.Namespace, "name": "other"}
		}), true},
		{"storageClassName", func(c map[string]string) { c[spec.KeyStorageClassName] = "other-class" }, true},
		{"nfs.server", func(c map[string]string) {
			if _, ok := c[spec.KeyExternal]; !ok {
				return // the shared config
			}
			var x map[string]any
			require.NoError(t, json.Unmarshal([]byte(c[spec.KeyExternal]), &x))
			x["addresses"].(map[string]any)[srv.Name] = "192.0.2.200"
			b, _ := json.Marshal(x)
			c[spec.KeyExternal] = string(b)
		}, true},
		{"mountOptions", func(c map[string]string) { c[spec.KeyMountOptions] = `["nfsvers=3","hard"]` }, false},
		{"labels", editServer(srv.Name, func(s map[string]any) { s["labels"] = map[string]string{"tier": "gold"} }), false},
	}
	for _, c := range cases {
		for _, dryRun := range []bool{true, false} {
			r, err := runChanged(t, "ocp", c.edit, dryRun)
			if !c.refused {
				assert.NoError(t, err, c.field)
				continue
			}
			require.Error(t, err, "%s (preview: %v) must be refused", c.field, dryRun)
			assert.Contains(t, err.Error(), "refusing to replace production volumes", c.field)
			assert.Contains(t, err.Error(), srv.Name+": "+c.field+" ", c.field)
			assert.Contains(t, err.Error(), components.MigrationSteps, c.field)
			assert.Empty(t, r.ofType(typePV), "%s: nothing is registered before the refusal", c.field)
		}
	}
}

// The dev stack makes the same changes: replaced cleanly, never refused.
func TestDevReplacesWhatKubernetesCannotChangeInPlace(t *testing.T) {
	srv := loadStack(t, "dev").Servers[0]
	r, err := runChanged(t, "dev", editServer(srv.Name, func(s map[string]any) { s["exportPath"] = "/exports/elsewhere" }), true)
	require.NoError(t, err)
	pv := r.ofType(typePV)[srv.Name]
	assert.True(t, pv.DeleteBeforeReplace)
	assert.Equal(t, "/exports/elsewhere", path(pv.Inputs, "spec", "nfs", "path").StringValue())
}

// What a change does to a deployed volume, field by field.
func TestChangesOfAVolume(t *testing.T) {
	cfg := loadStack(t, "ocp")
	srv := cfg.Servers[0]
	base := components.Deployed{Volume: components.VolumeFor(cfg.Shared, srv), NFSServer: "192.0.2.1"}
	prev := map[string]components.Deployed{srv.Name: base}
	changed := func(edit func(d *components.Deployed)) components.Deployed {
		d := base
		d.Labels = map[string]string{"a": "b"}
		for k, v := range base.Labels {
			d.Labels[k] = v
		}
		delete(d.Labels, "a")
		d.MountOptions = append([]string(nil), base.MountOptions...)
		d.AccessModes = append([]string(nil), base.AccessModes...)
		edit(&d)
		return d
	}
	for _, c := range []struct {
		field   string
		edit    func(d *components.Deployed)
		inPlace bool
	}{
		{"exportPath", func(d *components.Deployed) { d.ExportPath += "-2" }, false},
		{"readOnly", func(d *components.Deployed) { d.ReadOnly = !d.ReadOnly }, false},
		{"capacity", func(d *components.Deployed) { d.Capacity = "1Pi" }, false},
		{"accessModes", func(d *components.Deployed) { d.AccessModes = []string{"ReadWriteOnce"} }, false},
		{"storageClassName", func(d *components.Deployed) { d.StorageClassName += "-2" }, false},
		{"volumeName", func(d *components.Deployed) { d.Name += "-2" }, false},
		{"claim", func(d *components.Deployed) { d.Claim.Name += "-2" }, false},
		{"nfs.server", func(d *components.Deployed) { d.NFSServer = "192.0.2.2" }, false},
		{"mountOptions", func(d *components.Deployed) { d.MountOptions = d.MountOptions[1:] }, true},
		{"labels", func(d *components.Deployed) { d.Labels["x"] = "y" }, true},
		{"reclaimPolicy", func(d *components.Deployed) { d.ReclaimPolicy = "Delete" }, true},
	} {
		got := components.ChangesOf(prev, map[string]components.Deployed{srv.Name: changed(c.edit)}, []string{srv.Name})
		require.Len(t, got, 1, c.field)
		require.Len(t, got[0].Fields, 1, c.field)
		assert.Equal(t, c.field, got[0].Fields[0].Field)
		assert.Equal(t, c.inPlace, got[0].Fields[0].InPlace, c.field)
		assert.Equal(t, !c.inPlace, got[0].Replaces(), c.field)
	}
	assert.Empty(t, components.ChangesOf(prev, map[string]components.Deployed{srv.Name: changed(func(*components.Deployed) {})}, []string{srv.Name}))
	fresh := components.ChangesOf(nil, prev, []string{srv.Name})
	require.Len(t, fresh, 1)
	assert.True(t, fresh[0].New)
}
