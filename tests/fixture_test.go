package tests

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nas-topology/nas-topology/tests/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden fixtures from the program")

// productionFixture holds production's PVs and PVCs as plain manifests, the
// way they exist before Pulumi manages them; the ocp adoption e2e test creates
// them with kubectl. This test keeps the file equal to what the ocp stack
// renders, so the adoption test always starts from "production matches".
// Regenerate: go test ./tests -run TestProductionFixture -update
const productionFixture = "e2e/testdata/production-volumes.yaml"

func TestProductionFixtureMatchesTheOCPStack(t *testing.T) {
	if os.Getenv(testenv.EnvProjectDir) != "" {
		// The fixture belongs to the committed config; after a change of the
		// servers it is regenerated (README, Adding a server).
		t.Skip("the config is not the committed one ($" + testenv.EnvProjectDir + ")")
	}
	ocp := mustRun(t, "ocp", nil)
	var want bytes.Buffer
	want.WriteString("# Production's NAS PersistentVolumes and PersistentVolumeClaims, as kubectl creates them.\n")
	want.WriteString("# Generated from the ocp stack: go test ./tests -run TestProductionFixture -update\n")
	enc := yaml.NewEncoder(&want)
	enc.SetIndent(2)
	for _, typ := range []string{typePV, typePVC} {
		objs := ocp.ofType(typ)
		for _, name := range committed(t).names() {
			obj := objs[name].Inputs.Mappable()
			// Production's objects predate Pulumi: no pulumi.com/ annotations.
			delete(obj["metadata"].(map[string]any), "annotations")
			require.NoError(t, enc.Encode(obj))
		}
	}
	require.NoError(t, enc.Close())
	if *update {
		require.NoError(t, os.WriteFile(productionFixture, want.Bytes(), 0o644))
	}
	got, err := os.ReadFile(productionFixture)
	require.NoError(t, err)
	require.Equal(t, want.String(), string(got), "the fixture is stale: go test ./tests -run TestProductionFixture -update")
}
