package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/stretchr/testify/require"
)

// Paths inside the Deployment the program renders (components.DeploymentArgs).
const (
	podSpec = "spec.template.spec."
	nasdCtr = podSpec + "containers.0."
)

// argIndex is the position of a nasd flag in the rendered args, so a case can
// replace it.
func argIndex(t *testing.T, run programRun, server, flag string) string {
	t.Helper()
	d := run.find(t, typeDeployment, server)
	args, _ := root(d.Properties).get("spec", "template", "spec").get("containers").items()[0].get("args").strs()
	i := slices.IndexFunc(args, func(a string) bool { return len(a) > len(flag) && a[:len(flag)] == flag })
	require.GreaterOrEqual(t, i, 0, "no %s in %v", flag, args)
	return fmt.Sprintf("%sargs.%d", nasdCtr, i)
}

func TestPodSecurity(t *testing.T) {
	runCases(t, "nas-pod-security", typeDeployment, []ruleCase{
		{name: "backup as rendered"},
		{name: "output as rendered", server: "nas-output-1"},
		{name: "hostNetwork", edit: set(podSpec+"hostNetwork", true), want: "spec.template.spec.hostNetwork is true"},
		{name: "hostPID", edit: set(podSpec+"hostPID", true), want: "hostPID is true"},
		{name: "hostIPC", edit: set(podSpec+"hostIPC", true), want: "hostIPC is true"},
		{name: "privileged", edit: set(nasdCtr+"securityContext.privileged", true), want: "securityContext.privileged is true"},
		{name: "privilege escalation allowed", edit: set(nasdCtr+"securityContext.allowPrivilegeEscalation", true), want: "allowPrivilegeEscalation is true, must be false"},
		{name: "privilege escalation not set", edit: set(nasdCtr+"securityContext.allowPrivilegeEscalation", nil), want: "allowPrivilegeEscalation is not set, must be false"},
		{name: "capabilities not dropped", edit: set(nasdCtr+"securityContext.capabilities.drop", []string{"NET_RAW"}), want: `capabilities.drop is ["NET_RAW"], must contain "ALL"`},
		{name: "capability added", edit: set(nasdCtr+"securityContext.capabilities.add", []string{"NET_BIND_SERVICE"}), want: "capabilities.add is"},
		{name: "runAsNonRoot false", edit: set(nasdCtr+"securityContext.runAsNonRoot", false), want: "runAsNonRoot is false"},
		{name: "runAsNonRoot on the pod only", edit: set(nasdCtr+"securityContext.runAsNonRoot", nil)},
		{name: "runAsNonRoot nowhere", edit: edits(set(nasdCtr+"securityContext.runAsNonRoot", nil), set(podSpec+"securityContext.runAsNonRoot", nil)), want: "runAsNonRoot is not set"},
		{name: "container runs as root", edit: set(nasdCtr+"securityContext.runAsUser", 0), want: "securityContext.runAsUser is 0"},
		{name: "pod runs as root", edit: set(podSpec+"securityContext.runAsUser", 0), want: "spec.template.spec.securityContext.runAsUser is 0"},
		{name: "seccomp unconfined", edit: set(nasdCtr+"securityContext.seccompProfile.type", "Unconfined"), want: `seccompProfile.type is "Unconfined"`},
		{name: "seccomp from the pod", edit: set(nasdCtr+"securityContext.seccompProfile", nil)},
		{name: "seccomp nowhere", edit: edits(set(nasdCtr+"securityContext.seccompProfile", nil), set(podSpec+"securityContext.seccompProfile", nil)), want: "seccompProfile.type is not set"},
		{name: "writable root filesystem", edit: set(nasdCtr+"securityContext.readOnlyRootFilesystem", false), want: "readOnlyRootFilesystem is false, must be true"},
		{name: "no memory limit", edit: set(nasdCtr+"resources.limits.memory", nil), want: "resources.limits.memory is not set"},
		{name: "no requests", edit: set(nasdCtr+"resources.requests", nil), want: "resources.requests.cpu is not set"},
		{name: "host port", edit: set(nasdCtr+"ports.0.hostPort", 2049), want: "ports[0].hostPort is 2049"},
		{name: "unbounded emptyDir", edit: set(podSpec+"volumes.1.emptyDir.sizeLimit", nil), want: `emptyDir volume "data" has no sizeLimit`},
		{name: "init container checked too", edit: set(podSpec+"initContainers", nil)}, // none rendered: nothing to check
		{name: "not nasd: not ours", edit: edits(
			set("metadata.labels.[app.kubernetes.io/name]", "other"), set("spec.template.metadata.labels.[app.kubernetes.io/name]", "other"),
			set(nasdCtr+"securityContext.privileged", true))},
		{name: "unknown image at preview: nothing skipped", edit: set(nasdCtr+"image", unknown)},
		{name: "unknown security context at preview", edit: set(nasdCtr+"securityContext", unknown), wantUnknown: "securityContext.privileged"},
		{name: "unknown pod spec at preview", edit: set(podSpec[:len(podSpec)-1], unknown), wantUnknown: "spec.template.spec"},
	})
}

// A bare Pod running nasd is held to the same standard as the Deployment.
func TestPodSecurityOfAPod(t *testing.T) {
	run := runProgram(t, "dev")
	p := testPack(t, run)
	d := run.find(t, typeDeployment, "nas-input-1")
	tmpl := root(d.Properties).get("spec", "template")
	pod := d
	pod.Type = typePod
	pod.Properties = property.NewMap(map[string]property.Value{"metadata": tmpl.get("metadata").v, "spec": tmpl.get("spec").v})
	c := runRule(t, p, "nas-pod-security", pod, nil, nil)
	requireFinding(t, c.violations, "")
	c = runRule(t, p, "nas-pod-security", pod, set("spec.containers.0.securityContext.privileged", true), nil)
	requireFinding(t, c.violations, "spec.containers[0].securityContext.privileged is true")
}

func TestNasdMatchesSharedSpec(t *testing.T) {
	dev := runProgram(t, "dev")
	options := argIndex(t, dev, "nas-backup-1", "--options=")
	fsid := argIndex(t, dev, "nas-backup-1", "--fsid=")
	exportPath := argIndex(t, dev, "nas-backup-1", "--export-path=")
	role := argIndex(t, dev, "nas-backup-1", "--role=")
	runCases(t, "nas-nasd-matches-shared-spec", typeDeployment, []ruleCase{
		{name: "backup as rendered"},
		{name: "output as rendered", server: "nas-output-3"},
		{name: "other fsid", edit: set(fsid, "--fsid=9"), want: `nasd --fsid is "9"`},
		{name: "fsid flag without value", edit: set(fsid, "--fsid"), want: `nasd --fsid is ""`}, // the next argument is a flag
		{name: "other export path", edit: set(exportPath, "--export-path=/exports/x"), want: `nasd --export-path is "/exports/x"`},
		{name: "other role", edit: set(role, "--role=output"), want: `nasd --role is "output"`},
		{name: "backup exported read-write", edit: set(options, "--options=rw,sync"), want: `nasd --options is "rw,sync": the nas-backup-1 server is read-only`},
		{name: "backup export options missing", edit: set(options, "--verbose"), want: `nasd --options is ""`},
		{name: "backup writes to Windows", edit: set(nasdCtr+"volumeMounts.0.readOnly", false), want: `mounts the hostPath volume "windows" writable`},
		{name: "output exported read-write", server: "nas-output-3", edit: set(options, "--options=rw,async")},
		{name: "instance label of no server", edit: edits(
			set("metadata.labels.[app.kubernetes.io/instance]", "nas-x"), set("spec.template.metadata.labels.[app.kubernetes.io/instance]", "nas-x")),
			want: `app.kubernetes.io/instance label "nas-x" names no server`},
		{name: "unknown args at preview", edit: set(nasdCtr+"args", unknown), wantUnknown: "containers[0].args"},
	})
}

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want map[string]string
	}{
		{"equals form", []string{"serve", "--fsid=3", "--options=ro,sync"}, map[string]string{"fsid": "3", "options": "ro,sync"}},
		{"separate value", []string{"--fsid", "3", "serve"}, map[string]string{"fsid": "3"}},
		{"flag without value", []string{"--verbose", "--fsid=2"}, map[string]string{"verbose": "", "fsid": "2"}},
		{"single dash", []string{"-fsid=4"}, map[string]string{"fsid": "4"}},
		{"none", nil, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, parseFlags(tc.args))
		})
	}
}

func TestHandleKey(t *testing.T) {
	dev := runProgram(t, "dev")
	keyFlag := argIndex(t, dev, "nas-backup-1", "--handle-key-file=")
	const keyVol, keyMount = podSpec + "volumes.2.", nasdCtr + "volumeMounts.2."
	runCases(t, "nas-nasd-handle-key", typeDeployment, []ruleCase{
		{name: "backup as rendered"},
		{name: "output as rendered", server: "nas-output-2"},
		{name: "no key flag", edit: set(keyFlag, "--verbose"), want: "nasd has no --handle-key-file"},
		{name: "key in the emptyDir", edit: set(keyFlag, "--handle-key-file=/data/state/handle.key"), want: `volume "data" holding nasd's handle key (spec.template.spec.volumes[1]) is not a Secret volume`},
		{name: "key in the image", edit: set(keyFlag, "--handle-key-file=/handle.key"), want: "is on no volume mount"},
		{name: "mounted writable", edit: set(keyMount+"readOnly", false), want: `mounts the handle key volume "handle-key" writable`},
		{name: "mount without readOnly", edit: set(keyMount+"readOnly", nil), want: "writable"},
		{name: "world-readable", edit: set(keyVol+"secret.defaultMode", 0o444), want: "defaultMode is 0444"},
		{name: "writable file", edit: set(keyVol+"secret.defaultMode", 0o640), want: "defaultMode is 0640"},
		{name: "0400 is fine", edit: set(keyVol+"secret.defaultMode", 0o400)},
		{name: "no Secret named", edit: set(keyVol+"secret.secretName", ""), want: `secretName is ""`},
		{name: "mount of no volume", edit: set(keyMount+"name", "gone"), want: `handle key mount "gone" names no volume`},
		{name: "not nasd: not ours", edit: edits(
			set("metadata.labels.[app.kubernetes.io/name]", "other"), set("spec.template.metadata.labels.[app.kubernetes.io/name]", "other"),
			set(keyFlag, "--verbose"))},
		{name: "unknown args at preview", edit: set(nasdCtr+"args", unknown), wantUnknown: "containers[0].args"},
		{name: "unknown volumes at preview", edit: set(podSpec+"volumes", unknown), wantUnknown: "spec.template.spec.volumes"},
	})
}
