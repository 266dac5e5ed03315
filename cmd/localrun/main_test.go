package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"mapsworker/internal/azurite/procgroup"
)

// TestMakeRun runs `make run`'s program as a user would: it prints a result
// for every sample, keeps running, and on Ctrl-C stops every process it
// started.
func TestMakeRun(t *testing.T) {
	dir := t.TempDir()
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	bin := filepath.Join(dir, "mapsworker"+exe)
	if out, err := exec.Command("go", "build", "-o", bin, "../mapsworker").CombinedOutput(); err != nil {
		t.Fatalf("build mapsworker: %v\n%s", err, out)
	}
	// The emulator is mapsdev's, found beside the worker's binary.
	dev := filepath.Join(dir, "mapsdev"+exe)
	if out, err := exec.Command("go", "build", "-o", dev, "../mapsdev").CombinedOutput(); err != nil {
		t.Fatalf("build mapsdev: %v\n%s", err, out)
	}
	localrun := filepath.Join(dir, "localrun"+exe)
	if out, err := exec.Command("go", "build", "-o", localrun, ".").CombinedOutput(); err != nil {
		t.Fatalf("build localrun: %v\n%s", err, out)
	}
	root, _ := filepath.Abs("../..")
	state := filepath.Join(dir, "state")
	cmd := exec.Command(localrun, "-bin", bin, "-samples", filepath.Join(root, "docs", "samples.jsonl"), "-state", state)
	cmd.Dir = root
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	// Its own group, so that on Windows a CTRL_BREAK (the Ctrl-C that can be
	// sent to another process) reaches it alone.
	g, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(); g.Release() })
	ctrlC := func() error {
		if runtime.GOOS == "windows" {
			return g.Interrupt()
		}
		return cmd.Process.Signal(os.Interrupt)
	}

	var table []string
	var ports []string
	portRE := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	sc := bufio.NewScanner(stdout)
	ready := make(chan struct{})
	go func() {
		inTable := false
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "  storage ") || strings.HasPrefix(line, "  maps ") {
				ports = append(ports, portRE.FindString(line))
			}
			switch {
			case strings.HasPrefix(line, "KIND "):
				inTable = true
			case inTable && strings.TrimSpace(line) == "":
				inTable = false
			case inTable:
				table = append(table, line)
			case strings.HasPrefix(line, "Press Ctrl-C"):
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(120 * time.Second):
		t.Fatal("make run did not get to its table")
	}
	want := map[string]string{"order-42": "succeeded", "order-43": "succeeded", "pin-7": "succeeded",
		"trip-9": "succeeded", "truck-3": "succeeded", "order-44": "failed"}
	if len(table) != len(want) {
		t.Fatalf("table has %d rows, want %d:\n%s", len(table), len(want), strings.Join(table, "\n"))
	}
	for _, row := range table {
		f := strings.Fields(row)
		if len(f) < 3 || want[f[1]] != f[2] {
			t.Errorf("row %q", row)
		}
	}

	if pids, ok := processesRunning(bin); ok && len(pids) != 1 {
		t.Fatalf("want the worker running before Ctrl-C, found %v", pids)
	}
	if pids, ok := processesRunning(dev); ok && len(pids) != 1 {
		t.Fatalf("want the emulator (mapsdev emulate) running before Ctrl-C, found %v", pids)
	}
	if _, err := os.Stat(filepath.Join(state, "env")); err != nil {
		t.Errorf("no settings file while it runs: %v", err)
	}

	// A second make run beside the first refuses at once, saying why.
	second := exec.Command(localrun, "-bin", bin, "-state", state)
	second.Dir = root
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another make run (pid "+strconv.Itoa(cmd.Process.Pid)+") is using "+state) {
		t.Errorf("second make run: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "starting") {
		t.Errorf("the second make run started something:\n%s", out)
	}
	if err := ctrlC(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after Ctrl-C: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("make run did not stop after Ctrl-C")
	}
	if pids, _ := processesRunning(bin); len(pids) > 0 {
		t.Errorf("the worker is still running after Ctrl-C: pids %v", pids)
	}
	if pids, _ := processesRunning(dev); len(pids) > 0 {
		t.Errorf("the emulator is still running after Ctrl-C: pids %v", pids)
	}
	for _, addr := range ports {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listens after Ctrl-C", addr)
		}
	}
	for _, f := range []string{"env", "pid"} {
		if _, err := os.Stat(filepath.Join(state, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after Ctrl-C (%v)", f, err)
		}
	}
	if len(ports) != 2 {
		t.Errorf("found the ports %v, want storage and maps", ports)
	}
}

// processesRunning lists the processes whose command line starts with
// path, where /proc tells (Linux); ok is false elsewhere, where the closed
// ports are the test's evidence.
func processesRunning(path string) (pids []string, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(cmdline), path+"\x00") {
			pids = append(pids, e.Name())
		}
	}
	return pids, true
}
