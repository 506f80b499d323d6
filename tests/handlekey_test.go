package tests

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components"
)

const handleKeyFlag = "--handle-key-file="

// unsecret is the plain value inside a Pulumi secret (v itself otherwise).
func unsecret(v resource.PropertyValue) resource.PropertyValue {
	if v.IsSecret() {
		return v.SecretValue().Element
	}
	return v
}

// handleKey is the base64 key of a handle key Secret, which must be a Pulumi
// secret (encrypted in the state, never printed).
func handleKey(t *testing.T, s registered) string {
	t.Helper()
	v := path(s.Inputs, "data")
	if !v.IsSecret() {
		v = v.ObjectValue()[components.HandleKeyFile]
	}
	require.True(t, v.IsSecret(), "%s: the key must be a Pulumi secret", s.Name)
	v = unsecret(v)
	if v.IsObject() {
		v = v.ObjectValue()[components.HandleKeyFile]
	}
	return unsecret(v).StringValue()
}

// Every in-cluster server has a handle key Secret of its own: 32 random bytes,
// a Pulumi secret, created once (later runs draw a new key, which must be ignored).
func TestEveryServerHasItsHandleKeySecret(t *testing.T) {
	dev := mustRun(t, "dev", nil)
	secrets := dev.ofType(typeSecret)
	cfg := committed(t)
	serverNames := cfg.names()
	var want []string
	for _, name := range serverNames {
		want = append(want, name+"-handle-key")
	}
	assert.ElementsMatch(t, want, keys(secrets))

	seen := map[string]string{}
	for _, name := range serverNames {
		s := secrets[name+"-handle-key"]
		assert.Equal(t, name+"-handle-key", path(s.Inputs, "metadata", "name").StringValue())
		assert.Equal(t, cfg.NasNamespace, path(s.Inputs, "metadata", "namespace").StringValue())
		key, err := base64.StdEncoding.DecodeString(handleKey(t, s))
		require.NoError(t, err, name)
		assert.Len(t, key, 32, "%s: nasd wants at least 32 bytes", name)
		assert.NotEqual(t, make([]byte, 32), key, name)
		if other, dup := seen[string(key)]; dup {
			t.Errorf("%s and %s share a handle key", name, other)
		}
		seen[string(key)] = name
		assert.Subset(t, s.IgnoreChanges, []string{"data", "stringData"}, "%s: a later up must never rotate the key", name)
	}

	// Each run draws a new key: only IgnoreChanges keeps the first one.
	again := mustRun(t, "dev", nil).ofType(typeSecret)
	first := secrets[serverNames[0]+"-handle-key"]
	second := again[serverNames[0]+"-handle-key"]
	assert.NotEqual(t, handleKey(t, first), handleKey(t, second))

	// Production runs no nasd: no Secrets.
	assert.Empty(t, mustRun(t, "ocp", nil).ofType(typeSecret))
}

// nasd reads its key from the Secret, mounted read-only, and waits for it.
func TestNasdMountsItsHandleKeyReadOnly(t *testing.T) {
	dev := mustRun(t, "dev", nil)
	secrets := dev.ofType(typeSecret)
	for name, d := range dev.ofType(typeDeployment) {
		t.Run(name, func(t *testing.T) {
			pod := path(d.Inputs, "spec", "template", "spec").ObjectValue()
			ctr := path(pod, "containers").ArrayValue()[0].ObjectValue()

			var keyFile string
			for _, a := range path(ctr, "args").ArrayValue() {
				if s, ok := strings.CutPrefix(a.StringValue(), handleKeyFlag); ok {
					keyFile = s
				}
			}
			require.NotEmpty(t, keyFile, "nasd has no %s", handleKeyFlag)

			var secretVolume string
			var mode float64
			for _, v := range path(pod, "volumes").ArrayValue() {
				if sec := v.ObjectValue()["secret"]; sec.IsObject() {
					require.Empty(t, secretVolume, "one secret volume")
					secretVolume = v.ObjectValue()["name"].StringValue()
					assert.Equal(t, name+"-handle-key", sec.ObjectValue()["secretName"].StringValue())
					mode = sec.ObjectValue()["defaultMode"].NumberValue()
				}
			}
			require.NotEmpty(t, secretVolume, "no secret volume")

			var mounted bool
			for _, m := range path(ctr, "volumeMounts").ArrayValue() {
				mo := m.ObjectValue()
				if mo["name"].StringValue() != secretVolume {
					continue
				}
				mounted = true
				assert.True(t, mo["readOnly"].IsBool() && mo["readOnly"].BoolValue(), "the key is mounted read-only")
				assert.Equal(t, mo["mountPath"].StringValue()+"/"+components.HandleKeyFile, keyFile, "the flag names the mounted key")
			}
			require.True(t, mounted, "the secret volume is not mounted")

			psc := path(pod, "securityContext").ObjectValue()
			uid, gid := int(psc["runAsUser"].NumberValue()), int(psc["runAsGroup"].NumberValue())
			var fsGroup *int
			if g := psc["fsGroup"]; g.IsNumber() {
				fsGroup = new(int(g.NumberValue()))
			}
			assert.True(t, kubeletSecretFileReadable(int(mode), fsGroup, uid, gid), "uid %d (gid %d, fsGroup %v) cannot read a %#o key", uid, gid, fsGroup, int(mode))
			assert.Zero(t, int(mode)&0o007, "others must not read the key")
			assert.Zero(t, int(mode)&0o222, "the key is read-only")

			assert.Contains(t, d.Dependencies, secretURN(secrets[name+"-handle-key"]), "the Deployment waits for its Secret")
		})
	}
}

// kubeletSecretFileReadable models what the kubelet does to a file of a
// Secret volume (pkg/volume/secret, volume.SetVolumeOwnership): it is owned
// by root; with an fsGroup, its group becomes fsGroup and read-only files get
// group read added. Can a process of uid (groups gid and fsGroup) read it?
func kubeletSecretFileReadable(mode int, fsGroup *int, uid, gid int) bool {
	owner, group := 0, 0
	if fsGroup != nil {
		group = *fsGroup
		mode |= 0o440
	}
	groups := []int{gid}
	if fsGroup != nil {
		groups = append(groups, *fsGroup)
	}
	switch {
	case uid == owner:
		return mode&0o400 != 0
	case slices.Contains(groups, group):
		return mode&0o040 != 0
	}
	return mode&0o004 != 0
}

func TestKubeletSecretFileModel(t *testing.T) {
	fsGroup := 65532
	assert.True(t, kubeletSecretFileReadable(0o400, &fsGroup, 65532, 65532), "fsGroup widens 0400 to 0440")
	assert.True(t, kubeletSecretFileReadable(0o440, &fsGroup, 65532, 65532))
	assert.False(t, kubeletSecretFileReadable(0o400, nil, 65532, 65532), "root-owned 0400 without fsGroup: unreadable")
	assert.False(t, kubeletSecretFileReadable(0o440, nil, 65532, 65532), "group root")
	assert.True(t, kubeletSecretFileReadable(0o444, nil, 65532, 65532))
}

// secretURN is the URN the mock gives a Secret, as DependsOn lists it.
func secretURN(s registered) string {
	return "urn:pulumi:dev::nas-topology::" + typeNasServer + "$" + typeSecret + "::" + s.Name
}
