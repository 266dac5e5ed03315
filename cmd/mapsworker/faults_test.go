package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"mapsworker/internal/azurite"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// sendGeocodes enqueues n valid geocode requests and returns their ids.
func (te *testEnv) sendGeocodes(prefix string, n int) []string {
	te.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		body := fmt.Sprintf(`{"id":%q,"kind":"geocode","query":"%d Main St, Springfield"}`, ids[i], i)
		if i%2 == 0 {
			body = base64.StdEncoding.EncodeToString([]byte(body))
		}
		te.send(body)
	}
	return ids
}

// resultCount counts the result blobs (not the status documents beside them).
func (te *testEnv) resultCount() int {
	te.t.Helper()
	n := 0
	pager := te.storage.Results.Client().NewListBlobsFlatPager(&container.ListBlobsFlatOptions{})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			te.t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name != nil && worker.IsResult(*b.Name) {
				n++
			}
		}
	}
	return n
}

// assertNoSecrets checks that text holds no access token, storage key or
// identity header.
func (te *testEnv) assertNoSecrets(where, text string) {
	te.t.Helper()
	for name, secret := range map[string]string{
		"an access token (JWT)": "eyJ",
		"the storage key":       azurite.AccountKey,
		"the identity header":   te.emu.IdentityHeader,
	} {
		if strings.Contains(text, secret) {
			te.t.Errorf("%s leaks %s", where, name)
		}
	}
}

// TestOutagesPoisonNothing holds each dependency of the Maps side down
// through many probe cycles (more than MAPS_MAX_DEQUEUE_COUNT of them), then
// restores it: no valid message is poisoned, every one succeeds, and the
// outage does not cycle messages through the queue (the engine probes with
// requests of its own, not messages).
func TestOutagesPoisonNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		inject  func(*mapstest.Server)
		restore func(*mapstest.Server)
		hold    time.Duration
	}{
		{"maps 503 outage",
			func(s *mapstest.Server) { s.SetFault(&mapstest.Fault{Status: 503, Code: "ServiceUnavailable"}) },
			func(s *mapstest.Server) { s.SetFault(nil) }, 9 * time.Second},
		{"429 storm",
			func(s *mapstest.Server) {
				s.SetFault(&mapstest.Fault{Status: 429, Code: "429 TooManyRequests", RetryAfter: time.Second})
			},
			func(s *mapstest.Server) { s.SetFault(nil) }, 9 * time.Second},
		{"403 role missing",
			func(s *mapstest.Server) { s.SetFault(&mapstest.Fault{Status: 403, Code: "403 Forbidden"}) },
			func(s *mapstest.Server) { s.SetFault(nil) }, 9 * time.Second},
		{"token endpoint down",
			func(s *mapstest.Server) { s.SetTokenOutage(true) },
			func(s *mapstest.Server) { s.SetTokenOutage(false) }, 12 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			te := newTestEnv(t)
			ids := te.sendGeocodes("o", 24)
			tokensBefore := sum(te.emu.TokenRequests())
			c.inject(te.emu)
			p := te.start(map[string]string{
				"MAPS_MAX_DEQUEUE_COUNT": "2",
				"MAPS_MAX_POLL_INTERVAL": "1s",
			}, "run")
			time.Sleep(c.hold) // several release cycles of 1-2 s
			faulted := te.emu.Stats()
			asked := int(faulted.Requests) + sum(te.emu.TokenRequests()) - tokensBefore
			c.restore(te.emu)
			waitFor(t, 60*time.Second, "every result", func() bool { return te.resultCount() == len(ids) })
			p.stop(t, 30*time.Second)

			maxDeliveries := int64(0)
			for _, id := range ids {
				r := te.result("geocode", id)
				if r == nil || r.Status != "succeeded" {
					t.Fatalf("%s: %+v", id, r)
				}
				maxDeliveries = max(maxDeliveries, r.DequeueCount)
			}
			if env := te.poisoned(); len(env) != 0 {
				t.Fatalf("%d valid messages poisoned: %+v", len(env), env[0])
			}
			if asked < 2*2+1 {
				t.Errorf("during the fault Maps and the token endpoint were asked %d times: too short to outlast MAPS_MAX_DEQUEUE_COUNT probe cycles", asked)
			}
			if maxDeliveries > 3 {
				t.Errorf("a message was delivered %d times: the outage cycled messages", maxDeliveries)
			}
			t.Logf("%s: 24 messages; during the fault Maps saw %d requests (%d 2xx), %d to Maps and the token endpoint in all; after it every message succeeded, the most delivered one %d times; 0 poisoned",
				c.name, faulted.Requests, faulted.Status2xx, asked, maxDeliveries)
			te.assertNoSecrets("worker output", p.out.String())
			if n := lines(p.out.String()); n > 20 {
				t.Errorf("the fault took %d log lines at info:\n%s", n, p.out.String())
			}
		})
	}
}

// TestShutdownFileDrains creates WEBJOBS_SHUTDOWN_FILE mid-run: the worker
// stops dequeuing, finishes what is in flight, exits 0 within the drain
// budget, and every message is either done or visible again.
func TestShutdownFileDrains(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	ids := te.sendGeocodes("s", 40)
	te.emu.SetLatency(1500 * time.Millisecond)
	file := filepath.Join(t.TempDir(), "shutdown")
	p := te.start(map[string]string{"WEBJOBS_SHUTDOWN_FILE": file, "MAPS_CONCURRENCY": "4", "MAPS_DRAIN_TIMEOUT": "20s"}, "run")
	waitFor(t, 30*time.Second, "first results", func() bool { return te.resultCount() >= 4 })
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	p.wait(t, 25*time.Second)
	took := time.Since(began)
	if p.err != nil {
		t.Fatalf("exit: %v\n%s", p.err, p.out.String())
	}
	// In-flight work needs about 1.5 s; the bound is the drain budget, so
	// that a slow machine does not fail the test.
	if took > 20*time.Second {
		t.Errorf("stop took %v, more than the 20 s drain budget", took)
	}
	done := te.resultCount()
	visible := te.visibleNow()
	if done+visible != len(ids) {
		t.Fatalf("%d done + %d visible != %d sent (the rest would be stuck under a lease)", done, visible, len(ids))
	}
	if done >= len(ids) {
		t.Fatalf("all %d done: the stop did not stop dequeuing", done)
	}
	t.Logf("shutdown file: exit 0 after %v; %d done, %d visible again at once", took.Round(time.Millisecond), done, visible)
}

// TestDrainBudgetReleases stops a worker whose work cannot finish within
// the drain budget: it exits on time and the unfinished messages are visible
// again at once, not after their lease.
func TestDrainBudgetReleases(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	ids := te.sendGeocodes("d", 6)
	te.emu.SetLatency(60 * time.Second)
	p := te.start(map[string]string{"MAPS_DRAIN_TIMEOUT": "2s", "MAPS_LEASE": "5m"}, "run")
	waitFor(t, 20*time.Second, "messages in flight", func() bool { return te.queueDepth() == int64(len(ids)) && te.visibleProbe() == 0 })
	took := p.stop(t, 15*time.Second)
	if p.err != nil {
		t.Fatalf("exit: %v\n%s", p.err, p.out.String())
	}
	// The work would take 60 s; the stop must not wait for it.
	if took > 20*time.Second {
		t.Errorf("stop took %v with a 2 s drain budget", took)
	}
	if v := te.visibleNow(); v != len(ids) {
		t.Fatalf("%d of %d messages visible after the stop", v, len(ids))
	}
	if !strings.Contains(p.out.String(), "drain budget spent") {
		t.Errorf("the stop did not say that work was released:\n%s", p.out.String())
	}
}

// visibleNow counts the messages that can be dequeued right now (and makes
// them visible again).
func (te *testEnv) visibleNow() int {
	te.t.Helper()
	q := te.storage.Requests.Client()
	taken := te.dequeueAll(q)
	for _, m := range taken {
		q.UpdateMessage(context.Background(), *m.MessageID, *m.PopReceipt, *m.MessageText, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(int32(0))})
	}
	return len(taken)
}

// visibleProbe peeks: how many messages are visible now, without taking any.
func (te *testEnv) visibleProbe() int {
	te.t.Helper()
	resp, err := te.storage.Requests.Client().PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		te.t.Fatal(err)
	}
	return len(resp.Messages)
}

// TestCrashes kills the worker with SIGKILL at several points of a run of
// 300 messages and restarts it each time: every message ends as exactly one
// succeeded result; none is lost, none poisoned.
func TestCrashes(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	const n = 300
	ids := te.sendGeocodes("c", n)
	te.emu.SetLatency(25 * time.Millisecond)
	extra := map[string]string{"MAPS_LEASE": "2s", "MAPS_CONCURRENCY": "8"}
	var kills []int
	for _, at := range []int{40, 120, 200} {
		p := te.start(extra, "run")
		waitFor(t, 60*time.Second, fmt.Sprintf("%d results", at), func() bool { return te.resultCount() >= at })
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(t, 10*time.Second)
		kills = append(kills, te.resultCount())
	}
	p := te.start(extra, "run")
	waitFor(t, 90*time.Second, "every result", func() bool { return te.resultCount() == n && te.queueDepth() == 0 })
	p.stop(t, 30*time.Second)
	for _, id := range ids {
		if r := te.result("geocode", id); r == nil || r.Status != "succeeded" {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if env := te.poisoned(); len(env) != 0 {
		t.Fatalf("poisoned after crashes: %+v", env)
	}
	calls := te.mapsWork()
	t.Logf("crashes: %d messages, SIGKILL with %v results written; all %d succeeded once, 0 poisoned, %d Maps calls (%d repeated by crashes)",
		n, kills, n, calls, calls-n)
}

// TestBadInputCorpus sends malformed messages of every kind: each goes to
// the poison queue with its original text and what was wrong, with a failed
// result where its id is usable; none reaches Maps, and the worker lives.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	many := `{"id":"many","kind":"route","waypoints":[` + strings.Repeat(`{"lat":1,"lon":1},`, 30) + `{"lat":1,"lon":1}]}`
	corpus := []struct {
		text       string
		resultKind string // where a failed result is expected
		resultID   string
	}{
		{"%%% not base64 %%%", "", ""},
		{b64("\xff\xfe\xfd not utf-8"), "", ""},
		{"{not json", "", ""},
		{b64("[1,2,3]"), "", ""},
		{`{"id":"wt","kind":"geocode","query":"x","top":"1"}`, "geocode", "wt"},
		{`{"id":"oor","kind":"reverse-geocode","position":{"lat":91,"lon":0}}`, "reverse-geocode", "oor"},
		{`{"id":"inf","kind":"reverse-geocode","position":{"lat":1e999,"lon":0}}`, "reverse-geocode", "inf"},
		{`{"id":"big","kind":"geocode","query":"` + strings.Repeat("a", 60000) + `"}`, "geocode", "big"},
		{deep, "", ""},
		{`{"id":"../../etc/passwd","kind":"geocode","query":"x"}`, "", ""},
		{many, "route", "many"},
		{`{"id":"uk","kind":"teleport"}`, "", ""},
		{`{"id":"both","kind":"geocode","query":"x","locality":"Redmond"}`, "geocode", "both"},
		{"", "", ""},
	}
	for _, c := range corpus {
		if c.text == "" {
			continue // the queue refuses an empty message
		}
		te.send(c.text)
	}
	p := te.start(nil, "run")
	want := len(corpus) - 1
	var envs []envelopeSeen
	waitFor(t, 30*time.Second, "every message poisoned", func() bool {
		for _, e := range te.poisoned() {
			envs = append(envs, envelopeSeen{e.Message, e.Error.Class, e.Error.Message})
		}
		return len(envs) >= want
	})
	p.stop(t, 30*time.Second)
	if p.err != nil {
		t.Fatalf("worker exit: %v", p.err)
	}
	seen := map[string]envelopeSeen{}
	for _, e := range envs {
		seen[e.message] = e
	}
	for _, c := range corpus[:want] {
		e, ok := seen[c.text]
		if !ok {
			t.Errorf("no envelope holds the original text %.60q", c.text)
			continue
		}
		if e.class != "invalid-request" || e.reason == "" {
			t.Errorf("%.60q: class %q reason %q", c.text, e.class, e.reason)
		}
		if c.resultID != "" {
			r := te.result(c.resultKind, c.resultID)
			if r == nil || r.Status != "failed" || r.Error == nil || r.Error.Class != "invalid-request" {
				t.Errorf("%s: failed result = %+v", c.resultID, r)
			}
		}
	}
	if n := te.emu.Stats().Requests; n != 0 {
		t.Errorf("Maps was called %d times for bad input", n)
	}
	if strings.Contains(p.out.String(), "panic") {
		t.Errorf("worker panicked:\n%s", p.out.String())
	}
	// Six under their own ids, and the unsafe id's under its queue message
	// id: an unsafe id never becomes a blob name.
	if n := te.resultCount(); n != 7 {
		t.Errorf("%d failed results, want 7", n)
	}
	pager := te.storage.Results.Client().NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			if strings.Contains(*b.Name, "..") || strings.Count(*b.Name, "/") != 1 {
				t.Errorf("unsafe result name %q", *b.Name)
			}
		}
	}
	te.assertNoSecrets("worker output", p.out.String())
}

type envelopeSeen struct{ message, class, reason string }

// TestSlowMapsShortLease: Azure Maps takes 4 s to answer, the lease is 2 s,
// and two worker processes compete for the queue. The renewals keep each
// message with its first consumer: one Maps call and one result each, and
// no message is delivered twice.
func TestSlowMapsShortLease(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	ids := te.sendGeocodes("l", 4)
	te.emu.SetLatency(4 * time.Second)
	extra := map[string]string{"MAPS_LEASE": "2s", "MAPS_CONCURRENCY": "4"}
	p1, p2 := te.start(extra, "run"), te.start(extra, "run")
	waitFor(t, 60*time.Second, "every result", func() bool { return te.resultCount() == len(ids) && te.queueDepth() == 0 })
	for _, p := range []*proc{p1, p2} {
		p.stop(t, 30*time.Second)
	}
	if n := te.mapsWork(); n != int64(len(ids)) {
		t.Errorf("Maps worked on %d requests for %d messages", n, len(ids))
	}
	for _, id := range ids {
		if r := te.result("geocode", id); r == nil || r.Status != "succeeded" || r.DequeueCount != 1 {
			t.Errorf("%s: %+v", id, r)
		}
	}
}

// TestStorageOutage kills Azurite in the middle of a run and brings it back
// on the same ports with its data ten seconds later: the worker pauses,
// resumes by itself, and every message succeeds; none is poisoned.
func TestStorageOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	az, err := azurite.Start(&azurite.Options{Location: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { az.Close() })
	te := newTestEnvWith(t, az)
	ids := te.sendGeocodes("so", 40)
	te.emu.SetLatency(200 * time.Millisecond)
	p := te.start(map[string]string{"MAPS_CONCURRENCY": "4", "MAPS_MAX_DEQUEUE_COUNT": "2", "MAPS_LEASE": "5s", "MAPS_MAX_POLL_INTERVAL": "1s"}, "run")
	waitFor(t, 30*time.Second, "first results", func() bool { return te.resultCount() >= 5 })
	// A clean stop: Azure Storage going away keeps its data, and Azurite
	// only flushes its metadata on the way out.
	az.Close()
	time.Sleep(10 * time.Second)
	az2, err := azurite.Start(&azurite.Options{Location: dir, BlobPort: az.BlobPort, QueuePort: az.QueuePort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(az2.Close)
	waitFor(t, 120*time.Second, "every result", func() bool { return te.resultCount() == len(ids) && te.queueDepth() == 0 })
	p.stop(t, 60*time.Second)
	for _, id := range ids {
		if r := te.result("geocode", id); r == nil || r.Status != "succeeded" {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	if env := te.poisoned(); len(env) != 0 {
		t.Fatalf("storage outage poisoned %d messages: %+v", len(env), env[0])
	}
	te.assertNoSecrets("worker output", p.out.String())
	if strings.Contains(p.out.String(), "popreceipt=") {
		t.Errorf("a storage URL's query (pop receipt, or a SAS signature) reached the log")
	}
	if n := lines(p.out.String()); n > 10 {
		t.Errorf("the outage took %d lines at info", n)
	}
	t.Logf("storage outage: 40 messages, Azurite down 10 s mid-run; all succeeded, 0 poisoned, %d Maps requests; worker said:\n%s", te.mapsWork(), p.out.String())
}

// TestStopDuringStorageOutage stops the worker while Azurite is down: the
// stop does not wait out the storage retries, and the process exits 0 within
// its drain budget plus the bound on each storage call.
func TestStopDuringStorageOutage(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.sendGeocodes("sd", 20)
	te.emu.SetLatency(500 * time.Millisecond)
	p := te.start(map[string]string{"MAPS_CONCURRENCY": "4", "MAPS_DRAIN_TIMEOUT": "3s"}, "run")
	waitFor(t, 30*time.Second, "first results", func() bool { return te.resultCount() >= 2 })
	te.az.Close()
	time.Sleep(time.Second)
	took := p.stop(t, 60*time.Second)
	if p.err != nil {
		t.Fatalf("exit: %v\n%s", p.err, p.out.String())
	}
	// 3 s of drain, then one last 10 s for the storage calls still to come
	// (about 13 s); the WebJobs runner kills the process after
	// stopping_wait_time (60 s). The bound leaves room for a slow machine.
	if took > 30*time.Second {
		t.Errorf("stop took %v with storage down", took)
	}
	t.Logf("stop with storage down: exit 0 after %v", took.Round(time.Millisecond))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
