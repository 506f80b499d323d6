// Command nasd is the NAS program: it serves one directory over NFSv3 (with
// MOUNT and a portmapper) and runs the sync engine beside it.
//
//	nasd serve --export /export --state /var/lib/nasd ...
//
// `nasd serve --help` lists every flag and its environment variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

const usage = `nasd: NFS server and Windows sync for nas-topology.

Usage:
  nasd serve [flags]   serve an export (see nasd serve --help)
`

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		err := serve(ctx, args[1:], stderr, nil)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "nasd serve: %v\n", err)
		return 1
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return 0
	}
	fmt.Fprintf(stderr, "nasd: unknown command %q\n\n%s", args[0], usage)
	return 2
}
