package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

func TestCheckDrain(t *testing.T) {
	cases := []struct {
		name  string
		job   string // settings.job; "" means none
		drain time.Duration
		bad   bool
	}{
		{"no settings.job", "", time.Hour, false},
		{"the shipped one", `{"is_singleton": false, "stopping_wait_time": 60}`, 45 * time.Second, false},
		{"drain too long", `{"stopping_wait_time": 60}`, 55 * time.Second, true},
		{"runner default 5s", `{"is_singleton": false}`, 45 * time.Second, true},
		{"no drain, runner default", `{}`, 0, true},
		{"long wait", `{"stopping_wait_time": 300}`, 4 * time.Minute, false},
		{"not JSON", `stopping_wait_time=60`, time.Second, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.job != "" {
				if err := os.WriteFile(filepath.Join(dir, "settings.job"), []byte(c.job), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := checkDrain(c.drain, dir)
			if (err != nil) != c.bad {
				t.Fatalf("checkDrain(%v) = %v, want an error: %v", c.drain, err, c.bad)
			}
			if err != nil && !strings.Contains(err.Error(), "MAPS_DRAIN_TIMEOUT") && !strings.Contains(err.Error(), "settings.job") {
				t.Fatalf("the error names neither setting: %v", err)
			}
		})
	}
}

// The settings.job in the repository fits the default drain.
func TestShippedSettingsJobFitsTheDefaultDrain(t *testing.T) {
	if err := checkDrain(45*time.Second, filepath.Join("..", "..", "..")); err != nil {
		t.Fatal(err)
	}
}

// shortErr keeps the request line of an azcore error and says what came
// back, instead of the request line alone.
func TestShortErrSaysTheStatus(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://acct.blob.core.windows.net/c/b.json?sig=secret", nil)
	err := runtime.NewResponseError(&http.Response{StatusCode: 404, Request: req,
		Header: http.Header{"X-Ms-Error-Code": {"ContainerNotFound"}}, Body: http.NoBody})
	got := shortErr(err)
	if !strings.Contains(got, "404 ContainerNotFound") || strings.Contains(got, "secret") {
		t.Fatalf("shortErr = %q", got)
	}
}
