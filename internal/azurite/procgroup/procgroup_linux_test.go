package procgroup

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startShellGroup starts a shell leading a group with two background
// children, and returns the group and the pids of all three.
func startShellGroup(t *testing.T) (*Group, *exec.Cmd, []int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `sleep 300 & echo $!; sleep 300 & echo $!; wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(); cmd.Wait() })
	pids := []int{cmd.Process.Pid}
	sc := bufio.NewScanner(out)
	for len(pids) < 3 && sc.Scan() {
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child pid %q: %v", sc.Text(), err)
		}
		pids = append(pids, pid)
	}
	if len(pids) != 3 {
		t.Fatalf("got pids %v, want the shell and two children", pids)
	}
	for _, pid := range pids[1:] {
		if pgid, err := syscall.Getpgid(pid); err != nil || pgid != cmd.Process.Pid {
			t.Fatalf("child %d is in group %d (%v), want the shell's %d", pid, pgid, err, cmd.Process.Pid)
		}
	}
	return g, cmd, pids
}

// running reports whether pid is a process that has not ended (a zombie
// waiting for its parent to reap it has ended).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitEnded fails the test unless every pid has ended within limit.
func waitEnded(t *testing.T, limit time.Duration, pids []int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for _, pid := range pids {
		for running(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs %v later (of %v)", pid, limit, pids)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestStopEndsTheWholeGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*Group) error
	}{
		{"Interrupt", (*Group).Interrupt},
		{"Kill", (*Group).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, cmd, pids := startShellGroup(t)
			for _, pid := range pids {
				if !running(pid) {
					t.Fatalf("process %d is not running before the stop", pid)
				}
			}
			if err := tc.stop(g); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			waitEnded(t, 5*time.Second, pids)
			if err := tc.stop(g); err != nil {
				t.Errorf("a second %s of an ended group: %v", tc.name, err)
			}
			if err := g.Release(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStartRefusesSysProcAttr(t *testing.T) {
	cmd := exec.Command("true")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if _, err := Start(cmd); err == nil {
		t.Fatal("Start accepted a command with SysProcAttr set")
	}
	if cmd.Process != nil {
		t.Fatal("Start started the command anyway")
	}
}

// TestLeaderDiesWithParent kills a parent process with SIGKILL, which runs
// no code of its own, and sees the group leader it started end too.
func TestLeaderDiesWithParent(t *testing.T) {
	if os.Getenv("PROCGROUP_TEST_PARENT") == "1" {
		cmd := exec.Command("sleep", "300")
		if _, err := Start(cmd); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		select {} // until killed
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestLeaderDiesWithParent$")
	parent.Env = append(os.Environ(), "PROCGROUP_TEST_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Process.Kill(); parent.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	leader, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		t.Fatalf("parent said %q (%v)", line, err)
	}
	t.Cleanup(func() { syscall.Kill(leader, syscall.SIGKILL) })
	if !running(leader) {
		t.Fatalf("leader %d is not running", leader)
	}
	parent.Process.Kill()
	parent.Wait()
	waitEnded(t, 5*time.Second, []int{leader})
}
