//go:build unix && !linux

package procgroup

import "syscall"

// sysProcAttr makes the child lead a new process group. These systems have
// no portable parent-death signal.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
