// Package procgroup starts a child process in a group of its own, so that
// the child and whatever it starts can be stopped together, and so that the
// group ends with its parent where the operating system offers that.
//
// On Linux the group is a process group whose leader gets SIGKILL when the
// parent dies (Pdeathsig). On macOS and the BSDs it is a process group; a
// parent killed with SIGKILL leaves it running. On Windows it is a job
// object that the system closes, killing every process in it, when the
// parent exits for any reason.
package procgroup

import (
	"errors"
	"os/exec"
)

// Group is a started child process and the processes it starts.
type Group struct {
	cmd *exec.Cmd
	sys sysGroup
}

// Start starts cmd in a new group. cmd.SysProcAttr must be nil: Start sets
// it.
func Start(cmd *exec.Cmd) (*Group, error) {
	if cmd.SysProcAttr != nil {
		return nil, errors.New("procgroup: cmd.SysProcAttr is already set")
	}
	g := &Group{cmd: cmd}
	if err := g.sys.start(cmd); err != nil {
		return nil, err
	}
	return g, nil
}

// Interrupt asks the group to stop: SIGTERM to every process of the group on
// Unix, CTRL_BREAK_EVENT on Windows (which Go programs see as os.Interrupt).
func (g *Group) Interrupt() error { return g.sys.interrupt(g.cmd.Process.Pid) }

// Kill ends every process of the group at once.
func (g *Group) Kill() error { return g.sys.kill(g.cmd.Process.Pid) }

// Release frees what the group holds. Call it after the leader has exited;
// on Windows it also ends any process of the group still running.
func (g *Group) Release() error { return g.sys.release() }
