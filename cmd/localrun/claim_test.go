package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestClaim(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".run")
	release, err := claim(dir, ".run")
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pid")
	if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file holds %q, want %d", b, os.Getpid())
	}
	release()
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("pid file after release: %v", err)
	}

	// A live process holds it: refused, naming the process and the way out.
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getppid())+"\n"), 0o644)
	if _, err := claim(dir, ".run"); err == nil ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getppid())) || !strings.Contains(err.Error(), "-state .run-2") {
		t.Fatalf("claim of a folder in use: %v", err)
	}

	// A process that has ended left it: taken over.
	done := exec.Command(os.Args[0], "-test.run=^$")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pidFile, []byte(strconv.Itoa(done.Process.Pid)+"\n"), 0o644)
	release, err = claim(dir, ".run")
	if err != nil {
		t.Fatalf("claim of a stale folder: %v", err)
	}
	defer release()
	if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file holds %q after the takeover, want %d", b, os.Getpid())
	}
}
