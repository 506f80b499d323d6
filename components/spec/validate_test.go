package spec

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const projectDir = "../.."

// stackConfig is the real merged config of a stack, as the engine passes it.
func stackConfig(t *testing.T, stack string) map[string]string {
	t.Helper()
	cfg, err := MergedConfig(projectDir, stack)
	require.NoError(t, err)
	return cfg
}

func getter(cfg map[string]string) Getter {
	return func(k string) (string, bool) { v, ok := cfg[k]; return v, ok }
}

// edit decodes cfg[key] as JSON, lets f change it, and stores it back.
func edit[T any](t *testing.T, cfg map[string]string, key string, f func(*T)) {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(cfg[key]), &v))
	f(&v)
	b, err := json.Marshal(v)
	require.NoError(t, err)
	cfg[key] = string(b)
}

type (
	obj  = map[string]any
	objs = []map[string]any
)

func servers(f func(s objs)) func(*objs) { return func(s *objs) { f(*s) } }

func clusterServer(name string, f func(s obj)) func(*obj) {
	return func(c *obj) { f((*c)["servers"].(obj)[name].(obj)) }
}

func TestRealStacksAreValid(t *testing.T) {
	for _, stack := range []string{"dev", "ocp"} {
		t.Run(stack, func(t *testing.T) {
			cfg, err := Load(getter(stackConfig(t, stack)))
			require.NoError(t, err)
			require.Len(t, cfg.Servers, 7)
		})
	}
}

// Each rule: a real stack config with one change must fail naming the field.
func TestValidationNamesTheField(t *testing.T) {
	cases := []struct {
		name  string
		stack string
		edit  func(t *testing.T, cfg map[string]string)
		field string // FieldError.Field expected in the message
	}{
		{"unknown role", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[0]["role"] = "archive" }))
		}, "servers[0].role"},
		{"duplicate server name", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[1]["name"] = s[0]["name"] }))
		}, "servers[1].name"},
		{"duplicate fsid", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[5]["fsid"] = 2 }))
		}, "servers[5].fsid"},
		{"fsid missing", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { delete(s[2], "fsid") }))
		}, "servers[2].fsid"},
		{"fsid not positive", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[2]["fsid"] = 0 }))
		}, "servers[2].fsid"},
		{"fsid of the wrong type", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[2]["fsid"] = "three" }))
		}, "servers[2]"},
		{"misspelt field", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[4]["exportPth"] = "/x" }))
		}, "servers[4]"},
		{"capacity not a quantity", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[0]["capacity"] = "500 GB" }))
		}, "servers[0].capacity"},
		{"negative capacity", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[6]["capacity"] = "-1Ti" }))
		}, "servers[6].capacity"},
		{"nodePort below range", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-input-1", func(s obj) { s["nodePort"] = 2049 }))
		}, "cluster.servers.nas-input-1.nodePort"},
		{"nodePort above range", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-output-3", func(s obj) { s["nodePort"] = 32768 }))
		}, "cluster.servers.nas-output-3.nodePort"},
		{"nodePort duplicated", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-input-2", func(s obj) { s["nodePort"] = 32150 }))
		}, "cluster.servers.nas-input-2.nodePort"},
		{"portmapper nodePort clashes with a nodePort", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-output-1", func(s obj) { s["portmapperNodePort"] = 32150 }))
		}, "cluster.servers.nas-output-1.portmapperNodePort"},
		{"clusterIP not an IP", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-backup-1", func(s obj) { s["clusterIP"] = "10.96.150.300" }))
		}, "cluster.servers.nas-backup-1.clusterIP"},
		{"clusterIP duplicated", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-input-3", func(s obj) { s["clusterIP"] = "10.96.150.1" }))
		}, "cluster.servers.nas-input-3.clusterIP"},
		{"clusterIP outside the service CIDR", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, clusterServer("nas-input-3", func(s obj) { s["clusterIP"] = "192.168.49.2" }))
		}, "cluster.servers.nas-input-3.clusterIP"},
		{"server without cluster placement", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { delete((*o)["servers"].(obj), "nas-output-2") })
		}, "cluster.servers.nas-output-2"},
		{"cluster placement of an unknown server", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) {
				(*o)["servers"].(obj)["nas-input-9"] = obj{"clusterIP": "10.96.150.9", "nodePort": 32159, "portmapperNodePort": 32169}
			})
		}, "cluster.servers.nas-input-9"},
		{"external target without an address", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { delete((*o)["addresses"].(obj), "nas-output-3") })
		}, "external.addresses.nas-output-3"},
		{"address is a Service DNS name (.svc)", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { (*o)["addresses"].(obj)["nas-input-1"] = "nas-input-1.nas-system.svc" })
		}, "external.addresses.nas-input-1"},
		{"address is a Service DNS name (.svc.cluster.local)", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) {
				(*o)["addresses"].(obj)["nas-backup-1"] = "nas-backup-1.nas-system.svc.cluster.local"
			})
		}, "external.addresses.nas-backup-1"},
		{"address is not a host", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { (*o)["addresses"].(obj)["nas-input-2"] = "nas input 2" })
		}, "external.addresses.nas-input-2"},
		{"empty mount options", "dev", func(t *testing.T, c map[string]string) { c[KeyMountOptions] = "[]" }, "mountOptions"},
		{"mount options in one item", "ocp", func(t *testing.T, c map[string]string) {
			c[KeyMountOptions] = `["nfsvers=3,hard"]`
		}, "mountOptions[0]"},
		{"backup server not read-only", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[3]["readOnly"] = false }))
		}, "servers[3].readOnly"},
		{"read-write access mode on a read-only export", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[3]["accessModes"] = []string{"ReadWriteMany"} }))
		}, "servers[3].accessModes[0]"},
		{"unknown access mode", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[0]["accessModes"] = []string{"ReadWriteAll"} }))
		}, "servers[0].accessModes[0]"},
		{"reclaim policy Delete", "dev", func(t *testing.T, c map[string]string) { c[KeyReclaimPolicy] = "Delete" }, "reclaimPolicy"},
		{"relative export path", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[1]["exportPath"] = "exports/input-2" }))
		}, "servers[1].exportPath"},
		{"duplicate PV name", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[6]["volumeName"] = s[5]["volumeName"] }))
		}, "servers[6].volumeName"},
		{"duplicate claim", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyServers, servers(func(s objs) { s[6]["claim"] = s[5]["claim"] }))
		}, "servers[6].claim"},
		{"unknown target", "dev", func(t *testing.T, c map[string]string) { c[KeyTarget] = "minikube" }, "target"},
		{"missing target", "ocp", func(t *testing.T, c map[string]string) { delete(c, KeyTarget) }, "target"},
		{"cluster target without cluster settings", "dev", func(t *testing.T, c map[string]string) { delete(c, KeyCluster) }, "cluster"},
		{"bad label value", "dev", func(t *testing.T, c map[string]string) {
			c[KeyLabels] = `{"app.kubernetes.io/part-of":"nas topology"}`
		}, "labels.app.kubernetes.io/part-of"},
		{"unknown image loader", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["imageLoader"] = "docker" })
		}, "cluster.imageLoader"},
		{"registry loader without a registry", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["imageLoader"] = "registry" })
		}, "cluster.imageRegistry"},
		{"prebuilt image with a loader that builds", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["image"] = "nasd:1.0" })
		}, "cluster.image"},
		{"manageNamespaces not a bool", "dev", func(t *testing.T, c map[string]string) { c[KeyManageNamespaces] = "yes" }, "manageNamespaces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stackConfig(t, tc.stack)
			tc.edit(t, cfg)
			_, err := Load(getter(cfg))
			require.Error(t, err)
			require.Contains(t, err.Error(), Namespace+":"+tc.field+":", "the error must name the field")
		})
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	cfg := stackConfig(t, "dev")
	edit(t, cfg, KeyServers, servers(func(s objs) {
		s[0]["role"] = "archive"
		s[1]["capacity"] = "lots"
	}))
	_, err := Load(getter(cfg))
	require.Error(t, err)
	require.Contains(t, err.Error(), "servers[0].role")
	require.Contains(t, err.Error(), "servers[1].capacity")
}

func TestQuantityGrammar(t *testing.T) {
	for _, ok := range []string{"1", "500Gi", "2Ti", "1.5Ti", "100M", "1e3", ".5Gi", "10E"} {
		require.True(t, quantity.MatchString(ok), ok)
	}
	for _, bad := range []string{"", "Gi", "500 Gi", "500GB", "-1Gi", "1.2.3", "5gi", "1Pi2"} {
		require.False(t, quantity.MatchString(bad), bad)
	}
}

func TestSharedKeysCannotBeOverriddenByAStack(t *testing.T) {
	project, err := ProjectConfig(projectDir)
	require.NoError(t, err)
	for _, stack := range []string{"dev", "ocp"} {
		require.NoError(t, CheckSharedNotOverridden(project, getter(stackConfig(t, stack))), stack)
	}
	for _, key := range SharedKeys {
		t.Run(key, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			cfg[key] = cfg[key] + " " // any change at all
			if strings.HasPrefix(cfg[key], "[") || strings.HasPrefix(cfg[key], "{") {
				cfg[key] = strings.Replace(cfg[key], `"`, `"x`, 1)
			}
			err := CheckSharedNotOverridden(project, getter(cfg))
			require.Error(t, err)
			require.Contains(t, err.Error(), Namespace+":"+key+":")
		})
	}
}
