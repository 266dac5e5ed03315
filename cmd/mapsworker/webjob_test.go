package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"mapsworker/internal/azurite/procgroup"
	"mapsworker/internal/settings"
)

// TestWebJobFiles checks the files the Kudu WebJobs runner reads: run.cmd
// (CRLF, no byte-order mark, starts the binary beside it with `run` and
// passes its exit code on) and settings.job (real JSON types, or the runner
// silently falls back to its defaults).
func TestWebJobFiles(t *testing.T) {
	cmd, err := os.ReadFile("../../run.cmd")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(cmd, []byte{0xEF, 0xBB, 0xBF}) {
		t.Error("run.cmd starts with a byte-order mark")
	}
	for i, line := range bytes.SplitAfter(cmd, []byte("\n")) {
		if len(line) > 0 && !bytes.HasSuffix(line, []byte("\r\n")) {
			t.Errorf("run.cmd line %d does not end in CRLF: %q", i+1, line)
		}
	}
	text := string(cmd)
	for _, want := range []string{`"%~dp0mapsworker.exe" run`, "exit /b %ERRORLEVEL%"} {
		if !strings.Contains(text, want) {
			t.Errorf("run.cmd lacks %q", want)
		}
	}

	raw, err := os.ReadFile("../../settings.job")
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatalf("settings.job is not JSON: %v", err)
	}
	if v, ok := job["is_singleton"].(bool); !ok || v {
		t.Errorf("is_singleton = %#v, want the JSON boolean false (instances are competing consumers)", job["is_singleton"])
	}
	wait, ok := job["stopping_wait_time"].(float64)
	if !ok || wait != float64(int(wait)) {
		t.Fatalf("stopping_wait_time = %#v, want a JSON integer", job["stopping_wait_time"])
	}
	s, err := settings.Load(&settings.Options{Getenv: func(k string) string {
		if k == "AzureWebJobsStorage" {
			return "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The default drain must end, and the last deletes land, before the
	// runner kills the process tree.
	if budget := time.Duration(wait) * time.Second; s.DrainTimeout+10*time.Second > budget {
		t.Errorf("drain timeout %v leaves less than 10 s of stopping_wait_time %v", s.DrainTimeout, budget)
	}
}

// TestLinuxRunScript checks run.sh, the Linux WebJob's entry point: LF line
// endings and a bash shebang (the runner starts it with bash), and the binary
// started by exec from beside it.
func TestLinuxRunScript(t *testing.T) {
	sh, err := os.ReadFile("../../run.sh")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sh, []byte("\r")) || bytes.HasPrefix(sh, []byte{0xEF, 0xBB, 0xBF}) {
		t.Error("run.sh has a carriage return or a byte-order mark; bash would fail on it")
	}
	if !bytes.HasPrefix(sh, []byte("#!/bin/bash\n")) {
		t.Errorf("run.sh does not start with #!/bin/bash")
	}
	if !strings.Contains(string(sh), `exec "$dir/mapsworker" run`) {
		t.Errorf("run.sh does not exec the binary beside it with run")
	}
}

// TestLinuxRunScriptRuns runs run.sh as the Linux runner does, with bash,
// from another working directory, and with the binary's executable bit lost
// in unzipping: the worker starts, works a message, takes the runner's
// SIGTERM (run.sh execs it) and exits 0; with a bad setting, run.sh passes
// the worker's status 3 on.
func TestLinuxRunScriptRuns(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the Linux WebJob")
	}
	dir := t.TempDir()
	script, err := os.ReadFile("../../run.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "run.sh"), script)
	writeFile(t, filepath.Join(dir, "mapsworker"), bin) // 0600: no executable bit

	start := func(env []string) *proc {
		cmd := exec.Command("bash", filepath.Join(dir, "run.sh"))
		cmd.Dir = t.TempDir()
		cmd.Env = env
		// A worker left behind by a run.sh that does not exec it holds the
		// output open; the test should fail on bash's status, not hang.
		cmd.WaitDelay = 5 * time.Second
		p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = p.out, p.out
		g, err := procgroup.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		p.group = g
		go func() { p.err = cmd.Wait(); close(p.done) }()
		t.Cleanup(func() {
			g.Kill() // bash, the worker, and anything either left behind
			<-p.done
			g.Release()
		})
		return p
	}

	bad := start(append(os.Environ(), "MAPS_CONCURRENCY=0"))
	bad.wait(t, 30*time.Second)
	if bad.exitCode() != exitSettings || !strings.Contains(bad.out.String(), "mapsworker run: configuration: ") {
		t.Errorf("bad settings: exit %d, output %q", bad.exitCode(), bad.out.String())
	}

	te := newTestEnv(t)
	te.send(`{"id":"linux-1","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA"}`)
	p := start(te.environ())
	waitFor(t, 30*time.Second, "the result", func() bool { return te.result("geocode", "linux-1") != nil })
	// The runner signals the process it started, not a group: the signal
	// reaches the worker only because run.sh execs it.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 30*time.Second)
	if p.exitCode() != 0 || !strings.Contains(p.out.String(), "msg=stopped") {
		t.Errorf("after SIGTERM: exit %d, output:\n%s", p.exitCode(), p.out.String())
	}
}

// TestPackage cross-builds each WebJob as `make package` does and checks
// the zip: the entry point, settings.job and the binary at its root, the
// binary for the platform, and on Linux the executable bits.
func TestPackage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cross-build")
	}
	cases := []struct {
		goos, entry, exe, magic string
	}{
		{"windows", "run.cmd", "mapsworker.exe", "MZ"},
		{"linux", "run.sh", "mapsworker", "\x7fELF"},
	}
	for _, tc := range cases {
		t.Run(tc.goos, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, tc.exe)
			build := exec.Command("go", "build", "-o", exe, ".")
			build.Env = append(os.Environ(), "GOOS="+tc.goos, "GOARCH=amd64", "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("%s build: %v\n%s", tc.goos, err, out)
			}
			zipPath := filepath.Join(dir, "webjob.zip")
			mk := exec.Command("go", "run", "../webjobzip", zipPath, "../../"+tc.entry, "../../settings.job", exe)
			if out, err := mk.CombinedOutput(); err != nil {
				t.Fatalf("webjobzip: %v\n%s", err, out)
			}
			zr, err := zip.OpenReader(zipPath)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			var names []string
			modes := map[string]os.FileMode{}
			for _, f := range zr.File {
				names = append(names, f.Name)
				modes[f.Name] = f.Mode().Perm()
			}
			if want := tc.entry + ",settings.job," + tc.exe; strings.Join(names, ",") != want {
				t.Errorf("zip holds %v, want %s", names, want)
			}
			head := make([]byte, len(tc.magic))
			f, _ := zr.File[2].Open()
			io.ReadFull(f, head)
			f.Close()
			if string(head) != tc.magic {
				t.Errorf("%s is not a %s executable", tc.exe, tc.goos)
			}
			if tc.goos == "linux" && (modes[tc.entry] != 0o755 || modes[tc.exe] != 0o755 || modes["settings.job"] != 0o644) {
				t.Errorf("modes %v, want run.sh and mapsworker 0755, settings.job 0644", modes)
			}
		})
	}
}
