package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWebJobFiles checks the files the Kudu WebJobs runner reads: run.cmd
// (CRLF, no byte-order mark, starts the binary beside it with `run` and
// passes its exit code on) and settings.job (real JSON types, or the runner
// silently falls back to its defaults).
func TestWebJobFiles(t *testing.T) {
	cmd, err := os.ReadFile("../../../run.cmd")
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

	raw, err := os.ReadFile("../../../settings.job")
	if err != nil {
		t.Fatal(err)
	}
	var settings map[string]any
	if err := json.Unmarshal(raw, &settings); err != nil {
		t.Fatalf("settings.job is not JSON: %v", err)
	}
	if v, ok := settings["is_singleton"].(bool); !ok || v {
		t.Errorf("is_singleton = %#v, want the JSON boolean false (instances are competing consumers)", settings["is_singleton"])
	}
	wait, ok := settings["stopping_wait_time"].(float64)
	if !ok || wait != float64(int(wait)) {
		t.Fatalf("stopping_wait_time = %#v, want a JSON integer", settings["stopping_wait_time"])
	}
	s, err := loadSettings(func(k string) string {
		if k == "AzureWebJobsStorage" {
			return "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;"
		}
		return ""
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	// The default drain must end, and the last deletes land, before the
	// runner kills the process tree.
	if budget := time.Duration(wait) * time.Second; s.DrainTimeout+10*time.Second > budget {
		t.Errorf("drain timeout %v leaves less than 10 s of stopping_wait_time %v", s.DrainTimeout, budget)
	}
}

// TestPackage cross-builds the WebJob as `make package` does and checks the
// zip holds run.cmd, settings.job and mapsworker.exe at its root.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-build")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "mapsworker.exe")
	build := exec.Command("go", "build", "-o", exe, ".")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("windows build: %v\n%s", err, out)
	}
	zipPath := filepath.Join(dir, "webjob.zip")
	mk := exec.Command("go", "run", "../webjobzip", zipPath, "../../../run.cmd", "../../../settings.job", exe)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("webjobzip: %v\n%s", err, out)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "run.cmd,settings.job,mapsworker.exe" {
		t.Errorf("zip holds %v", names)
	}
	head := make([]byte, 2)
	f, _ := zr.File[2].Open()
	f.Read(head)
	f.Close()
	if string(head) != "MZ" {
		t.Errorf("mapsworker.exe is not a Windows executable")
	}
}
