// Command paritycheck compares the PVs/PVCs planned by two `pulumi preview
// --json` outputs (dev, ocp) and prints every field that differs but
// nfs.server. Exit status 1 when there is a difference.
//
//	paritycheck dev-preview.json ocp-preview.json
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nas-topology/nas-topology/tools/parity"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: paritycheck DEV_PREVIEW.json OCP_PREVIEW.json")
		os.Exit(2)
	}
	dev, err := load(os.Args[1])
	if err == nil {
		var ocp parity.Objects
		if ocp, err = load(os.Args[2]); err == nil {
			os.Exit(report(dev, ocp))
		}
	}
	fmt.Fprintln(os.Stderr, "paritycheck:", err)
	os.Exit(2)
}

func load(path string) (parity.Objects, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := parity.FromPreview(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s: the preview plans no PersistentVolume or PersistentVolumeClaim", path)
	}
	return objs, nil
}

func report(dev, ocp parity.Objects) int {
	diffs := parity.Compare(dev, ocp)
	if len(diffs) == 0 {
		pvs := 0
		for k := range dev {
			if strings.HasPrefix(k, "PersistentVolume/") {
				pvs++
			}
		}
		fmt.Printf("parity: OK: %d PersistentVolumes and %d PersistentVolumeClaims planned identically by dev and ocp (only %s differs)\n",
			pvs, len(dev)-pvs, parity.Exempt)
		return 0
	}
	fmt.Printf("parity: FAILED: %d field(s) differ between dev and ocp:\n", len(diffs))
	for _, d := range diffs {
		fmt.Println("  " + d.String())
	}
	return 1
}
