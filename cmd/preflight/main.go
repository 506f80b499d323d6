// Command preflight checks what a stack needs from this machine before
// `make up` hands it to pulumi: the kube context and the image loader's tool.
// It prints the first problem as one sentence and exits 1.
//
//	preflight [-dir .] STACK
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nas-topology/nas-topology/components/preflight"
	"github.com/nas-topology/nas-topology/components/spec"
)

func main() {
	dir := flag.String("dir", ".", "project directory (Pulumi.yaml and the stack files)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: preflight [-dir DIR] STACK")
		os.Exit(2)
	}
	stack := flag.Arg(0)
	raw, err := spec.MergedConfig(*dir, stack)
	if err != nil {
		fail(fmt.Errorf("reading the config of stack %s: %w", stack, err))
	}
	cfg, err := spec.Load(func(k string) (string, bool) { v, ok := raw[k]; return v, ok })
	if err != nil {
		fail(err)
	}
	if err := preflight.First(preflight.Run(cfg, os.LookupEnv)); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
