package procgroup

import "syscall"

// sysProcAttr makes the child lead a new process group, and has the kernel
// kill it when the thread that started it ends: Go only ends a thread with
// its process, unless a goroutine locked to it returns.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
