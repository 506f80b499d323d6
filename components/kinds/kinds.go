// Package kinds names the Pulumi type tokens of the Kubernetes resources the
// program registers, for the code that reads them back: the policy pack and
// the parity and drift tools. (The tests spell them out on purpose: they
// check what the program registers, not what this package says.)
package kinds

const (
	PersistentVolume      = "kubernetes:core/v1:PersistentVolume"
	PersistentVolumeClaim = "kubernetes:core/v1:PersistentVolumeClaim"
	Service               = "kubernetes:core/v1:Service"
	Pod                   = "kubernetes:core/v1:Pod"
	Secret                = "kubernetes:core/v1:Secret"
	Namespace             = "kubernetes:core/v1:Namespace"
	Deployment            = "kubernetes:apps/v1:Deployment"
)
