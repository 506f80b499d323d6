package spec

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stackConfig is the committed merged config of a stack, as the engine passes it.
func stackConfig(t *testing.T, stack string) map[string]string {
	t.Helper()
	cfg, err := MergedConfig(testenv.ProjectDir(t), stack)
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

// committed are the servers of the committed Pulumi.yaml, in order.
func committed(t *testing.T) []Server {
	t.Helper()
	cfg, err := Load(getter(stackConfig(t, "dev")))
	require.NoError(t, err)
	return cfg.Servers
}

// ofRole is the first committed server of a role.
func ofRole(t *testing.T, role Role) string {
	t.Helper()
	for _, s := range committed(t) {
		if s.Role == role {
			return s.Name
		}
	}
	t.Fatalf("no %s server in Pulumi.yaml", role)
	return ""
}

// server edits the server of that name in the servers list.
func server(name string, f func(s obj)) func(*objs) {
	return func(all *objs) {
		for _, s := range *all {
			if s["name"] == name {
				f(s)
				return
			}
		}
		panic("no server " + name)
	}
}

func clusterServer(name string, f func(s obj)) func(*obj) {
	return func(c *obj) { f((*c)["servers"].(obj)[name].(obj)) }
}

func TestCommittedStacksAreValid(t *testing.T) {
	for _, stack := range []string{"dev", "ocp"} {
		t.Run(stack, func(t *testing.T) {
			_, err := Load(getter(stackConfig(t, stack)))
			require.NoError(t, err)
		})
	}
}

// Each rule: a committed stack config with one change must fail naming the
// field (servers by name). The servers picked are named by role or are the
// first two of Pulumi.yaml; nothing depends on how many there are.
func TestValidationNamesTheField(t *testing.T) {
	all := committed(t)
	require.GreaterOrEqual(t, len(all), 2)
	a, b := all[0].Name, all[1].Name // any two servers
	in, bk, out := ofRole(t, RoleInput), ofRole(t, RoleBackup), ofRole(t, RoleOutput)
	srvs := func(name string, f func(s obj)) func(t *testing.T, c map[string]string) {
		return func(t *testing.T, c map[string]string) { edit(t, c, KeyServers, server(name, f)) }
	}
	placement := func(name string, f func(s obj)) func(t *testing.T, c map[string]string) {
		return func(t *testing.T, c map[string]string) { edit(t, c, KeyCluster, clusterServer(name, f)) }
	}
	var cluster Cluster
	require.NoError(t, json.Unmarshal([]byte(stackConfig(t, "dev")[KeyCluster]), &cluster))
	cidr := netip.MustParsePrefix(cluster.ServiceCIDR)
	nth := func(n int) string {
		ip := cidr.Masked().Addr()
		for range n {
			ip = ip.Next()
		}
		return ip.String()
	}
	sf := func(name, field string) string { return "servers[" + name + "]." + field }

	cases := []struct {
		name  string
		stack string
		edit  func(t *testing.T, cfg map[string]string)
		field string // FieldError.Field expected in the message
		msg   string // and this in its message, if set
	}{
		{"unknown role", "dev", srvs(a, func(s obj) { s["role"] = "archive" }), sf(a, "role"), ""},
		{"duplicate server name: both by position", "dev", srvs(b, func(s obj) { s["name"] = a }), "servers[1].name", `duplicate server name "` + a + `" (also servers[0])`},
		{"duplicate fsid", "ocp", srvs(b, func(s obj) { s["fsid"] = all[0].FSID }), sf(b, "fsid"), "(also servers[" + a + "])"},
		{"fsid missing", "dev", srvs(a, func(s obj) { delete(s, "fsid") }), sf(a, "fsid"), "is missing"},
		{"fsid not positive", "dev", srvs(a, func(s obj) { s["fsid"] = 0 }), sf(a, "fsid"), "positive"},
		{"fsid of the wrong type", "dev", srvs(a, func(s obj) { s["fsid"] = "three" }), sf(a, "fsid"), `must be an integer, got the string "three"`},
		{"misspelt key", "dev", srvs(out, func(s obj) { s["exportPth"] = "/x" }), sf(out, "exportPth"), `unknown key "exportPth": did you mean "exportPath"?`},
		{"wrong-case key fsId", "dev", srvs(a, func(s obj) { s["fsId"] = s["fsid"]; delete(s, "fsid") }), sf(a, "fsId"), `keys are case-sensitive, did you mean "fsid"?`},
		{"wrong-case key FSID", "ocp", srvs(a, func(s obj) { s["FSID"] = 9 }), sf(a, "FSID"), `did you mean "fsid"?`},
		{"wrong-case key in a claim", "dev", srvs(a, func(s obj) { s["claim"] = obj{"Namespace": "nas-apps", "name": a} }), sf(a, "claim.Namespace"), `did you mean "namespace"?`},
		{"wrong-case nodeport", "dev", placement(a, func(s obj) { s["nodeport"] = s["nodePort"]; delete(s, "nodePort") }), "cluster.servers." + a + ".nodeport", `did you mean "nodePort"?`},
		{"wrong-case cluster key", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["WindowsRoot"] = "/mnt/x" })
		}, "cluster.WindowsRoot", `did you mean "windowsRoot"?`},
		{"unknown external key", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { (*o)["protected"] = false })
		}, "external.protected", `did you mean "protect"?`},
		{"key nothing like a field", "dev", srvs(a, func(s obj) { s["zzzzzz"] = 1 }), sf(a, "zzzzzz"), "want one of accessModes, capacity, claim,"},
		{"capacity not a quantity", "dev", srvs(a, func(s obj) { s["capacity"] = "500 GB" }), sf(a, "capacity"), ""},
		{"negative capacity", "ocp", srvs(b, func(s obj) { s["capacity"] = "-1Ti" }), sf(b, "capacity"), ""},
		{"zero capacity", "ocp", srvs(b, func(s obj) { s["capacity"] = "0" }), sf(b, "capacity"), "is zero"},
		{"zero capacity with a suffix", "dev", srvs(a, func(s obj) { s["capacity"] = "0.0Gi" }), sf(a, "capacity"), "is zero"},
		{"capacity of the wrong type", "dev", srvs(a, func(s obj) { s["capacity"] = 500 }), sf(a, "capacity"), "must be a string, got the number 500"},
		{"nodePort below range", "dev", placement(a, func(s obj) { s["nodePort"] = 2049 }), "cluster.servers." + a + ".nodePort", ""},
		{"nodePort above range", "dev", placement(b, func(s obj) { s["nodePort"] = 32768 }), "cluster.servers." + b + ".nodePort", ""},
		{"nodePort duplicated", "dev", placement(b, func(s obj) { s["nodePort"] = cluster.Servers[a].NodePort }), "cluster.servers." + b + ".nodePort", ""},
		{"portmapper nodePort clashes with a nodePort", "dev", placement(b, func(s obj) { s["portmapperNodePort"] = cluster.Servers[a].NodePort }), "cluster.servers." + b + ".portmapperNodePort", ""},
		{"clusterIP not an IP", "dev", placement(a, func(s obj) { s["clusterIP"] = "10.96.150.300" }), "cluster.servers." + a + ".clusterIP", ""},
		{"clusterIP duplicated", "dev", placement(b, func(s obj) { s["clusterIP"] = cluster.Servers[a].ClusterIP }), "cluster.servers." + b + ".clusterIP", ""},
		{"clusterIP outside the service CIDR", "dev", placement(a, func(s obj) { s["clusterIP"] = "192.168.49.2" }), "cluster.servers." + a + ".clusterIP", ""},
		{"clusterIP is the network address", "dev", placement(a, func(s obj) { s["clusterIP"] = nth(0) }), "cluster.servers." + a + ".clusterIP", "network address"},
		{"clusterIP of the kubernetes Service", "dev", placement(a, func(s obj) { s["clusterIP"] = nth(1) }), "cluster.servers." + a + ".clusterIP", "the kubernetes Service"},
		{"clusterIP of the DNS Service", "dev", placement(a, func(s obj) { s["clusterIP"] = nth(10) }), "cluster.servers." + a + ".clusterIP", "the cluster DNS Service"},
		{"server without cluster placement", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { delete((*o)["servers"].(obj), b) })
		}, "cluster.servers." + b, ""},
		{"cluster placement of an unknown server", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) {
				(*o)["servers"].(obj)["nas-nowhere-9"] = obj{"clusterIP": nth(200), "nodePort": 30001, "portmapperNodePort": 30002}
			})
		}, "cluster.servers.nas-nowhere-9", ""},
		{"external target without an address", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { delete((*o)["addresses"].(obj), b) })
		}, "external.addresses." + b, ""},
		{"address is a Service DNS name (.svc)", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { (*o)["addresses"].(obj)[a] = a + ".nas-system.svc" })
		}, "external.addresses." + a, ""},
		{"address is a Service DNS name (.svc.cluster.local)", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { (*o)["addresses"].(obj)[bk] = bk + ".nas-system.svc.cluster.local" })
		}, "external.addresses." + bk, ""},
		{"address is not a host", "ocp", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyExternal, func(o *obj) { (*o)["addresses"].(obj)[b] = "nas input 2" })
		}, "external.addresses." + b, ""},
		{"empty mount options", "dev", func(t *testing.T, c map[string]string) { c[KeyMountOptions] = "[]" }, "mountOptions", ""},
		{"mount options in one item", "ocp", func(t *testing.T, c map[string]string) {
			c[KeyMountOptions] = `["nfsvers=3,hard"]`
		}, "mountOptions[0]", ""},
		{"mount options not a list", "dev", func(t *testing.T, c map[string]string) { c[KeyMountOptions] = `"nfsvers=3"` }, "mountOptions", "must be a list"},
		{"backup server not read-only", "dev", srvs(bk, func(s obj) { s["readOnly"] = false }), sf(bk, "readOnly"), ""},
		{"read-write access mode on a read-only export", "ocp", srvs(bk, func(s obj) { s["accessModes"] = []string{"ReadWriteMany"} }), sf(bk, "accessModes[0]"), ""},
		{"unknown access mode", "dev", srvs(in, func(s obj) { s["accessModes"] = []string{"ReadWriteAll"} }), sf(in, "accessModes[0]"), ""},
		{"reclaim policy Delete", "dev", func(t *testing.T, c map[string]string) { c[KeyReclaimPolicy] = "Delete" }, "reclaimPolicy", ""},
		{"relative export path", "dev", srvs(b, func(s obj) { s["exportPath"] = "exports/x" }), sf(b, "exportPath"), ""},
		{"duplicate PV name", "ocp", srvs(b, func(s obj) { s["volumeName"] = all[0].VolumeName }), sf(b, "volumeName"), "(also servers[" + a + "])"},
		{"duplicate claim", "ocp", srvs(b, func(s obj) { s["claim"] = all[0].Claim }), sf(b, "claim"), ""},
		{"unknown target", "dev", func(t *testing.T, c map[string]string) { c[KeyTarget] = "minikube" }, "target", ""},
		{"missing target", "ocp", func(t *testing.T, c map[string]string) { delete(c, KeyTarget) }, "target", ""},
		{"cluster target without cluster settings", "dev", func(t *testing.T, c map[string]string) { delete(c, KeyCluster) }, "cluster", ""},
		{"bad label value", "dev", func(t *testing.T, c map[string]string) {
			c[KeyLabels] = `{"app.kubernetes.io/part-of":"nas topology"}`
		}, "labels.app.kubernetes.io/part-of", ""},
		{"unknown image loader", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["imageLoader"] = "docker" })
		}, "cluster.imageLoader", ""},
		{"unknown node architecture", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["nodeArch"] = "x86_64" })
		}, "cluster.nodeArch", ""},
		{"registry loader without a registry", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["imageLoader"] = "registry" })
		}, "cluster.imageRegistry", ""},
		{"prebuilt image with a loader that builds", "dev", func(t *testing.T, c map[string]string) {
			edit(t, c, KeyCluster, func(o *obj) { (*o)["image"] = "nasd:1.0" })
		}, "cluster.image", ""},
		{"manageNamespaces not a bool", "dev", func(t *testing.T, c map[string]string) { c[KeyManageNamespaces] = "yes" }, "manageNamespaces", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stackConfig(t, tc.stack)
			tc.edit(t, cfg)
			_, err := Load(getter(cfg))
			require.Error(t, err)
			require.Contains(t, err.Error(), Namespace+":"+tc.field+":", "the error must name the field")
			if tc.msg != "" {
				require.Contains(t, err.Error(), tc.msg)
			}
		})
	}
}

// encoding/json takes the last of fsid and FsId (case-insensitive match);
// the strict decoder refuses the second key, so 9 is never used.
func TestWrongCaseKeyDoesNotOverride(t *testing.T) {
	a := committed(t)[0].Name
	cfg := stackConfig(t, "dev")
	edit(t, cfg, KeyServers, server(a, func(s obj) { s["fsid"] = 1 }))
	cfg[KeyServers] = strings.Replace(cfg[KeyServers], `"fsid":1`, `"fsid":1,"FsId":9`, 1)
	require.Contains(t, cfg[KeyServers], `"FsId":9`)
	c, err := Load(getter(cfg))
	require.ErrorContains(t, err, "servers["+a+"].FsId: unknown key")
	assert.Equal(t, 1, *c.Servers[0].FSID, "the exact key's value stands")
}

// One Load reports every problem: decoding ones (a value of the wrong type, a
// misspelt key) together with validation ones, each once.
func TestValidationReportsEveryProblem(t *testing.T) {
	all := committed(t)
	a, b := all[0].Name, all[1].Name
	cfg := stackConfig(t, "dev")
	edit(t, cfg, KeyServers, func(s *objs) {
		server(a, func(s obj) { s["role"] = "archive"; s["fsid"] = "one" })(s)
		server(b, func(s obj) { s["capacity"] = "lots"; s["exportpath"] = s["exportPath"]; delete(s, "exportPath") })(s)
	})
	edit(t, cfg, KeyCluster, clusterServer(a, func(s obj) { s["nodePort"] = "32150" }))
	cfg[KeyReclaimPolicy] = "Delete"
	_, err := Load(getter(cfg))
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"servers[" + a + "].role: unknown role",
		"servers[" + a + "].fsid: must be an integer",
		"servers[" + b + "].capacity:",
		"servers[" + b + "].exportpath: unknown key",
		"cluster.servers." + a + ".nodePort: must be an integer",
		"reclaimPolicy: must be Retain",
	} {
		assert.Contains(t, msg, want)
	}
	assert.Contains(t, msg, "(6 problem(s))", "each problem once: no second 'fsid is missing' or 'exportPath' complaint")
}

func TestEditDistanceAndSuggestions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"fsid", "fsid", 0}, {"exportPth", "exportPath", 1}, {"kitten", "sitting", 3}} {
		assert.Equal(t, tc.d, editDistance(tc.a, tc.b), "%s/%s", tc.a, tc.b)
	}
	hint, meant := suggest("volumename", []string{"volumeName", "name"})
	assert.Equal(t, "volumeName", meant)
	assert.Contains(t, hint, "case-sensitive")
	_, meant = suggest("qqq", []string{"volumeName", "name"})
	assert.Empty(t, meant)
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
	project, err := ProjectConfig(testenv.ProjectDir(t))
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

// A misspelt key next to the right one does not hide the right one's problems.
func TestMisspeltKeyNextToTheRightOne(t *testing.T) {
	a := committed(t)[0].Name
	cfg := stackConfig(t, "dev")
	edit(t, cfg, KeyServers, server(a, func(s obj) { s["nme"] = "x"; s["name"] = "Not_A_Name" }))
	_, err := Load(getter(cfg))
	require.ErrorContains(t, err, `unknown key "nme": did you mean "name"?`)
	require.ErrorContains(t, err, `"Not_A_Name" is not a valid server name`)
}

// What each role means, said once (spec.Role methods) and asked everywhere.
func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role                   Role
		valid, ro, writesWinds bool
	}{
		{RoleInput, true, false, false},
		{RoleBackup, true, true, false},
		{RoleOutput, true, false, true},
		{"archive", false, false, false},
	} {
		assert.Equal(t, tc.valid, tc.role.Valid(), tc.role)
		assert.Equal(t, tc.ro, tc.role.ReadOnly(), tc.role)
		assert.Equal(t, tc.writesWinds, tc.role.WritesWindows(), tc.role)
	}
}
