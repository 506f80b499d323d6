package parity

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// previewJSON is a minimal `pulumi preview --json` with one PV and one PVC.
func previewJSON(server, capacity string) string {
	return `{"steps":[
  {"op":"create","urn":"urn:pulumi:dev::nas-topology::nas:index:NasServer$kubernetes:core/v1:PersistentVolume::nas-input-1",
   "newState":{"type":"kubernetes:core/v1:PersistentVolume","inputs":{
     "metadata":{"name":"nas-input-1","labels":{"nas-topology/role":"input"}},
     "spec":{"capacity":{"storage":"` + capacity + `"},"mountOptions":["nfsvers=3","hard"],
             "nfs":{"server":"` + server + `","path":"/exports/input-1"}}}}},
  {"op":"create","urn":"urn:pulumi:dev::nas-topology::nas:index:NasServer$kubernetes:core/v1:PersistentVolumeClaim::nas-input-1",
   "newState":{"type":"kubernetes:core/v1:PersistentVolumeClaim","inputs":{
     "metadata":{"name":"nas-input-1","namespace":"nas-apps"},
     "spec":{"volumeName":"nas-input-1"}}}},
  {"op":"create","urn":"urn:pulumi:dev::nas-topology::kubernetes:core/v1:Service::nas-input-1",
   "newState":{"type":"kubernetes:core/v1:Service","inputs":{"metadata":{"name":"nas-input-1"}}}}
]}`
}

func parse(t *testing.T, s string) Objects {
	t.Helper()
	o, err := FromPreview(strings.NewReader(s))
	require.NoError(t, err)
	return o
}

func TestOnlyTheNFSServerMayDiffer(t *testing.T) {
	dev := parse(t, previewJSON("10.96.150.1", "500Gi"))
	ocp := parse(t, previewJSON("192.0.2.11", "500Gi"))
	require.Len(t, dev, 2, "one PV and one PVC; the Service is not compared")
	require.Contains(t, dev, "PersistentVolumeClaim/nas-apps/nas-input-1", "PVCs are keyed by namespace/name")
	require.Empty(t, Compare(dev, ocp))
}

func TestDifferencesAreReadable(t *testing.T) {
	dev := parse(t, previewJSON("10.96.150.1", "500Gi"))
	ocp := parse(t, previewJSON("192.0.2.11", "400Gi"))
	diffs := Compare(dev, ocp)
	require.Len(t, diffs, 1)
	require.Equal(t, "PersistentVolume/nas-input-1", diffs[0].Object)
	require.Equal(t, "spec.capacity.storage", diffs[0].Field)
	require.Equal(t, "PersistentVolume/nas-input-1 spec.capacity.storage\n    dev: \"500Gi\"\n    ocp: \"400Gi\"", diffs[0].String())
}

func TestAMissingObjectIsADifference(t *testing.T) {
	dev := parse(t, previewJSON("10.96.150.1", "500Gi"))
	ocp := parse(t, `{"steps":[]}`)
	diffs := Compare(dev, ocp)
	require.Len(t, diffs, 2)
	require.Equal(t, "(object)", diffs[0].Field)
	require.Nil(t, diffs[0].OCP)
}

func TestNotAPreview(t *testing.T) {
	_, err := FromPreview(strings.NewReader("error: no stack named dev"))
	require.ErrorContains(t, err, "not a `pulumi preview --json` output")
}

func TestDriftListsOnlyVolumeFieldsThatUpWouldChange(t *testing.T) {
	preview := `{"steps":[
  {"op":"update",
   "oldState":{"type":"kubernetes:core/v1:PersistentVolume","outputs":{
     "metadata":{"name":"nas-input-1","uid":"u1"},"spec":{"mountOptions":["nfsvers=3","timeo=300"],"claimRef":{"uid":"c1"}},"status":{"phase":"Bound"}}},
   "newState":{"type":"kubernetes:core/v1:PersistentVolume","inputs":{
     "metadata":{"name":"nas-input-1"},"spec":{"mountOptions":["nfsvers=3","timeo=600"]}}},
   "detailedDiff":{"spec.mountOptions[1]":{"kind":"update","inputDiff":false}}},
  {"op":"same","newState":{"type":"kubernetes:core/v1:PersistentVolumeClaim","inputs":{"metadata":{"name":"nas-input-1","namespace":"nas-apps"}}}},
  {"op":"update","newState":{"type":"kubernetes:apps/v1:Deployment","inputs":{}},"detailedDiff":{"spec.replicas":{}}}
]}`
	drifts, err := DriftFromPreview(strings.NewReader(preview))
	require.NoError(t, err)
	require.Len(t, drifts, 1)
	require.Equal(t, Drift{Object: "PersistentVolume/nas-input-1", Op: "update", Field: "spec.mountOptions[1]", Live: "timeo=300", Defined: "timeo=600"}, drifts[0])
	require.Contains(t, drifts[0].String(), `production: "timeo=300"`)
}

func TestLookupPropertyPaths(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "nasd"}}, "a": []any{"x", map[string]any{"b": 2.0}}}
	require.Equal(t, "nasd", lookup(obj, `metadata.labels["app.kubernetes.io/name"]`))
	require.Equal(t, 2.0, lookup(obj, "a[1].b"))
	require.Nil(t, lookup(obj, "a[5]"))
	require.Nil(t, lookup(obj, "missing.deeper"))
}
