package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components"
)

// manager records what policies report, as the engine's PolicyManager would.
type manager struct{ reports []finding }

func (m *manager) ReportViolation(message, urn string) {
	m.reports = append(m.reports, finding{urn: urn, msg: message})
}

// validate runs every policy of the pack, as the engine does for a stack:
// resource policies per resource, then stack policies. It returns the reports
// by policy name.
func validate(t *testing.T, p *pack, rs []policyx.AnalyzerResource, config map[string]any) (map[string][]finding, error) {
	t.Helper()
	pp, err := p.PolicyPack()
	require.NoError(t, err)
	out := map[string][]finding{}
	for _, pol := range pp.Policies() {
		m := &manager{}
		switch pol := pol.(type) {
		case policyx.ResourceValidationPolicy:
			for _, r := range rs {
				if err := pol.Validate(context.Background(), policyx.ResourceValidationArgs{Manager: m, Resource: r, Config: config}); err != nil {
					return nil, err
				}
			}
		case policyx.StackValidationPolicy:
			require.NoError(t, pol.Validate(context.Background(), policyx.StackValidationArgs{Manager: m, Resources: rs}))
		}
		if len(m.reports) > 0 {
			out[pol.Name()] = m.reports
		}
	}
	return out, nil
}

// The real program's resources pass every policy, on both stacks, and nothing
// is left unchecked: mocks know every value, as `pulumi up` does.
func TestTheProgramPassesEveryPolicy(t *testing.T) {
	for _, stack := range []string{"dev", "ocp"} {
		t.Run(stack, func(t *testing.T) {
			run := runProgram(t, stack)
			reports, err := validate(t, testPack(t, run), run.resources, nil)
			require.NoError(t, err)
			assert.Empty(t, reports)
		})
	}
}

func TestPolicyPack(t *testing.T) {
	pp, err := newPack("", stackConfig{}).PolicyPack()
	require.NoError(t, err)
	assert.Equal(t, Name, pp.Name())
	assert.Equal(t, Version, pp.Version().String())
	names := map[string]policyx.EnforcementLevel{}
	for _, pol := range pp.Policies() {
		_, dup := names[pol.Name()]
		require.False(t, dup, "duplicate policy %s", pol.Name())
		names[pol.Name()] = pol.EnforcementLevel()
		assert.NotEmpty(t, pol.Description())
	}
	assert.Len(t, names, len(resourceRules)+len(stackRules)+2)
	for name, level := range names {
		want := policyx.EnforcementLevelMandatory
		if strings.HasSuffix(name, "unknown-at-preview") {
			want = policyx.EnforcementLevelAdvisory
		}
		assert.Equal(t, want, level, name)
	}

	// The PulumiPolicy.yaml version is the pack's.
	b, err := os.ReadFile("PulumiPolicy.yaml")
	require.NoError(t, err)
	assert.Contains(t, string(b), "runtime: go")
	assert.Contains(t, string(b), "version: "+Version)
}

// A violation reaches the engine through the policy, with the rule's message.
func TestPolicyReportsViolations(t *testing.T) {
	run := runProgram(t, "ocp")
	rs := run.replaced(t, typePV, "nas-output-1", set("spec.persistentVolumeReclaimPolicy", "Delete"))
	reports, err := validate(t, testPack(t, run), rs, nil)
	require.NoError(t, err)
	require.Len(t, reports["nas-pv-matches-shared-spec"], 1)
	assert.Equal(t, `PersistentVolume "nas-output-1": spec.persistentVolumeReclaimPolicy is "Delete", must be "Retain": a NAS volume must never delete or recycle its data`,
		reports["nas-pv-matches-shared-spec"][0].msg)
	assert.Len(t, reports, 1, "only that policy: %v", reports)
}

// At preview a PV's nfs.server (the Service's clusterIP output) and a node port
// may be unknown: the mandatory policies pass and the advisory ones say what
// they did not check.
func TestUnknownValuesAreReportedAsAdvisory(t *testing.T) {
	run := runProgram(t, "dev")
	rs := run.replaced(t, typePV, "nas-input-1", set("spec.nfs.server", unknown))
	for i, r := range rs {
		if r.Type == typeService && r.Name == "nas-input-2" {
			rs[i].Properties = set("spec.clusterIP", unknown)(r.Properties)
		}
	}
	reports, err := validate(t, testPack(t, run), rs, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{unknownStackPolicy, unknownResourcePolicy}, sortedKeys(reports))
	assert.Equal(t, `nas-pv-nfs-server: not checked, unknown: PersistentVolume "nas-input-1": spec.nfs.server`, reports[unknownResourcePolicy][0].msg)
	assert.Equal(t, `nas-service-cluster-ips-unique: not checked, unknown: Service "nas-system/nas-input-2": spec.clusterIP`, reports[unknownStackPolicy][0].msg)
}

// A pack that cannot read the shared config fails the run with a message that
// says where it looked and how to point it elsewhere.
func TestUnreadableSharedConfigFails(t *testing.T) {
	run := runProgram(t, "ocp")
	missing := filepath.Join(t.TempDir(), "nowhere")
	_, err := validate(t, testPack(t, run), run.resources, map[string]any{"projectDir": missing})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "project directory "+missing+" (from policy config projectDir)")
	assert.Contains(t, err.Error(), "cannot read the shared config of the project")
	assert.Contains(t, err.Error(), "set the policy config projectDir or $NAS_PROJECT_DIR")

	// Resources no rule reads Pulumi.yaml for never need it.
	other := service("other", "")
	_, err = validate(t, testPack(t, run), []policyx.AnalyzerResource{other}, map[string]any{"projectDir": missing})
	require.NoError(t, err)
}

func TestInvalidSharedConfigFails(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(projectRoot(t), "Pulumi.yaml"))
	require.NoError(t, err)
	broken := strings.Replace(string(b), "fsid: 2", "fsid: 1", 1)
	require.NotEqual(t, string(b), broken)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), []byte(broken), 0o644))
	_, err = loadExpected(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the shared config in "+filepath.Join(dir, "Pulumi.yaml")+" is invalid (1 problem(s))")
	assert.Regexp(t, `nas-topology:servers\[[a-z0-9-]+\]\.fsid: duplicate fsid 1 \(also servers\[[a-z0-9-]+\]\)`, err.Error(), "servers are named by name")
}

// The pack's expectation is the program's own rendering of the same file.
func TestExpectedIsVolumeForOfPulumiYAML(t *testing.T) {
	exp, err := loadExpected(projectRoot(t))
	require.NoError(t, err)
	var names []string
	for _, s := range exp.servers {
		names = append(names, s.Name)
	}
	require.Equal(t, committedServers(t), names, "every server of Pulumi.yaml, in order")
	for _, s := range exp.servers {
		assert.Equal(t, components.VolumeFor(exp.shared, s.Server), s.Volume)
		assert.Same(t, s, exp.byVolume[s.Volume.Name])
		assert.Same(t, s, exp.byClaim[s.Volume.Claim])
		assert.Same(t, s, exp.byServer[s.Name])
	}
}

func TestProjectDir(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	cases := []struct {
		name    string
		config  map[string]any
		env     string
		packDir string
		want    string
		how     string
	}{
		{"policy config first", map[string]any{"projectDir": "/p"}, "/e", "/x/policy", "/p", "policy config projectDir"},
		{"then the environment", nil, "/e", "/x/policy", "/e", "$NAS_PROJECT_DIR"},
		{"then the pack's parent", nil, "", "/x/policy", "/x", "the parent of the policy pack directory /x/policy"},
		{"relative pack directory", nil, "", "policy", wd, "the parent of the policy pack directory " + filepath.Join(wd, "policy")},
		{"else the working directory", nil, "", "", wd, "the working directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvProjectDir, tc.env)
			dir, how := projectDir(tc.config, tc.packDir)
			assert.Equal(t, tc.want, dir)
			assert.Equal(t, tc.how, how)
		})
	}
}

func TestReadStackConfig(t *testing.T) {
	dev := runProgram(t, "dev").stackConfig()
	assert.True(t, dev.visible)
	assert.ElementsMatch(t, committedServers(t), keys(dev.addresses))
	assert.Equal(t, address{addr: "10.96.150.4", key: "nas-topology:cluster.servers.nas-backup-1.clusterIP"}, dev.addresses["nas-backup-1"])

	ocp := runProgram(t, "ocp").stackConfig()
	assert.True(t, ocp.visible)
	assert.Equal(t, address{addr: "192.0.2.14", key: "nas-topology:external.addresses.nas-backup-1"}, ocp.addresses["nas-backup-1"])
	assert.ElementsMatch(t, committedServers(t), keys(ocp.addresses))

	none := readStackConfig(func(string) (string, bool) { return "", false })
	assert.False(t, none.visible)
	assert.Empty(t, none.addresses)

	garbled := readStackConfig(func(k string) (string, bool) {
		if strings.HasSuffix(k, ":target") {
			return "external", true
		}
		return "{not json", true
	})
	assert.True(t, garbled.visible)
	assert.Empty(t, garbled.addresses)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
