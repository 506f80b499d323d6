package main

import (
	"path/filepath"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"
	"github.com/stretchr/testify/require"
)

// testPack is the pack as the engine starts it for `--policy-pack policy` from
// the project root: pack directory policy/, the stack's config passed along.
func testPack(t *testing.T, run programRun) *pack {
	t.Helper()
	t.Setenv(EnvProjectDir, "")
	return newPack(filepath.Join(projectRoot(t), "policy"), run.stackConfig())
}

func ruleNamed(t *testing.T, name string) resourceRule {
	t.Helper()
	for _, r := range resourceRules {
		if r.name == name {
			return r
		}
	}
	t.Fatalf("no resource rule %s", name)
	return resourceRule{}
}

// runRule runs one resource rule on a resource of the stack after edit.
func runRule(t *testing.T, p *pack, rule string, res policyx.AnalyzerResource, edit func(property.Map) property.Map, config map[string]any) *checker {
	t.Helper()
	if edit != nil {
		res.Properties = edit(res.Properties)
	}
	c, err := p.run(ruleNamed(t, rule), res, config)
	require.NoError(t, err)
	return c
}

// ruleCase is one named case of a resource rule: an edit of a resource the
// real program registered, and the violation (or unknown) it must produce.
type ruleCase struct {
	name        string
	stack       string // dev (default) or ocp
	server      string // the resource's name (default nas-backup-1)
	edit        func(property.Map) property.Map
	config      map[string]any
	stackConfig *stackConfig // instead of the stack's own
	want        string       // a violation containing this; "" = none
	wantUnknown string       // an unknown containing this; "" = none
}

func runCases(t *testing.T, rule, typ string, cases []ruleCase) {
	runs := map[string]programRun{"dev": runProgram(t, "dev"), "ocp": runProgram(t, "ocp")}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runs[or(tc.stack, "dev")]
			p := testPack(t, run)
			if tc.stackConfig != nil {
				p.stack = *tc.stackConfig
			}
			res := run.find(t, typ, or(tc.server, "nas-backup-1"))
			c := runRule(t, p, rule, res, tc.edit, tc.config)
			requireFinding(t, c.violations, tc.want)
			requireFinding(t, c.unknowns, tc.wantUnknown)
		})
	}
}

func TestPVMatchesSharedSpec(t *testing.T) {
	runCases(t, "nas-pv-matches-shared-spec", typePV, []ruleCase{
		{name: "dev as rendered"},
		{name: "ocp as rendered", stack: "ocp"},
		{name: "read-write server as rendered", server: "nas-output-2"},
		{name: "reclaim policy Delete", edit: set("spec.persistentVolumeReclaimPolicy", "Delete"), want: `spec.persistentVolumeReclaimPolicy is "Delete", must be "Retain"`},
		{name: "other storage class", edit: set("spec.storageClassName", "standard"), want: `spec.storageClassName is "standard", Pulumi.yaml (server nas-backup-1) says "nas-static"`},
		{name: "other capacity", edit: set("spec.capacity.storage", "1Ti"), want: `spec.capacity.storage is "1Ti"`},
		{name: "other access modes", edit: set("spec.accessModes", []string{"ReadWriteMany"}), want: "spec.accessModes is"},
		{name: "mount option dropped", edit: set("spec.mountOptions", []string{"nfsvers=3", "proto=tcp"}), want: "spec.mountOptions is"},
		{name: "mount options reordered", edit: set("spec.mountOptions", []string{"proto=tcp", "nfsvers=3", "mountproto=tcp", "hard", "timeo=600", "retrans=2", "nolock"}), want: "spec.mountOptions is"},
		{name: "other export path", edit: set("spec.nfs.path", "/exports/other"), want: `spec.nfs.path is "/exports/other"`},
		{name: "backup volume not read-only", edit: set("spec.nfs.readOnly", false), want: "spec.nfs.readOnly is false"},
		{name: "read-write volume made read-only", server: "nas-output-2", edit: set("spec.nfs.readOnly", true), want: "readOnly false"},
		{name: "no claimRef", edit: set("spec.claimRef", nil), want: "spec.claimRef is not set"},
		{name: "claimRef to another claim", edit: set("spec.claimRef.name", "other"), want: `spec.claimRef.name is "other"`},
		{name: "label changed", edit: set("metadata.labels.[nas-topology/role]", "input"), want: `label nas-topology/role is "input"`},
		{name: "label dropped", edit: set("metadata.labels.[nas-topology/server]", nil), want: `label nas-topology/server is ""`},
		{name: "block volume mode", edit: set("spec.volumeMode", "Block"), want: "spec.volumeMode"},
		{name: "NFS volume outside the shared config", edit: set("metadata.name", "nas-extra"), want: `not a volume of the shared config (no servers[].volumeName "nas-extra"`},
		{name: "not an NFS volume: not ours", edit: edits(set("metadata.name", "scratch"), set("spec.nfs", nil), set("spec.persistentVolumeReclaimPolicy", "Delete"))},
		{name: "unknown name at preview", edit: set("metadata.name", unknown), wantUnknown: "metadata.name"},
		{name: "unknown mount options at preview", edit: set("spec.mountOptions", unknown), wantUnknown: "spec.mountOptions"},
		{name: "unknown nfs.server is not this rule's business", edit: set("spec.nfs.server", unknown)},
	})
}

func TestPVNFSServer(t *testing.T) {
	hidden := &stackConfig{} // the engine passed no stack config
	external := &stackConfig{visible: true, addresses: map[string]address{
		"nas-backup-1": {addr: "nas-b.example.com", key: "nas-topology:external.addresses.nas-backup-1"},
	}}
	runCases(t, "nas-pv-nfs-server", typePV, []ruleCase{
		{name: "dev as rendered (the Service clusterIP)"},
		{name: "ocp as rendered (the physical address)", stack: "ocp"},
		{name: "cluster DNS name", edit: set("spec.nfs.server", "nas-backup-1.nas-system.svc.cluster.local"), want: "is a cluster DNS name"},
		{name: "short cluster DNS name", edit: set("spec.nfs.server", "nas-backup-1.nas-system.svc"), want: "is a cluster DNS name"},
		{name: "another server's clusterIP", edit: set("spec.nfs.server", "10.96.150.1"),
			want: `spec.nfs.server is "10.96.150.1", the stack config nas-topology:cluster.servers.nas-backup-1.clusterIP says "10.96.150.4"`},
		{name: "another NAS in production", stack: "ocp", edit: set("spec.nfs.server", "192.0.2.99"),
			want: `the stack config nas-topology:external.addresses.nas-backup-1 says "192.0.2.14"`},
		{name: "not set", edit: set("spec.nfs.server", ""), want: "spec.nfs.server is not set"},
		{name: "unknown at preview: skipped", edit: set("spec.nfs.server", unknown), wantUnknown: "spec.nfs.server"},
		{name: "no stack config: any IP", stackConfig: hidden, edit: set("spec.nfs.server", "10.1.2.3")},
		{name: "no stack config: unlisted host", stackConfig: hidden, edit: set("spec.nfs.server", "nas-b.example.com"),
			want: `"nas-b.example.com" is neither an IP address nor a configured external host`},
		{name: "no stack config: host in allowedHosts", stackConfig: hidden, edit: set("spec.nfs.server", "NAS-B.example.com."),
			config: map[string]any{"allowedHosts": []any{"nas-b.example.com"}}},
		{name: "no stack config: bare service name", stackConfig: hidden, edit: set("spec.nfs.server", "nas-backup-1"), want: "neither an IP address"},
		{name: "host from the stack config", stack: "ocp", stackConfig: external, edit: set("spec.nfs.server", "nas-b.example.com")},
		{name: "host from the stack config, wrong server", stack: "ocp", server: "nas-input-1", stackConfig: external,
			edit: set("spec.nfs.server", "nas-b.example.com")}, // allowed host; the stack config has no address for nas-input-1 here
	})
}

func TestPVCMatchesSharedSpec(t *testing.T) {
	runCases(t, "nas-pvc-matches-shared-spec", typePVC, []ruleCase{
		{name: "dev as rendered"},
		{name: "ocp as rendered", stack: "ocp", server: "nas-input-3"},
		{name: "no volumeName", edit: set("spec.volumeName", nil), want: "spec.volumeName is not set"},
		{name: "another NAS volume", edit: set("spec.volumeName", "nas-input-1"), want: `spec.volumeName is "nas-input-1", Pulumi.yaml (server nas-backup-1) says "nas-backup-1"`},
		{name: "other storage class", edit: set("spec.storageClassName", "standard"), want: `spec.storageClassName is "standard"`},
		{name: "no storage class", edit: set("spec.storageClassName", nil), want: "spec.storageClassName is not set"},
		{name: "other size", edit: set("spec.resources.requests.storage", "1Gi"), want: "spec.resources.requests.storage"},
		{name: "other access modes", edit: set("spec.accessModes", []string{"ReadWriteOnce"}), want: "spec.accessModes"},
		{name: "foreign claim binding a NAS volume", edit: set("metadata.name", "thief"),
			want: `binds the NAS volume "nas-backup-1", which Pulumi.yaml reserves for the claim nas-apps/nas-backup-1`},
		{name: "foreign claim with its own volume", edit: edits(set("metadata.name", "scratch"), set("spec.volumeName", "scratch"), set("spec.storageClassName", "standard"))},
		{name: "foreign claim without volumeName", edit: edits(set("metadata.name", "scratch"), set("spec.volumeName", nil)), want: "spec.volumeName is not set"},
		{name: "unknown volumeName at preview", edit: set("spec.volumeName", unknown), wantUnknown: "spec.volumeName"},
	})
}
