// Command driftreport prints, from `pulumi preview --refresh --json` of the ocp
// stack, only the PV/PVC fields where production differs from the shared
// definition. Exit status 1 when there is drift.
//
//	pulumi preview --stack ocp --refresh --json | driftreport
package main

import (
	"fmt"
	"os"

	"github.com/nas-topology/nas-topology/tools/parity"
)

func main() {
	drifts, err := parity.DriftFromPreview(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "driftreport:", err)
		os.Exit(2)
	}
	if len(drifts) == 0 {
		fmt.Println("drift: none: every PersistentVolume and PersistentVolumeClaim matches the shared definition")
		return
	}
	fmt.Printf("drift: %d field(s) of production differ from the shared definition:\n", len(drifts))
	for _, d := range drifts {
		fmt.Println("  " + d.String())
	}
	os.Exit(1)
}
