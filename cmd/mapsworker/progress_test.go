//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair, so that a child's stderr is a
// terminal (Linux ioctls; no dependency for a test).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("ptsname: %v", e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestEnqueueProgressOnTerminal: a large input sent from a terminal draws a
// progress bar on stderr, ending at the total; the ids still go to stdout.
func TestEnqueueProgressOnTerminal(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	var in strings.Builder
	const n = 150
	for i := range n {
		fmt.Fprintf(&in, `{"id":"pb-%d","kind":"geocode","query":"%d Main St"}`+"\n", i, i)
	}
	master, slave := openPTY(t)
	c := exec.Command(binary(t), "enqueue", "--file", "-")
	c.Env = te.environ()
	c.Stdin = strings.NewReader(in.String())
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, slave
	var term bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&term, master); close(copied) }()
	if err := c.Run(); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	slave.Close()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	if got := strings.Count(out.String(), "\n"); got != n {
		t.Errorf("%d ids on stdout, want %d", got, n)
	}
	shown := term.String()
	if !strings.Contains(shown, "[") || !strings.Contains(shown, fmt.Sprintf("%d/%d", n, n)) || !strings.Contains(shown, "#") {
		t.Errorf("no progress bar reaching %d/%d on the terminal: %q", n, n, shown)
	}
	if te.queueDepth() != n {
		t.Errorf("queue depth %d", te.queueDepth())
	}
}
