// Command nas-topology is the Pulumi program: `pulumi up --stack dev` builds the
// NAS topology on Minikube, `pulumi preview --stack ocp` plans production's
// PVs/PVCs. Everything lives in components/; this only starts it.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/nas-topology/nas-topology/components"
)

func main() {
	// Pulumi runs the program in the project directory, next to Pulumi.yaml.
	pulumi.Run(components.Program("."))
}
