package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/jobs/maps/mapstest"
)

// geocodes enqueues n geocode requests named prefix-0…prefix-(n-1).
func (te *testEnv) geocodes(prefix string, n int) {
	te.t.Helper()
	for i := range n {
		te.send(fmt.Sprintf(`{"id":"%s-%d","kind":"geocode","query":"%d Main St, Redmond, WA"}`, prefix, i, i))
	}
}

// exited waits for a bounded run to end by itself and returns how long it
// ran and its exit status.
func (p *proc) exited(t *testing.T, began time.Time, limit time.Duration) (time.Duration, int) {
	t.Helper()
	p.wait(t, limit)
	took := time.Since(began)
	t.Logf("exit %d after %v; output:\n%s", p.exitCode(), took.Round(time.Millisecond), p.out.String())
	return took, p.exitCode()
}

// TestRunUntilEmpty works a backlog (some of it invalid) and exits 0 by
// itself once the queue has stayed empty for the grace: every message has
// its outcome, and the log says why the run ended.
func TestRunUntilEmpty(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.geocodes("ue", 50)
	te.send(`{"id":"ue-bad","kind":"geocode","query":"x","top":99}`)
	began := time.Now()
	p := te.start(nil, "run", "--until-empty", "--idle-grace", "2s")
	took, code := p.exited(t, began, time.Minute)
	if code != exitDone {
		t.Errorf("exit %d, want %d", code, exitDone)
	}
	if took < 2*time.Second {
		t.Errorf("exited after %v, inside the 2s grace", took)
	}
	for i := range 50 {
		if r := te.result("geocode", fmt.Sprintf("ue-%d", i)); r == nil || r.Status != "succeeded" {
			t.Errorf("ue-%d: %+v", i, r)
		}
	}
	if env := te.poisoned(); len(env) != 1 {
		t.Errorf("poisoned %d, want the invalid one", len(env))
	}
	if d := te.queueDepth(); d != 0 {
		t.Errorf("queue depth %d after the run", d)
	}
	out := p.out.String()
	for _, want := range []string{`msg="bounded run" untilEmpty=true idleGrace=2s`, `msg="queue stayed empty; draining"`, "msg=stopped", "succeeded=50", "poisoned=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// TestRunUntilEmptyGraceFromLastMessage: a message that arrives inside the
// grace is worked, and the grace starts again after it: the run ends no
// sooner than a grace after the message was sent.
func TestRunUntilEmptyGraceFromLastMessage(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	const grace = 4 * time.Second
	began := time.Now()
	p := te.start(nil, "run", "--until-empty", "--idle-grace", grace.String())
	time.Sleep(grace / 2)
	select {
	case <-p.done:
		t.Fatalf("exited inside the grace:\n%s", p.out.String())
	default:
	}
	sent := time.Now()
	te.send(`{"id":"late-1","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA"}`)
	_, code := p.exited(t, began, time.Minute)
	if code != exitDone {
		t.Errorf("exit %d", code)
	}
	if since := time.Since(sent); since < grace {
		t.Errorf("exited %v after the last message was sent, inside the %v grace", since, grace)
	}
	if r := te.result("geocode", "late-1"); r == nil || r.Status != "succeeded" {
		t.Errorf("late message: %+v", r)
	}
}

// TestRunMaxMessages: a run bounded to N messages takes exactly N, works
// them, and leaves the rest visible for the next run.
func TestRunMaxMessages(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.geocodes("mm", 40)
	began := time.Now()
	p := te.start(nil, "run", "--until-empty", "--max-messages", "7")
	_, code := p.exited(t, began, time.Minute)
	if code != exitDone {
		t.Errorf("exit %d", code)
	}
	if n := te.resultCount(); n != 7 {
		t.Errorf("%d results, want 7", n)
	}
	if left := len(te.dequeueAll(te.storage.Requests.Client())); left != 33 {
		t.Errorf("%d messages visible after the run, want 33", left)
	}
	if !strings.Contains(p.out.String(), `msg="max-messages reached; draining"`) {
		t.Errorf("no max-messages line")
	}
}

// TestRunMaxDuration: at the bound the run stops taking messages and drains
// as at a stop: what was in flight finishes, what was waiting is released
// at once, nothing is lost or poisoned, and it exits 0 well inside the
// drain budget.
func TestRunMaxDuration(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.emu.SetLatency(300 * time.Millisecond)
	const n = 200
	te.geocodes("md", n)
	began := time.Now()
	p := te.start(map[string]string{"MAPS_CONCURRENCY": "4", "MAPS_BATCH": "false"}, "run", "--max-duration", "2s")
	took, code := p.exited(t, began, time.Minute)
	if code != exitDone {
		t.Errorf("exit %d", code)
	}
	if took < 2*time.Second || took > 30*time.Second {
		t.Errorf("ran %v with --max-duration 2s", took)
	}
	done := te.resultCount()
	left := len(te.dequeueAll(te.storage.Requests.Client()))
	if done == 0 || done == n || done+left != n {
		t.Errorf("%d results and %d messages visible at once, want a part and the rest of %d", done, left, n)
	}
	if env := te.poisoned(); len(env) != 0 {
		t.Errorf("%d poisoned", len(env))
	}
	out := p.out.String()
	if !strings.Contains(out, `msg="max-duration reached; draining"`) || strings.Contains(out, "drain budget spent") {
		t.Errorf("the run did not drain in its budget")
	}
}

// TestRunUntilEmptyFault: when the environment keeps failing (Maps refuses
// the identity; storage is gone), the run does not mistake the pause for an
// empty queue: it ends with the fault status once the fault has lasted the
// grace with no progress, says why, and poisons nothing.
func TestRunUntilEmptyFault(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		inject func(te *testEnv)
		want   string
	}{
		{"Maps 403", func(te *testEnv) {
			te.emu.SetFault(&mapstest.Fault{Status: 403, Code: "403 Forbidden"})
			te.geocodes("f403", 3)
		}, "403"},
		{"storage down", nil, "environment faults"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			az := azuritetest.New(t, nil)
			te := newTestEnvWith(t, az)
			if tc.inject != nil {
				tc.inject(te)
			}
			began := time.Now()
			p := te.start(nil, "run", "--until-empty", "--idle-grace", "3s")
			if tc.inject == nil {
				waitFor(t, 30*time.Second, "the start", func() bool { return strings.Contains(p.out.String(), "bounded run") })
				az.Close()
			}
			took, code := p.exited(t, began, 2*time.Minute)
			if code != exitFault {
				t.Errorf("exit %d, want %d", code, exitFault)
			}
			if took < 3*time.Second {
				t.Errorf("ended after %v, inside the grace", took)
			}
			out := p.out.String()
			if !strings.Contains(out, "mapsworker run: stopped by a fault: environment faults for 3s with no progress; the last: ") || !strings.Contains(out, tc.want) {
				t.Errorf("no fault line with %q", tc.want)
			}
			if strings.Contains(out, "queue stayed empty") {
				t.Errorf("the fault was taken for an empty queue")
			}
			if tc.inject != nil {
				if env := te.poisoned(); len(env) != 0 {
					t.Errorf("%d poisoned", len(env))
				}
				if d := te.queueDepth(); d != 3 {
					t.Errorf("queue depth %d, want the 3 messages kept", d)
				}
			}
		})
	}
}

// TestRunFlags: a bad flag stops `run` at once with the bad-settings status
// and one line naming it; --help documents the exit statuses.
func TestRunFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--until-empty", "--idle-grace", "0s"}, exitSettings, "mapsworker run: configuration: --idle-grace: 0s is shorter than 1s"},
		{[]string{"--max-messages", "-1"}, exitSettings, "mapsworker run: configuration: --max-messages: must not be negative"},
		{[]string{"--max-duration", "-5m"}, exitSettings, "mapsworker run: configuration: --max-duration: must not be negative"},
		{[]string{"--max-messages", "many"}, exitSettings, `invalid value "many" for flag -max-messages`},
		{[]string{"--until-empty=maybe"}, exitSettings, "invalid boolean value"},
		{[]string{"--help"}, exitDone, "Exit status: 0 done"},
	}
	for _, tc := range cases {
		te := &testEnv{t: t, env: map[string]string{}}
		p := te.start(nil, append([]string{"run"}, tc.args...)...)
		p.wait(t, 30*time.Second)
		out := p.out.String()
		if p.exitCode() != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("run %v: exit %d, output %q; want %d and %q", tc.args, p.exitCode(), out, tc.code, tc.want)
		}
	}
}
