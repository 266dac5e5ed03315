package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The production binary carries no emulator and no test helper: the
// WebJob zips and the image ship the worker alone. The emulator is
// `mapsdev emulate`'s (cmd/mapsdev).
func TestBinaryCarriesNoEmulator(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"mapsworker/jobs/maps/mapstest",
		"mapsworker/internal/azurite",
		"mapsworker/internal/azurite/azuritetest",
		"net/http/httptest",
		"testing",
	}
	// This machine's build, and the two the WebJob zips hold.
	for _, platform := range []string{"", "windows/amd64", "linux/amd64"} {
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = os.Environ()
		if goos, goarch, ok := strings.Cut(platform, "/"); ok {
			cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps (%s): %v", platform, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, "mapsworker/worker") {
			t.Fatalf("go list -deps (%s) does not list the worker: %q", platform, deps)
		}
		for _, pkg := range forbidden {
			if slices.Contains(deps, pkg) {
				t.Errorf("mapsworker (%s) imports %s: development and test code belongs in cmd/mapsdev or in tests", platform, pkg)
			}
		}
	}
}

// TestRateLimitsText: the start-up log's rate limits, with the Gen2
// figures for the APIs the setting does not name.
func TestRateLimitsText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limits map[string]int
		want   string
	}{
		{nil, "gen2-defaults"},
		{map[string]int{}, "off"},
		{map[string]int{"geocode": 100, "route": 20}, "geocode=100,reverseGeocode=250,route=20,geocodeBatch=10,routeBatch=10"},
	} {
		if got := rateLimitsText(tc.limits); got != tc.want {
			t.Errorf("rateLimitsText(%v) = %s, want %s", tc.limits, got, tc.want)
		}
	}
}
