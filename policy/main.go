// Command policy is the nas-topology policy pack (Pulumi CrossGuard, Go,
// policyx): it refuses PersistentVolumes and claims that drift from the shared
// config of Pulumi.yaml, nasd pods that are not locked down, and clashing node
// ports, clusterIPs and fsids. It computes the expected volumes with the
// program's own code (components/spec, components.VolumeFor) from the same
// Pulumi.yaml, so the program and the pack cannot disagree.
//
// Run it with `pulumi preview --policy-pack policy` from the project root.
package main

import (
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"
)

func main() {
	err := policyx.Main(func(ctx *pulumi.Context) (policyx.PolicyPack, error) {
		return newPack(ctx.RootDirectory(), readStackConfig(ctx.GetConfig)).PolicyPack()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
