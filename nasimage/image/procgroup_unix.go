//go:build unix

package image

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel makes a cancelled context stop the go tool and every
// compiler and linker it started: they run in their own process group,
// which is killed as a whole (killing the go tool alone leaves its children
// compiling).
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
