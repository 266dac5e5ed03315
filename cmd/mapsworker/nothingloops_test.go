package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"mapsworker/jobs/maps/mapstest"
)

// Requests Maps fails with 503 every time, sent after the valid backlog, are
// poisoned after MAPS_MAX_DEQUEUE_COUNT deliveries: Maps answers others,
// so the failures are theirs, not an outage's.
func TestAlwaysFailingRequestsArePoisoned(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	ids := te.sendGeocodes("ok", 10)
	for i := range 6 {
		te.send(fmt.Sprintf(`{"id":"bad-%d","kind":"geocode","query":"%d Main St #fail"}`, i, i))
	}
	p := te.start(map[string]string{"MAPS_MAX_DEQUEUE_COUNT": "3", "MAPS_LOG_LEVEL": "debug"}, "run")
	defer func() {
		if t.Failed() {
			t.Log(p.out.String())
		}
	}()
	// Released at 5 s, 10 s: the third delivery comes about 15 s after the first.
	waitFor(t, 90*time.Second, "the failing requests poisoned", func() bool { return te.depth(te.storage.Poison.Client()) == 6 })
	p.stop(t, 30*time.Second)
	for _, id := range ids {
		if r := te.result("geocode", id); r == nil || r.Status != "succeeded" {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	env := te.poisoned()
	if len(env) != 6 {
		t.Fatalf("%d envelopes, want 6", len(env))
	}
	for _, env := range env {
		if env.Error.Class != "transient" || env.DequeueCount > 3 {
			t.Errorf("envelope: class %s after %d deliveries, want transient after at most 3", env.Error.Class, env.DequeueCount)
		}
	}
	te.assertNoSecrets("worker output", p.out.String())
}

// Messages whose time-to-live ends during an outage are poisoned as
// expiring, with their text, before the queue deletes them unseen; the
// others succeed after it.
func TestShortTTLThroughAnOutage(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	q := te.storage.Requests.Client()
	short := map[string]bool{}
	for i := range 20 {
		text := fmt.Sprintf(`{"id":"ttl-%d","kind":"geocode","query":"%d Main St"}`, i, i)
		short[text] = true
		if _, err := q.EnqueueMessage(context.Background(), text, &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(40))}); err != nil {
			t.Fatal(err)
		}
	}
	long := te.sendGeocodes("long", 5)
	te.emu.SetFault(&mapstest.Fault{Status: 503, Code: "ServiceUnavailable"})
	p := te.start(map[string]string{"MAPS_MAX_POLL_INTERVAL": "2s"}, "run")
	time.Sleep(60 * time.Second) // longer than the 40 s time-to-live
	te.emu.SetFault(nil)
	waitFor(t, 60*time.Second, "the long-lived ones succeeded", func() bool {
		for _, id := range long {
			if r := te.result("geocode", id); r == nil || r.Status != "succeeded" {
				return false
			}
		}
		return true
	})
	p.stop(t, 30*time.Second)
	env := te.poisoned()
	if len(env) != len(short) {
		t.Fatalf("%d of %d short-lived messages poisoned; the rest vanished", len(env), len(short))
	}
	for _, e := range env {
		if e.Error.Class != "expiring" || !short[e.Message] {
			t.Errorf("envelope class %q, text %q", e.Error.Class, e.Message)
		}
	}
}

// A Maps that holds every answer for 20 s, then answers again, costs delay
// and nothing else: no message is poisoned, each is answered once or twice.
func TestHangingMapsCostsOnlyDelay(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	ids := te.sendGeocodes("hang", 16)
	te.emu.SetLatency(20 * time.Second)
	p := te.start(map[string]string{"MAPS_MAX_DEQUEUE_COUNT": "2", "MAPS_BATCH": "false"}, "run")
	time.Sleep(25 * time.Second)
	te.emu.SetLatency(0)
	waitFor(t, 3*time.Minute, "every result", func() bool { return te.resultCount() == len(ids) })
	p.stop(t, 30*time.Second)
	if env := te.poisoned(); len(env) != 0 {
		t.Fatalf("%d poisoned by a hanging Maps: %+v", len(env), env[0])
	}
	for _, id := range ids {
		if r := te.result("geocode", id); r == nil || r.Status != "succeeded" {
			t.Fatalf("%s: %+v", id, r)
		}
	}
}
