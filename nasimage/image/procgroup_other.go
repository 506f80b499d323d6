//go:build !unix

package image

import "os/exec"

// killGroupOnCancel: elsewhere the context kills the go tool only.
func killGroupOnCancel(*exec.Cmd) {}
