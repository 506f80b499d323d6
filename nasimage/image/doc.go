// Package image builds the nasd container image in pure Go and loads it into a
// cluster.
//
// Build compiles nasimage/cmd/nasd as a static linux binary (CGO_ENABLED=0,
// -trimpath, no VCS stamp, no build id) and assembles an OCI image around it
// with go-containerregistry: one layer (/nasd, /etc/passwd and /etc/group with
// the nasd user 65532, /tmp) on an empty base, every timestamp the Unix epoch,
// user 65532:65532, entrypoint /nasd. No Docker daemon is involved and the
// result is reproducible: the same source, Go toolchain and GOARCH give the
// same digest, in any checkout directory.
//
// The image reference is derived from the digest
// (docker.io/library/nasd:sha-<first 12 hex of the manifest digest>), so a code
// change rolls the pods and no change leaves them alone, and a tag (rather than
// @sha256:) still resolves after `minikube image load`, which does not keep
// manifest digests.
//
// Results are cached by a hash of the inputs: the .go and embedded files of
// every main-module package nasd depends on (from `go list -deps`), go.mod,
// go.sum, the Go version and GOARCH. A second Build without a source change
// runs `go list` only, not `go build`.
//
// Load puts a built image where the cluster can pull it: minikube, containerd,
// a registry, or nowhere (a prebuilt reference).
package image
