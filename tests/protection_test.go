package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components/spec"
)

// setExternal edits the ocp stack's `external` object (JSON) as a string.
func setExternal(f func(ext string) string) func(cfg map[string]string) {
	return func(cfg map[string]string) { cfg[spec.KeyExternal] = f(cfg[spec.KeyExternal]) }
}

func TestProductionVolumesAreProtectedByDefault(t *testing.T) {
	ocp := mustRun(t, "ocp", nil)
	for _, typ := range []string{typePV, typePVC} {
		for name, r := range ocp.ofType(typ) {
			assert.True(t, r.Protect, "%s %s: protect", typ, name)
			assert.True(t, r.RetainOnDelete, "%s %s: retainOnDelete", typ, name)
			assert.False(t, r.DeleteBeforeReplace, "%s %s: deleteBeforeReplace is never used", typ, name)
		}
	}
	// dev volumes are disposable: a destroy removes them.
	dev := mustRun(t, "dev", nil)
	for name, r := range dev.ofType(typePV) {
		assert.False(t, r.Protect || r.RetainOnDelete, "dev PV %s", name)
	}
}

// What Kubernetes cannot change in place (a PV's nfs source; a static PVC's
// size, modes, class, volume) is planned as a replacement on both stacks: in
// dev the PVC and the PV are deleted first and created anew (fixed names), in
// production the protection refuses it at preview (README: the migration).
func TestImmutableVolumeChangesReplace(t *testing.T) {
	for _, stack := range []string{"dev", "ocp"} {
		r := mustRun(t, stack, nil)
		for name, pv := range r.ofType(typePV) {
			assert.ElementsMatch(t, []string{"spec.nfs", "spec.capacity", "spec.accessModes", "spec.storageClassName", "spec.volumeMode", "spec.claimRef.namespace", "spec.claimRef.name"},
				pv.ReplaceOnChanges, "%s PV %s: what the PVC mirrors too, or a new claim would meet the old claim's uid", stack, name)
			pvc := r.ofType(typePVC)[name]
			assert.ElementsMatch(t, []string{"spec.accessModes", "spec.resources", "spec.storageClassName", "spec.volumeName", "spec.volumeMode"},
				pvc.ReplaceOnChanges, "%s PVC %s", stack, name)
			assert.Equal(t, []string{pvURN(stack, name)}, pvc.ReplaceWith, "%s PVC %s is replaced with its PV", stack, name)
			assert.Equal(t, stack == "dev", pv.DeleteBeforeReplace, "%s PV %s: delete before replace in dev only", stack, name)
			assert.Equal(t, stack == "dev", pvc.DeleteBeforeReplace, "%s PVC %s", stack, name)
			assert.Equal(t, stack == "ocp", pv.Protect && pvc.Protect, "%s: production refuses replacements", name)
		}
	}
}

func pvURN(stack, name string) string {
	return "urn:pulumi:" + stack + "::nas-topology::" + typeNasServer + "$" + typePV + "::" + name
}

func TestProtectionCanBeTurnedOff(t *testing.T) {
	ocp := mustRun(t, "ocp", setExternal(func(ext string) string {
		return strings.Replace(ext, "{", `{"protect":false,`, 1)
	}))
	for name, r := range ocp.ofType(typePV) {
		assert.False(t, r.Protect || r.RetainOnDelete, "PV %s", name)
	}
}

func TestAdoptImportsByKubernetesID(t *testing.T) {
	plain := mustRun(t, "ocp", nil)
	for name, r := range plain.ofType(typePV) {
		require.Empty(t, r.ImportID, "PV %s: no import unless adopt is set", name)
	}
	ocp := mustRun(t, "ocp", setExternal(func(ext string) string {
		return strings.Replace(ext, "{", `{"adopt":true,`, 1)
	}))
	for _, s := range committed(t).Servers {
		assert.Equal(t, s.VolumeName, ocp.ofType(typePV)[s.Name].ImportID, "PV is imported by name")
		assert.Equal(t, s.Claim.Namespace+"/"+s.Claim.Name, ocp.ofType(typePVC)[s.Name].ImportID, "PVC is imported by namespace/name")
	}
}
