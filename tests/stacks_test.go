package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/nasimage/image"
)

// withoutNFSServer is a PV's inputs as plain data, minus spec.nfs.server: the
// one field allowed to differ between stacks.
func withoutNFSServer(pv registered) map[string]any {
	m := pv.Inputs.Mappable()
	delete(m["spec"].(map[string]any)["nfs"].(map[string]any), "server")
	return m
}

func TestResourcesPerTarget(t *testing.T) {
	dev := mustRun(t, "dev", nil)
	ocp := mustRun(t, "ocp", nil)
	cfg := committed(t)
	serverNames := cfg.names()

	for _, r := range []*run{dev, ocp} {
		assert.ElementsMatch(t, serverNames, keys(r.ofType(typeNasServer)))
		assert.ElementsMatch(t, serverNames, keys(r.ofType(typePV)))
		assert.ElementsMatch(t, serverNames, keys(r.ofType(typePVC)))
	}
	assert.ElementsMatch(t, serverNames, keys(dev.ofType(typeService)))
	assert.ElementsMatch(t, serverNames, keys(dev.ofType(typeDeployment)))
	assert.ElementsMatch(t, append([]string{cfg.NasNamespace}, cfg.claimNamespaces()...), keys(dev.ofType(typeNamespace)))

	// Production: only volumes. No workloads, and the namespaces are not ours.
	assert.Empty(t, ocp.ofType(typeService))
	assert.Empty(t, ocp.ofType(typeDeployment))
	assert.Empty(t, ocp.ofType(typeNamespace))
}

func TestVolumesAreIdenticalAcrossStacksExceptNFSServer(t *testing.T) {
	dev := mustRun(t, "dev", nil)
	ocp := mustRun(t, "ocp", nil)
	devPVs, ocpPVs := dev.ofType(typePV), ocp.ofType(typePV)
	devPVCs, ocpPVCs := dev.ofType(typePVC), ocp.ofType(typePVC)
	for _, name := range committed(t).names() {
		assert.Equal(t, withoutNFSServer(ocpPVs[name]), withoutNFSServer(devPVs[name]), "PV %s", name)
		assert.Equal(t, ocpPVCs[name].Inputs.Mappable(), devPVCs[name].Inputs.Mappable(), "PVC %s", name)
		// ...and the one field that differs really does.
		assert.NotEqual(t, path(devPVs[name].Inputs, "spec", "nfs", "server"), path(ocpPVs[name].Inputs, "spec", "nfs", "server"))
	}
	assert.Equal(t, ocp.topology.VolumeSpecDigest, dev.topology.VolumeSpecDigest)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, dev.topology.VolumeSpecDigest)
}

// Every PV/PVC field of every server, against Pulumi.yaml read as plain YAML.
func TestVolumeFieldsMatchTheSharedConfig(t *testing.T) {
	cfg := committed(t)
	for _, stack := range []string{"dev", "ocp"} {
		r := mustRun(t, stack, nil)
		for _, s := range cfg.Servers {
			t.Run(stack+"/"+s.Name, func(t *testing.T) {
				pv := r.ofType(typePV)[s.Name].Inputs
				pvc := r.ofType(typePVC)[s.Name].Inputs
				assert.Equal(t, s.VolumeName, path(pv, "metadata", "name").StringValue())
				assert.Equal(t, s.Capacity, path(pv, "spec", "capacity", "storage").StringValue())
				assert.Equal(t, cfg.ReclaimPolicy, path(pv, "spec", "persistentVolumeReclaimPolicy").StringValue())
				assert.Equal(t, cfg.StorageClassName, path(pv, "spec", "storageClassName").StringValue())
				assert.Equal(t, s.ExportPath, path(pv, "spec", "nfs", "path").StringValue())
				assert.Equal(t, s.ReadOnly, path(pv, "spec", "nfs", "readOnly").BoolValue())
				assert.Equal(t, toAny(s.AccessModes), path(pv, "spec", "accessModes").Mappable())
				assert.Equal(t, toAny(cfg.MountOptions), path(pv, "spec", "mountOptions").Mappable())
				assert.Equal(t, s.Claim.Namespace, path(pv, "spec", "claimRef", "namespace").StringValue())
				assert.Equal(t, s.Claim.Name, path(pv, "spec", "claimRef", "name").StringValue())
				labels := path(pv, "metadata", "labels").Mappable().(map[string]any)
				for k, v := range cfg.Labels {
					assert.Equal(t, v, labels[k], "shared label %s", k)
				}
				for k, v := range s.Labels {
					assert.Equal(t, v, labels[k], "server label %s", k)
				}
				if stack == "ocp" {
					assert.Equal(t, cfg.External.Addresses[s.Name], path(pv, "spec", "nfs", "server").StringValue())
				}

				assert.Equal(t, s.VolumeName, path(pvc, "spec", "volumeName").StringValue())
				assert.Equal(t, s.Claim.Name, path(pvc, "metadata", "name").StringValue())
				assert.Equal(t, s.Claim.Namespace, path(pvc, "metadata", "namespace").StringValue())
				assert.Equal(t, cfg.StorageClassName, path(pvc, "spec", "storageClassName").StringValue())
				assert.Equal(t, s.Capacity, path(pvc, "spec", "resources", "requests", "storage").StringValue())
				assert.Equal(t, toAny(s.AccessModes), path(pvc, "spec", "accessModes").Mappable())
			})
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func TestDevUsesFixedClusterIPsAndNodePorts(t *testing.T) {
	dev := mustRun(t, "dev", nil)
	cfg := committed(t)
	for _, name := range cfg.names() {
		want := cfg.Cluster.Servers[name]
		svc := dev.ofType(typeService)[name].Inputs
		pv := dev.ofType(typePV)[name].Inputs
		assert.Equal(t, want.ClusterIP, path(svc, "spec", "clusterIP").StringValue(), name)
		assert.Equal(t, want.ClusterIP, path(pv, "spec", "nfs", "server").StringValue(), "%s: PV must point at the Service clusterIP", name)
		assert.Equal(t, "NodePort", path(svc, "spec", "type").StringValue())
		ports := path(svc, "spec", "ports").ArrayValue()
		require.Len(t, ports, 2)
		nfs, pmap := ports[0].ObjectValue(), ports[1].ObjectValue()
		assert.Equal(t, 2049.0, nfs["port"].NumberValue())
		assert.Equal(t, "nfs", nfs["targetPort"].StringValue())
		assert.Equal(t, 111.0, pmap["port"].NumberValue())
		assert.Equal(t, "portmapper", pmap["targetPort"].StringValue())
		assert.EqualValues(t, want.NodePort, nfs["nodePort"].NumberValue(), name)
		assert.EqualValues(t, want.PortmapperNodePort, pmap["nodePort"].NumberValue(), name)
		assert.Equal(t, want.ClusterIP, dev.outputs[name]["nfsAddress"], "stack output nfsAddress")
	}
}

func TestBackupIsReadOnly(t *testing.T) {
	cfg := committed(t)
	cfg.ofRole(t, "backup") // there is one to check
	for _, stack := range []string{"dev", "ocp"} {
		r := mustRun(t, stack, nil)
		for _, s := range cfg.Servers {
			if s.Role != "backup" {
				continue
			}
			pv := r.ofType(typePV)[s.Name].Inputs
			assert.True(t, path(pv, "spec", "nfs", "readOnly").BoolValue(), stack)
			assert.Equal(t, []any{"ReadOnlyMany"}, path(pv, "spec", "accessModes").Mappable(), stack)
			assert.Contains(t, r.outputs[s.Name]["mountCommand"], ",ro ")
		}
	}
	dev := mustRun(t, "dev", nil)
	for name, d := range dev.ofType(typeDeployment) {
		args := path(d.Inputs, "spec", "template", "spec", "containers").ArrayValue()[0].ObjectValue()["args"].Mappable()
		ro := slices.ContainsFunc(args.([]any), func(a any) bool {
			opts, ok := strings.CutPrefix(a.(string), "--options=")
			return ok && slices.Contains(strings.Split(opts, ","), "ro")
		})
		assert.Equal(t, cfg.server(name).ReadOnly, ro, "%s: nasd exports read-only exactly when the server is", name)
	}
}

func TestDeploymentsMeetTheRestrictedPodSecurityStandard(t *testing.T) {
	dev := mustRun(t, "dev", nil)
	cfg := committed(t)
	for name, d := range dev.ofType(typeDeployment) {
		t.Run(name, func(t *testing.T) {
			spec := path(d.Inputs, "spec")
			assert.Equal(t, 1.0, path(spec.ObjectValue(), "replicas").NumberValue())
			assert.Equal(t, "Recreate", path(spec.ObjectValue(), "strategy", "type").StringValue())
			pod := path(spec.ObjectValue(), "template", "spec").ObjectValue()
			assert.True(t, path(pod, "securityContext", "runAsNonRoot").BoolValue())
			assert.NotZero(t, path(pod, "securityContext", "runAsUser").NumberValue())
			assert.Equal(t, "RuntimeDefault", path(pod, "securityContext", "seccompProfile", "type").StringValue())
			assert.False(t, path(pod, "hostNetwork").IsBool() && path(pod, "hostNetwork").BoolValue())
			assert.False(t, path(pod, "hostPID").IsBool() && path(pod, "hostPID").BoolValue())

			containers := path(pod, "containers").ArrayValue()
			require.Len(t, containers, 1)
			c := containers[0].ObjectValue()
			assert.True(t, path(c, "securityContext", "runAsNonRoot").BoolValue())
			assert.False(t, path(c, "securityContext", "allowPrivilegeEscalation").BoolValue())
			assert.False(t, path(c, "securityContext", "privileged").BoolValue())
			assert.True(t, path(c, "securityContext", "readOnlyRootFilesystem").BoolValue())
			assert.Equal(t, []any{"ALL"}, path(c, "securityContext", "capabilities", "drop").Mappable())
			assert.True(t, path(c, "securityContext", "capabilities", "add").IsNull())
			for _, kind := range []string{"requests", "limits"} {
				for _, res := range []string{"cpu", "memory"} {
					assert.NotEmpty(t, path(c, "resources", kind, res).StringValue(), "%s.%s", kind, res)
				}
			}
			assert.Equal(t, "/readyz", path(c, "readinessProbe", "httpGet", "path").StringValue())
			assert.Equal(t, "/healthz", path(c, "livenessProbe", "httpGet", "path").StringValue())
			for _, port := range path(c, "ports").ArrayValue() {
				assert.Greater(t, port.ObjectValue()["containerPort"].NumberValue(), 1024.0, "non-root nasd listens on high ports")
			}

			vols := map[string]resource.PropertyMap{}
			for _, v := range path(pod, "volumes").ArrayValue() {
				vols[v.ObjectValue()["name"].StringValue()] = v.ObjectValue()
			}
			assert.Equal(t, cfg.Cluster.WindowsRoot+"/"+name, path(vols["windows"], "hostPath", "path").StringValue())
			assert.Equal(t, "DirectoryOrCreate", path(vols["windows"], "hostPath", "type").StringValue())
			assert.Equal(t, cfg.Cluster.ExportSizeLimit, path(vols["data"], "emptyDir", "sizeLimit").StringValue())
			assert.True(t, path(vols["data"], "emptyDir", "medium").IsNull(), "disk-backed emptyDir")

			tmplLabels := path(spec.ObjectValue(), "template", "metadata", "labels").Mappable().(map[string]any)
			for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} {
				assert.NotEmpty(t, tmplLabels[l], l)
			}
			assert.Equal(t, name, tmplLabels["app.kubernetes.io/instance"])
		})
	}
}

// Every shared PV/PVC field: changing it in Pulumi.yaml changes the PV (or PVC)
// of both stacks the same way, and the digest.
func TestSharedChangesReachBothStacks(t *testing.T) {
	baseDev, baseOCP := mustRun(t, "dev", nil), mustRun(t, "ocp", nil)
	output := committed(t).ofRole(t, "output").Name // a read-write server
	server := func(f func(s map[string]any)) func(cfg map[string]string) {
		return func(cfg map[string]string) {
			var servers []map[string]any
			require.NoError(t, json.Unmarshal([]byte(cfg[spec.KeyServers]), &servers))
			for _, s := range servers {
				if s["name"] == output {
					f(s)
				}
			}
			b, _ := json.Marshal(servers)
			cfg[spec.KeyServers] = string(b)
		}
	}
	cases := []struct {
		name string
		edit func(cfg map[string]string)
	}{
		{"capacity", server(func(s map[string]any) { s["capacity"] = "3Ti" })},
		{"accessModes", server(func(s map[string]any) { s["accessModes"] = []string{"ReadWriteOnce"} })},
		{"exportPath", server(func(s map[string]any) { s["exportPath"] = "/exports/results-1" })},
		{"readOnly", server(func(s map[string]any) { s["readOnly"] = true; s["accessModes"] = []string{"ReadOnlyMany"} })},
		{"volumeName", server(func(s map[string]any) { s["volumeName"] = "nas-results-1" })},
		{"claim", server(func(s map[string]any) { s["claim"] = map[string]string{"namespace": "nas-apps", "name": "results"} })},
		{"server labels", server(func(s map[string]any) { s["labels"] = map[string]string{"tier": "gold"} })},
		{"mountOptions", func(cfg map[string]string) { cfg[spec.KeyMountOptions] = `["nfsvers=3","proto=tcp","soft"]` }},
		{"storageClassName", func(cfg map[string]string) { cfg[spec.KeyStorageClassName] = "nas-static-v2" }},
		{"labels", func(cfg map[string]string) { cfg[spec.KeyLabels] = `{"team":"storage"}` }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A shared change is an edit of Pulumi.yaml: every stack sees it, and
			// the override guard compares against that same edited file.
			dev, ocp := runEditedProject(t, "dev", tc.edit), runEditedProject(t, "ocp", tc.edit)
			assert.NotEqual(t, baseDev.topology.VolumeSpecDigest, dev.topology.VolumeSpecDigest, "digest must change")
			assert.Equal(t, dev.topology.VolumeSpecDigest, ocp.topology.VolumeSpecDigest, "both stacks see the change")
			assert.NotEqual(t, volumeSnapshot(baseDev), volumeSnapshot(dev), "dev volumes must change")
			assert.NotEqual(t, volumeSnapshot(baseOCP), volumeSnapshot(ocp), "ocp volumes must change")
			assert.Equal(t, volumeSnapshot(ocp), volumeSnapshot(dev), "and stay identical across stacks")
		})
	}
}

// Every per-environment setting: changing it in a stack file changes no PV or
// PVC field but nfs.server.
func TestStackSettingsCannotChangeVolumes(t *testing.T) {
	base := volumeSnapshot(mustRun(t, "dev", nil))
	baseOCP := volumeSnapshot(mustRun(t, "ocp", nil))
	clusterEdit := func(f func(c map[string]any)) func(cfg map[string]string) {
		return func(cfg map[string]string) {
			var c map[string]any
			require.NoError(t, json.Unmarshal([]byte(cfg[spec.KeyCluster]), &c))
			f(c)
			b, _ := json.Marshal(c)
			cfg[spec.KeyCluster] = string(b)
		}
	}
	first := committed(t).names()[0]
	devCases := map[string]func(cfg map[string]string){
		"clusterIP": clusterEdit(func(c map[string]any) {
			c["servers"].(map[string]any)[first].(map[string]any)["clusterIP"] = "10.96.160.1"
		}),
		"nodePort": clusterEdit(func(c map[string]any) {
			c["servers"].(map[string]any)[first].(map[string]any)["nodePort"] = 31000
		}),
		"windowsRoot": clusterEdit(func(c map[string]any) { c["windowsRoot"] = "/mnt/c/nas" }),
		"image": clusterEdit(func(c map[string]any) {
			c["imageLoader"], c["image"] = "none", "registry.example/nasd:1.0"
		}),
		"imageLoader": clusterEdit(func(c map[string]any) {
			c["imageLoader"], c["imageRegistry"] = "registry", "localhost:5000"
		}),
		"exportSizeLimit": clusterEdit(func(c map[string]any) { c["exportSizeLimit"] = "2Gi" }),
		"runAsUser":       clusterEdit(func(c map[string]any) { c["runAsUser"] = 1000 }),
		"serviceCIDR": clusterEdit(func(c map[string]any) {
			c["serviceCIDR"] = "10.96.0.0/11"
		}),
		"kubeContext":      func(cfg map[string]string) { cfg[spec.KeyKubeContext] = "other" },
		"manageNamespaces": func(cfg map[string]string) { cfg[spec.KeyManageNamespaces] = "false" },
	}
	for name, edit := range devCases {
		t.Run("dev/"+name, func(t *testing.T) {
			assert.Equal(t, base, volumeSnapshot(mustRun(t, "dev", edit)))
		})
	}
	t.Run("ocp/addresses", func(t *testing.T) {
		r := mustRun(t, "ocp", func(cfg map[string]string) {
			cfg[spec.KeyExternal] = strings.ReplaceAll(cfg[spec.KeyExternal], "192.0.2.", "198.51.100.")
		})
		assert.Equal(t, baseOCP, volumeSnapshot(r))
		for name, addr := range committed(t).External.Addresses {
			assert.Equal(t, strings.ReplaceAll(addr, "192.0.2.", "198.51.100."), path(r.ofType(typePV)[name].Inputs, "spec", "nfs", "server").StringValue())
		}
	})
	// A stack file that sets a shared key is refused before anything is registered.
	for _, key := range spec.SharedKeys {
		t.Run("refused/"+key, func(t *testing.T) {
			r, err := runStack(t, "dev", func(cfg map[string]string) {
				switch key {
				case spec.KeyMountOptions:
					cfg[key] = `["nfsvers=4.1"]`
				case spec.KeyLabels:
					cfg[key] = `{"env":"dev"}`
				case spec.KeyServers:
					cfg[key] = strings.Replace(cfg[key], `"500Gi"`, `"5Gi"`, 1)
				default:
					cfg[key] = cfg[key] + "-dev"
				}
			})
			require.Error(t, err)
			assert.Contains(t, err.Error(), spec.Namespace+":"+key+":")
			assert.Empty(t, r.ofType(typePV), "nothing may be registered")
		})
	}
}

// volumeSnapshot is every PV and PVC input, minus nfs.server, as JSON.
func volumeSnapshot(r *run) string {
	out := map[string]any{}
	for name, pv := range r.ofType(typePV) {
		out["pv/"+name] = withoutNFSServer(pv)
	}
	for name, pvc := range r.ofType(typePVC) {
		out["pvc/"+name] = pvc.Inputs.Mappable()
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestStackOutputs(t *testing.T) {
	dev, ocp := mustRun(t, "dev", nil), mustRun(t, "ocp", nil)
	for _, s := range committed(t).Servers {
		name := s.Name
		for _, r := range []*run{dev, ocp} {
			out := r.outputs[name]
			require.NotNil(t, out, name)
			assert.NotEmpty(t, out["nfsAddress"])
			assert.Equal(t, s.VolumeName, out["volumeName"])
			assert.Equal(t, s.Claim.Name, out["claimName"])
			assert.Equal(t, s.Claim.Namespace, out["claimNamespace"])
			assert.Equal(t, s.ExportPath, out["exportPath"])
			assert.Contains(t, out["mountCommand"], fmt.Sprintf("%s:%s /mnt/%s", out["nfsAddress"], out["exportPath"], s.VolumeName))
			assert.Contains(t, out["mountCommand"], "-o nfsvers=3,")
		}
		assert.NotNil(t, dev.outputs[name]["nodePort"])
		assert.Nil(t, ocp.outputs[name]["nodePort"])
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The Deployments run the image built from nasimage/: its tag derives from the
// image digest, so the same source gives the same reference (no rollout) and
// a prebuilt reference replaces it only with imageLoader none.
func TestDeploymentsRunTheBuiltImage(t *testing.T) {
	images := func(r *run) map[string]string {
		out := map[string]string{}
		for name, d := range r.ofType(typeDeployment) {
			out[name] = path(d.Inputs, "spec", "template", "spec", "containers").ArrayValue()[0].ObjectValue()["image"].StringValue()
		}
		return out
	}
	first := images(mustRun(t, "dev", nil))
	names := committed(t).names()
	require.ElementsMatch(t, names, keys(first))
	ref := first[names[0]]
	assert.Regexp(t, `^nas-topology\.invalid/nasd:sha-[0-9a-f]{12}$`, ref, "a name no registry answers")
	for name, img := range first {
		assert.Equal(t, ref, img, name)
	}
	assert.Equal(t, first, images(mustRun(t, "dev", nil)), "same source, same reference")

	registry := images(mustRun(t, "dev", func(cfg map[string]string) {
		cfg[spec.KeyCluster] = strings.Replace(cfg[spec.KeyCluster], `"imageLoader":"minikube"`, `"imageLoader":"registry","imageRegistry":"localhost:5000"`, 1)
	}))
	assert.Equal(t, "localhost:5000/nasd:"+strings.SplitN(ref, ":", 2)[1], registry[names[0]], "the registry loader's reference")

	prebuilt := images(mustRun(t, "dev", func(cfg map[string]string) {
		cfg[spec.KeyCluster] = strings.Replace(cfg[spec.KeyCluster], `"imageLoader":"minikube"`, `"imageLoader":"none","image":"registry.example/nasd:1.0"`, 1)
	}))
	assert.Equal(t, "registry.example/nasd:1.0", prebuilt[names[0]])
}

// imagePullPolicy fits each loader: a loaded image is never pulled (a failed
// load used to send the kubelet to Docker Hub), a pushed or prebuilt one is.
func TestImagePullPolicyPerLoader(t *testing.T) {
	loader := func(repl string) func(cfg map[string]string) {
		return func(cfg map[string]string) {
			cfg[spec.KeyCluster] = strings.Replace(cfg[spec.KeyCluster], `"imageLoader":"minikube"`, repl, 1)
			require.Contains(t, cfg[spec.KeyCluster], repl)
		}
	}
	cases := []struct {
		name string
		edit func(cfg map[string]string)
		want string
	}{
		{"minikube (committed)", nil, "Never"},
		{"containerd", loader(`"imageLoader":"containerd"`), "Never"},
		{"registry", loader(`"imageLoader":"registry","imageRegistry":"localhost:5000"`), "IfNotPresent"},
		{"none, built image unloaded", loader(`"imageLoader":"none"`), "Never"},
		{"none, prebuilt image", loader(`"imageLoader":"none","image":"registry.example/nasd:1.0"`), "IfNotPresent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRun(t, "dev", tc.edit)
			require.NotEmpty(t, r.ofType(typeDeployment))
			for name, d := range r.ofType(typeDeployment) {
				c := path(d.Inputs, "spec", "template", "spec", "containers").ArrayValue()[0].ObjectValue()
				assert.Equal(t, tc.want, c["imagePullPolicy"].StringValue(), name)
			}
		})
	}
}

// The outputs say how to mount from outside the cluster: the clusterIP of
// mountCommand answers only inside it.
func TestOutputsMountFromOutsideTheCluster(t *testing.T) {
	cfg := committed(t)
	dev, ocp := mustRun(t, "dev", nil), mustRun(t, "ocp", nil)
	for _, s := range cfg.Servers {
		p := cfg.Cluster.Servers[s.Name]
		out := dev.outputs[s.Name]
		opts := strings.Join(cfg.MountOptions, ",")
		if s.ReadOnly {
			opts += ",ro"
		}
		assert.Equal(t, fmt.Sprintf("mount -t nfs -o %s,port=%d,mountport=%d <node-ip>:%s /mnt/%s", opts, p.NodePort, p.NodePort, s.ExportPath, s.VolumeName),
			out["externalMountCommand"], s.Name)
		assert.NotContains(t, out["externalMountCommand"], p.ClusterIP, "the clusterIP is unreachable from outside")
		assert.Equal(t, fmt.Sprintf("nfs://<node-ip>%s?nfsport=%d&mountport=%d", s.ExportPath, p.NodePort, p.NodePort), out["nfsURL"], s.Name)
		assert.EqualValues(t, p.PortmapperNodePort, deref(out["portmapperNodePort"]), s.Name)

		addr := cfg.External.Addresses[s.Name]
		o := ocp.outputs[s.Name]
		assert.Equal(t, o["mountCommand"], o["externalMountCommand"], "a physical NAS is mounted the same from anywhere")
		assert.Contains(t, o["externalMountCommand"], addr+":"+s.ExportPath)
		assert.Equal(t, "nfs://"+addr+s.ExportPath, o["nfsURL"])
		assert.Nil(t, deref(o["portmapperNodePort"]))
	}
}

func deref(v any) any {
	if p, ok := v.(*int); ok {
		if p == nil {
			return nil
		}
		return *p
	}
	return v
}

// TestFilesOwnerReachesNasd: cluster.filesOwner is what every nasd reports
// as the owner of the Windows files (--files-owner), and a malformed one
// fails with a message naming the field.
func TestFilesOwnerReachesNasd(t *testing.T) {
	withOwner := func(owner string) func(cfg map[string]string) {
		return func(cfg map[string]string) {
			var c map[string]any
			require.NoError(t, json.Unmarshal([]byte(cfg[spec.KeyCluster]), &c))
			c["filesOwner"] = owner
			b, _ := json.Marshal(c)
			cfg[spec.KeyCluster] = string(b)
		}
	}
	r := mustRun(t, "dev", withOwner("2345:678"))
	deployments := r.ofType(typeDeployment)
	require.Len(t, deployments, len(committed(t).Servers))
	for name, d := range deployments {
		args := path(d.Inputs, "spec", "template", "spec", "containers").ArrayValue()[0].ObjectValue()["args"].Mappable()
		assert.Contains(t, args, "--files-owner=2345:678", name)
	}
	for _, bad := range []string{"1000", "a:b", "1000:-1", "01:1"} {
		_, err := runStack(t, "dev", withOwner(bad))
		if assert.Error(t, err, bad) {
			assert.Contains(t, err.Error(), "cluster.filesOwner", bad)
		}
	}
}

// The image is built for the nodes' architecture (cluster.nodeArch, default
// this machine's) and the pods select nodes of it: the image used to be
// amd64 only, which an arm64 Minikube cannot run.
func TestImageFollowsTheNodeArchitecture(t *testing.T) {
	run := func(arch string) (map[string]string, map[string]string) {
		r := mustRun(t, "dev", func(cfg map[string]string) {
			if arch != "" {
				cfg[spec.KeyCluster] = strings.Replace(cfg[spec.KeyCluster], `{`, `{"nodeArch":"`+arch+`",`, 1)
			}
		})
		images, selectors := map[string]string{}, map[string]string{}
		for name, d := range r.ofType(typeDeployment) {
			pod := path(d.Inputs, "spec", "template", "spec")
			images[name] = pod.ObjectValue()["containers"].ArrayValue()[0].ObjectValue()["image"].StringValue()
			selectors[name] = path(pod.ObjectValue(), "nodeSelector", "kubernetes.io/arch").StringValue()
		}
		require.ElementsMatch(t, committed(t).names(), keys(images))
		return images, selectors
	}
	byArch := map[string]string{}
	for _, arch := range image.Arches {
		images, selectors := run(arch)
		for name := range images {
			assert.Equal(t, arch, selectors[name], "%s: pods select %s nodes", name, arch)
			assert.Equal(t, images[name], images[committed(t).names()[0]], "%s: one image", name)
		}
		for other, ref := range byArch {
			assert.NotEqual(t, ref, images[committed(t).names()[0]], "the %s and %s images differ", other, arch)
		}
		byArch[arch] = images[committed(t).names()[0]]
	}
	_, selectors := run("")
	for name, got := range selectors {
		assert.Equal(t, spec.DefaultNodeArch, got, "%s: default node architecture", name)
	}
}
