package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"mapsworker/jobs/maps/mapstest"
)

func TestHealthHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path string
		ready              bool
		wantStatus         int
		wantBody           string
	}{
		{"alive", "GET", "/healthz", true, 200, "ok"},
		{"alive while paused", "GET", "/healthz", false, 200, "ok"},
		{"ready", "GET", "/readyz", true, 200, "ready"},
		{"not ready", "GET", "/readyz", false, 503, "paused"},
		{"head", "HEAD", "/readyz", true, 200, ""},
		{"post", "POST", "/readyz", true, 405, ""},
		{"other path", "GET", "/", true, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := healthHandler(func() (bool, string) { return tt.ready, "paused: test" })
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s: %d, want %d", tt.method, tt.path, rec.Code, tt.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("%s %s: body %q, want %q in it", tt.method, tt.path, rec.Body.String(), tt.wantBody)
			}
		})
	}
}

func TestHealthShutdown(t *testing.T) {
	t.Parallel()
	hs, err := startHealth("127.0.0.1:0", func() (bool, string) { return true, "" })
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + hs.Addr() + "/healthz"
	if code := probe(t, url); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if err := hs.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("still answering after Shutdown")
	}
	// The address is free again.
	again, err := startHealth(hs.Addr(), func() (bool, string) { return true, "" })
	if err != nil {
		t.Fatalf("address not released: %v", err)
	}
	again.Shutdown(context.Background())
}

// TestHealthEndpoint runs the worker with the endpoint on: ready while it
// dequeues, not ready while an outage of Maps pauses it, ready again after,
// and gone when the process has stopped. Off by default.
func TestHealthEndpoint(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	p := te.start(map[string]string{"MAPS_HEALTH_ADDR": "127.0.0.1:0"}, "run")
	addr := regexp.MustCompile(`msg="health endpoint listening" addr=(\S+)`)
	var base string
	waitFor(t, 30*time.Second, "the health endpoint's log line", func() bool {
		if m := addr.FindStringSubmatch(p.out.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	if code := probe(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	waitFor(t, 30*time.Second, "/readyz 200", func() bool { return probe(t, base+"/readyz") == 200 })

	te.emu.SetFault(&mapstest.Fault{Status: http.StatusServiceUnavailable})
	te.send(`{"id":"hz-1","kind":"reverse-geocode","position":{"lat":47.6303,"lon":-122.1387}}`)
	waitFor(t, time.Minute, "/readyz 503 in the outage", func() bool { return probe(t, base+"/readyz") == 503 })
	if code := probe(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d in the outage: the process is up", code)
	}
	te.emu.SetFault(nil)
	waitFor(t, time.Minute, "/readyz 200 after the outage", func() bool { return probe(t, base+"/readyz") == 200 })
	waitFor(t, time.Minute, "hz-1's result", func() bool { return te.result("reverse-geocode", "hz-1") != nil })

	stopWorker(t, p)
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the health endpoint answers after the process stopped")
	}

	// Off by default: no listener is logged.
	p = te.start(nil, "run")
	waitFor(t, 30*time.Second, "the start line", func() bool { return strings.Contains(p.out.String(), "mapsworker starting") })
	stopWorker(t, p)
	if strings.Contains(p.out.String(), "health endpoint") {
		t.Errorf("health endpoint on without MAPS_HEALTH_ADDR:\n%s", p.out.String())
	}
}

// probe GETs url and returns the status, 0 when nothing answers.
func probe(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
