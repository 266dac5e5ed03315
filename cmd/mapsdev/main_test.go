package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"mapsworker/internal/azurite/procgroup"
)

// `mapsdev emulate` prints the settings that point the worker at it, keeps
// its certificate where asked, serves until interrupted and then exits 0.
func TestEmulate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	bin := filepath.Join(dir, "mapsdev"+exe)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build mapsdev: %v\n%s", err, out)
	}
	envFile := filepath.Join(dir, "emulator.env")
	cmd := exec.Command(bin, "emulate", "--cert-dir", dir, "--env-file", envFile)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	g, err := procgroup.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(); g.Release() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	env := map[string]string{}
	var printed []string
	for len(printed) < 5 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("emulate ended after %q", printed)
			}
			printed = append(printed, l)
			k, v, _ := strings.Cut(l, "=")
			env[k] = v
		case <-time.After(30 * time.Second):
			t.Fatalf("emulate printed %q within 30 s", printed)
		}
	}
	for _, k := range []string{"AZURE_MAPS_ENDPOINT", "AZURE_MAPS_CLIENT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "SSL_CERT_FILE"} {
		if env[k] == "" {
			t.Errorf("emulate did not print %s: %q", k, printed)
		}
	}
	if !strings.HasPrefix(env["AZURE_MAPS_ENDPOINT"], "https://127.0.0.1:") {
		t.Errorf("the emulator is at %s, want https on loopback", env["AZURE_MAPS_ENDPOINT"])
	}
	if filepath.Dir(env["SSL_CERT_FILE"]) != dir {
		t.Errorf("certificate at %s, want it in %s", env["SSL_CERT_FILE"], dir)
	}
	if _, err := os.Stat(env["SSL_CERT_FILE"]); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if b, err := os.ReadFile(envFile); err != nil || string(b) != strings.Join(printed, "\n")+"\n" {
		t.Errorf("--env-file holds %q (%v), want what was printed", b, err)
	}

	if err := g.Interrupt(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after an interrupt: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulate did not stop when interrupted")
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	if code := runMain(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "  emulate ") {
		t.Errorf("no command: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := runMain([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := runMain([]string{"emulate", "--no-such-flag"}, &out, &errOut); code != 2 {
		t.Errorf("a bad flag: exit %d, %q", code, errOut.String())
	}
	if out.Len() != 0 {
		t.Errorf("printed to stdout: %q", out.String())
	}
}
