package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"mapsworker/worker"
)

func TestReportStatus(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	inst := func(name string, updatedAgo time.Duration, stopped, paused bool) *worker.InstanceStatus {
		return &worker.InstanceStatus{Instance: name, Started: now.Add(-time.Hour), Updated: now.Add(-updatedAgo),
			Every: worker.Duration(30 * time.Second), Stopped: stopped, Paused: paused}
	}
	cases := []struct {
		name   string
		sts    []*worker.InstanceStatus
		oldest time.Duration // 0: empty queue
		ok     bool
		shows  string
	}{
		{"one healthy", []*worker.InstanceStatus{inst("a", 10*time.Second, false, false)}, 0, true, "1 of 1 instances healthy"},
		{"none", nil, 0, false, "0 of 0"},
		{"stale only", []*worker.InstanceStatus{inst("a", 2*time.Minute, false, false)}, 0, false, "STALE"},
		{"stopped only", []*worker.InstanceStatus{inst("a", time.Minute, true, false)}, 0, false, "stopped"},
		{"paused only", []*worker.InstanceStatus{inst("a", time.Second, false, true)}, 0, false, "paused"},
		{"one of three", []*worker.InstanceStatus{inst("a", 2*time.Minute, false, false), inst("b", time.Second, false, false),
			inst("c", time.Second, true, false)}, 0, true, "1 of 3 instances healthy"},
		{"queue too old", []*worker.InstanceStatus{inst("a", time.Second, false, false)}, 20 * time.Minute, false, "oldest 20m0s"},
		{"queue young", []*worker.InstanceStatus{inst("a", time.Second, false, false)}, 5 * time.Minute, true, "oldest 5m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			var oldest time.Time
			if c.oldest > 0 {
				oldest = now.Add(-c.oldest)
			}
			err := reportStatus(&out, c.sts, 3, oldest, 15*time.Minute, now)
			var ee *exitError
			if c.ok != (err == nil) || (err != nil && (!errors.As(err, &ee) || ee.code != exitUnhealthy)) {
				t.Fatalf("err = %v, want ok %v", err, c.ok)
			}
			if !strings.Contains(out.String(), c.shows) {
				t.Fatalf("output lacks %q:\n%s", c.shows, out.String())
			}
		})
	}
}

// Several worker processes each keep a status document; status lists them,
// flags a killed one as stale and a stopped one as stopped, and exits 1 only
// when none is running.
func TestStatusOfSeveralInstances(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	env := map[string]string{"MAPS_STATUS_INTERVAL": "1s"}
	ps := []*proc{te.start(env, "run"), te.start(env, "run"), te.start(env, "run")}
	te.sendGeocodes("st", 6)
	waitFor(t, 30*time.Second, "three running", func() bool {
		r := te.cmd("", "status")
		return r.code == 0 && strings.Contains(r.out, "3 of 3 instances healthy")
	})
	ps[0].cmd.Process.Kill() // a crash: no last word
	ps[1].stop(t, 30*time.Second)
	waitFor(t, 30*time.Second, "one stale, one stopped", func() bool {
		r := te.cmd("", "status")
		return r.code == 0 && strings.Contains(r.out, "STALE") && strings.Contains(r.out, "stopped") &&
			strings.Contains(r.out, "1 of 3 instances healthy")
	})
	ps[2].stop(t, 30*time.Second)
	r := te.cmd("", "status")
	if r.code != exitUnhealthy || !strings.Contains(r.err, "no instance is running") {
		t.Fatalf("with every instance gone: %s", r)
	}
}
