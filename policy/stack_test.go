package main

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"
)

// stackCase is one named case of a stack rule: an edit of one resource of the
// real program's stack, and the violation (or unknown) it must produce.
type stackCase struct {
	name        string
	stack       string // dev (default) or ocp
	typ, server string // the resource to edit ("" = none)
	edit        func(property.Map) property.Map
	extra       []policyx.AnalyzerResource // added to the stack
	want        string
	wantUnknown string
}

func runStackCases(t *testing.T, check func([]policyx.AnalyzerResource, *checker), cases []stackCase) {
	runs := map[string]programRun{"dev": runProgram(t, "dev"), "ocp": runProgram(t, "ocp")}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runs[or(tc.stack, "dev")]
			rs := run.resources
			if tc.typ != "" {
				rs = run.replaced(t, tc.typ, tc.server, tc.edit)
			}
			rs = append(rs, tc.extra...)
			c := &checker{}
			check(rs, c)
			requireFinding(t, c.violations, tc.want)
			requireFinding(t, c.unknowns, tc.wantUnknown)
		})
	}
}

func TestNodePorts(t *testing.T) {
	runStackCases(t, checkNodePorts, []stackCase{
		{name: "dev as rendered"},
		{name: "ocp has no Services", stack: "ocp"},
		{name: "duplicate NFS node port", typ: typeService, server: "nas-input-2", edit: set("spec.ports.0.nodePort", 32150),
			want: `Service "nas-system/nas-input-2": spec.ports[0].nodePort 32150 is also the node port of Service "nas-system/nas-input-1" spec.ports[0].nodePort`},
		{name: "portmapper port clashes with an NFS port", typ: typeService, server: "nas-output-3", edit: set("spec.ports.1.nodePort", 32151),
			want: "32151 is also the node port of"},
		{name: "below the range", typ: typeService, server: "nas-input-2", edit: set("spec.ports.0.nodePort", 29999), want: "29999 is outside the NodePort range 30000-32767"},
		{name: "above the range", typ: typeService, server: "nas-input-2", edit: set("spec.ports.1.nodePort", 32768), want: "32768 is outside"},
		{name: "left to the cluster", typ: typeService, server: "nas-input-2", edit: set("spec.ports.0.nodePort", nil)},
		{name: "unknown at preview", typ: typeService, server: "nas-input-2", edit: set("spec.ports.0.nodePort", unknown), wantUnknown: "spec.ports[0].nodePort"},
		{name: "unknown ports at preview", typ: typeService, server: "nas-input-2", edit: set("spec.ports", unknown), wantUnknown: `Service "nas-system/nas-input-2": spec.ports`},
	})
}

func TestClusterIPs(t *testing.T) {
	runStackCases(t, checkClusterIPs, []stackCase{
		{name: "dev as rendered"},
		{name: "duplicate clusterIP", typ: typeService, server: "nas-output-1", edit: set("spec.clusterIP", "10.96.150.4"),
			want: `Service "nas-system/nas-output-1": clusterIP 10.96.150.4 is also the clusterIP of Service "nas-system/nas-backup-1"`},
		{name: "duplicate in clusterIPs", typ: typeService, server: "nas-output-1", edit: set("spec.clusterIPs", []string{"10.96.150.5", "10.96.150.1"}),
			want: "clusterIP 10.96.150.1 is also the clusterIP of"},
		{name: "clusterIPs repeating its own clusterIP", typ: typeService, server: "nas-output-1", edit: set("spec.clusterIPs", []string{"10.96.150.5"})},
		{name: "headless Services", typ: typeService, server: "nas-output-1", edit: set("spec.clusterIP", "None"),
			extra: []policyx.AnalyzerResource{service("other", "None")}},
		{name: "allocated by the cluster", typ: typeService, server: "nas-output-1", edit: set("spec.clusterIP", nil),
			extra: []policyx.AnalyzerResource{service("other", "")}},
		{name: "unknown at preview", typ: typeService, server: "nas-output-1", edit: set("spec.clusterIP", unknown), wantUnknown: "spec.clusterIP"},
	})
}

func TestFSIDs(t *testing.T) {
	dev := runProgram(t, "dev")
	fsid := argIndex(t, dev, "nas-input-2", "--fsid=")
	runStackCases(t, checkFSIDs, []stackCase{
		{name: "dev as rendered"},
		{name: "ocp has no workloads", stack: "ocp"},
		{name: "duplicate fsid", typ: typeDeployment, server: "nas-input-2", edit: set(fsid, "--fsid=1"),
			want: "fsid 1 (spec.template.spec.containers[0].args) is also the fsid of Deployment"},
		{name: "not a number", typ: typeDeployment, server: "nas-input-2", edit: set(fsid, "--fsid=two"), want: "--fsid=two in spec.template.spec.containers[0].args is not a positive integer"},
		{name: "zero", typ: typeDeployment, server: "nas-input-2", edit: set(fsid, "--fsid=0"), want: "is not a positive integer"},
		{name: "in the command", typ: typeDeployment, server: "nas-input-2", edit: set(nasdCtr+"command", []string{"/nasd", "--fsid=3"}),
			want: `is also the fsid of Deployment "nas-system/nas-input-2"`}, // nas-input-3's fsid, seen in nas-input-2's command first
		{name: "unknown args at preview", typ: typeDeployment, server: "nas-input-2", edit: set(nasdCtr+"args", unknown), wantUnknown: "containers[0].args"},
	})
}

func TestClaimClasses(t *testing.T) {
	runStackCases(t, checkClaimClasses, []stackCase{
		{name: "dev as rendered"},
		{name: "ocp as rendered", stack: "ocp"},
		{name: "claim of another class", typ: typePVC, server: "nas-input-1", edit: set("spec.storageClassName", "standard"),
			want: `PersistentVolumeClaim "nas-apps/nas-input-1": spec.storageClassName is "standard" but its PersistentVolume "nas-input-1" has "nas-static"`},
		{name: "volume of another class", stack: "ocp", typ: typePV, server: "nas-input-1", edit: set("spec.storageClassName", "fast"),
			want: `has "fast": the claim would never bind`},
		{name: "volume not in the stack", typ: typePVC, server: "nas-input-1", edit: set("spec.volumeName", "elsewhere"),
			want: `binds the PersistentVolume "elsewhere", which this stack does not define`},
		{name: "no volumeName: the resource rule's business", typ: typePVC, server: "nas-input-1", edit: set("spec.volumeName", nil)},
		{name: "unknown class at preview", typ: typePVC, server: "nas-input-1", edit: set("spec.storageClassName", unknown), wantUnknown: "spec.storageClassName"},
	})
}

// service is a minimal Service with a clusterIP ("" = none).
func service(name, clusterIP string) policyx.AnalyzerResource {
	spec := map[string]any{"type": "ClusterIP"}
	if clusterIP != "" {
		spec["clusterIP"] = clusterIP
	}
	return policyx.AnalyzerResource{
		Type: typeService, Name: name, URN: "urn:pulumi:dev::nas-topology::" + typeService + "::" + name,
		Properties: val(map[string]any{"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": spec}).AsMap(),
	}
}
