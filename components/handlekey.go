package components

import (
	"crypto/rand"
	"encoding/base64"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components/spec"
)

// HandleKeySize is the length of a handle key in bytes (nasd refuses fewer than 32).
const HandleKeySize = 32

// HandleKeyMode is the file mode of the mounted key. The kubelet writes
// Secret files owned by root; with the pod's fsGroup it makes them group
// fsGroup and adds group read to read-only files (0400 becomes 0440). nasd
// runs as runAsUser with fsGroup among its groups, so it reads the key
// through the group bit; nobody else can. 0440 is stated rather than
// relying on that widening, so the manifest says what the node holds.
const HandleKeyMode = 0o440

// handleKeyVolume is the pod volume holding the Secret.
const handleKeyVolume = "handle-key"

// HandleKeySecretName is the Secret of a server's handle key, in the NAS namespace.
func HandleKeySecretName(srv spec.Server) string { return srv.Name + "-handle-key" }

// NewHandleKey returns a fresh random key, base64 as Secret data wants it.
func NewHandleKey() (string, error) {
	key := make([]byte, HandleKeySize)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// HandleKeySecretArgs renders the Secret holding a server's handle key
// (base64). The value is a Pulumi secret, so it is encrypted in the state and
// never printed.
func HandleKeySecretArgs(namespace string, srv spec.Server, keyBase64 string) *corev1.SecretArgs {
	return &corev1.SecretArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(HandleKeySecretName(srv)),
			Namespace: pulumi.String(namespace),
			Labels:    pulumi.ToStringMap(workloadLabels(srv)),
		},
		Type: pulumi.String("Opaque"),
		Data: pulumi.StringMap{
			HandleKeyFile: pulumi.ToSecret(pulumi.String(keyBase64)).(pulumi.StringOutput),
		},
	}
}

// handleKeyOptions make the Secret a create-once resource: every run of the
// program draws a new random key, and ignoring changes to the data keeps the
// first one for good (a new key would make every client's handles stale).
// Rotate on purpose with `pulumi up --replace <urn>`.
func handleKeyOptions() pulumi.ResourceOption {
	return pulumi.IgnoreChanges([]string{"data", "stringData"})
}

// newHandleKeySecret registers a server's handle key Secret.
func newHandleKeySecret(ctx *pulumi.Context, namespace string, srv spec.Server, opts []pulumi.ResourceOption) (*corev1.Secret, error) {
	key, err := NewHandleKey()
	if err != nil {
		return nil, err
	}
	return corev1.NewSecret(ctx, HandleKeySecretName(srv), HandleKeySecretArgs(namespace, srv, key),
		append(opts, handleKeyOptions())...)
}
