package tests

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components"
	"github.com/nas-topology/nas-topology/components/spec"
)

// A third placement is one more type: nothing else switches on the target.
type fixedAddress struct{ addr string }

func (fixedAddress) Prepare(*pulumi.Context) error { return nil }
func (fixedAddress) Namespaces() []string          { return []string{"elsewhere"} }
func (p fixedAddress) Serve(_ *pulumi.Context, _ spec.Server, _ components.Volume, _ []pulumi.ResourceOption) (components.Served, error) {
	none := pulumi.ToOutput((*int)(nil)).(pulumi.IntPtrOutput)
	return components.Served{NFSServer: pulumi.String(p.addr).ToStringOutput(), NodePort: none, PortmapperNodePort: none}, nil
}
func (fixedAddress) VolumeOptions(components.Volume) (pv, pvc []pulumi.ResourceOption) {
	return []pulumi.ResourceOption{pulumi.Protect(true)}, nil
}
func (p fixedAddress) Address(spec.Server) string                            { return p.addr }
func (fixedAddress) Review(*pulumi.Context, []components.VolumeChange) error { return nil }

func TestAPlacementIsOneType(t *testing.T) {
	raw, err := spec.MergedConfig(projectDir(t), "dev")
	require.NoError(t, err)
	cfg, err := spec.Load(func(k string) (string, bool) { v, ok := raw[k]; return v, ok })
	require.NoError(t, err)
	rec := &recorder{}
	err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := components.DeployTo(ctx, cfg, fixedAddress{"198.18.0.1"})
		return err
	}, pulumi.WithMocks(spec.Namespace, "dev", rec))
	require.NoError(t, err)
	names := committed(t).names()
	assert.ElementsMatch(t, names, keys(rec.ofType(typePV)))
	for name, pv := range rec.ofType(typePV) {
		assert.Equal(t, "198.18.0.1", path(pv.Inputs, "spec", "nfs", "server").StringValue(), name)
		assert.True(t, pv.Protect, name)
	}
	assert.Empty(t, rec.ofType(typeDeployment), "the cluster placement's workloads come with it, not with the target")
	assert.Contains(t, keys(rec.ofType(typeNamespace)), "elsewhere")
	assert.NotContains(t, keys(rec.ofType(typeNamespace)), cfg.NasNamespace)
}
