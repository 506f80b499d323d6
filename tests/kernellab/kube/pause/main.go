// Command pause is the node's sandbox ("pause") image's only program: it
// holds the pod's namespaces open until kubelet stops the sandbox. Built
// static on the host: the node pulls no image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
