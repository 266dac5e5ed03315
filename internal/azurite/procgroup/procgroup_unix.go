//go:build unix

package procgroup

import (
	"errors"
	"os/exec"
	"syscall"
)

type sysGroup struct{}

func (sysGroup) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = sysProcAttr()
	return cmd.Start()
}

// A negative pid names the process group the child leads.
func (sysGroup) interrupt(pid int) error { return signalGroup(pid, syscall.SIGTERM) }
func (sysGroup) kill(pid int) error      { return signalGroup(pid, syscall.SIGKILL) }
func (sysGroup) release() error          { return nil }

func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // the group has already ended
	}
	return err
}
