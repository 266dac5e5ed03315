package worker_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"mapsworker/worker"
)

// rig runs an Engine over the in-memory queue inside a synctest bubble.
type rig struct {
	q   *memQueue
	p   *memPoison
	r   *memResults
	ds  *downstream
	e   *worker.Engine
	mu  sync.Mutex
	out map[string][]string // message id -> results of its deliveries
	end chan struct{}
}

func newRig(t *testing.T, ds *downstream, opts *worker.Options) *rig {
	t.Helper()
	g := &rig{q: &memQueue{}, p: &memPoison{}, r: newMemResults(), ds: ds, out: map[string][]string{}, end: make(chan struct{})}
	o := worker.Options{}
	if opts != nil {
		o = *opts
	}
	o.SummaryInterval = -1
	o.Logger = testLogger()
	o.OnOutcome = func(oc worker.Outcome) {
		g.mu.Lock()
		g.out[oc.MessageID] = append(g.out[oc.MessageID], oc.Result)
		g.mu.Unlock()
	}
	g.e = worker.New(g.q, g.p, g.r, dsHandler{ds}, &o)
	return g
}

func (g *rig) start() {
	go func() {
		g.e.Run(context.Background())
		close(g.end)
	}()
}

// stop shuts the engine down and waits for Run to return.
func (g *rig) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g.e.Shutdown(ctx)
	<-g.end
}

// until waits, in the bubble's time, for cond; it fails the test at limit.
func until(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *rig) ended() int { return g.r.succeeded() + len(g.p.envelopes()) }

func req(id, mode string) string {
	return fmt.Sprintf(`{"id":%q,"mode":%q}`, id, mode)
}

// Faults flap 429 → 503 → healthy, again and again: every probe outcome
// closes or re-opens the breaker, the engine never wedges, and every message
// succeeds; nothing is poisoned.
func TestFlappingFaultsNeitherWedgeNorPoison(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ds := &downstream{behave: func(string) error {
			switch ph := time.Since(start) % (20 * time.Second); {
			case ph < 6*time.Second:
				return err429
			case ph < 12*time.Second:
				return err503
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{Concurrency: 8, MaxPollInterval: 10 * time.Second})
		const n = 200
		for i := range n {
			g.q.add(req(fmt.Sprintf("m%d", i), ""), 0)
		}
		g.start()
		until(t, 30*time.Minute, "all succeeded", func() bool { return g.r.succeeded() == n })
		g.stop(t)
		if env := g.p.envelopes(); len(env) != 0 {
			t.Fatalf("%d poisoned through flapping faults, first %+v", len(env), env[0].Error)
		}
		if g.e.Stats().Probes.Load() == 0 {
			t.Fatal("no probe ran")
		}
	})
}

// A burst of 16 concurrent 429s is one episode: the engine resumes after the
// shortest pause (1 s), not after 2^15 s capped at a minute.
func TestBurstOfFaultsIsOneEpisode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var once sync.Once
		var healedAt time.Time
		ds := &downstream{}
		ds.behave = func(string) error {
			if time.Since(start) < 500*time.Millisecond {
				time.Sleep(100 * time.Millisecond) // all 16 in flight at once
				return worker.Environmental("429 TooManyRequests", fmt.Errorf("throttled"), 0)
			}
			once.Do(func() { healedAt = time.Now() })
			return nil
		}
		g := newRig(t, ds, &worker.Options{Concurrency: 16})
		for i := range 16 {
			g.q.add(req(fmt.Sprintf("m%d", i), ""), 0)
		}
		g.start()
		until(t, 10*time.Minute, "all succeeded", func() bool { return g.r.succeeded() == 16 })
		took := time.Since(start)
		g.stop(t)
		if took > 10*time.Second {
			t.Fatalf("16 concurrent 429s paused the engine for %v (healed after %v)", took, healedAt.Sub(start))
		}
	})
}

// Requests the downstream fails every time are poisoned after
// MaxDequeueCount deliveries while it answers others; an outage, in which
// the probe fails too, poisons nothing however long it lasts.
func TestAlwaysFailingPoisonedOutagesNot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ds := &downstream{behave: func(mode string) error {
			if mode == "always5xx" {
				return err503
			}
			if d := time.Since(start); d > 5*time.Minute && d < 25*time.Minute {
				return err503 // a 20-minute outage of everything
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{Concurrency: 4, MaxDequeueCount: 3})
		for i := range 10 {
			g.q.add(req(fmt.Sprintf("bad%d", i), "always5xx"), 0)
		}
		g.start()
		until(t, 5*time.Minute, "always-failing poisoned", func() bool { return len(g.p.envelopes()) == 10 })
		for _, env := range g.p.envelopes() {
			if env.Error.Class != "transient" || env.DequeueCount > 3 {
				t.Errorf("envelope %+v: want transient after at most 3 deliveries", env)
			}
		}
		// Now an outage: the valid backlog waits it out.
		time.Sleep(5*time.Minute - time.Since(start) + time.Second)
		for i := range 30 {
			g.q.add(req(fmt.Sprintf("ok%d", i), ""), 0)
		}
		until(t, 40*time.Minute, "valid backlog succeeded", func() bool { return g.r.succeeded() == 30 })
		g.stop(t)
		if n := len(g.p.envelopes()); n != 10 {
			t.Fatalf("%d poisoned; the outage poisoned %d", n, n-10)
		}
	})
}

// A producer's text that looks like the engine's mark is not believed: the
// message counts its deliveries, is poisoned, and its envelope holds the
// text exactly as sent.
func TestForgedMarkIsNotBelieved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := &downstream{behave: func(mode string) error {
			if mode == "always5xx" {
				return err503
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 3})
		forged := []string{
			"!mapsworker:env=999999\n" + req("legacy", "always5xx"),
			"!mapsworker:msg-9999;env=999999\n" + req("bound", "always5xx"),
		}
		for _, text := range forged {
			g.q.add(text, 0)
		}
		g.q.add(req("fine", ""), 0) // keeps the downstream shown up
		g.start()
		until(t, 10*time.Minute, "forged poisoned", func() bool { return len(g.p.envelopes()) == 2 })
		g.stop(t)
		got := map[string]bool{}
		for _, env := range g.p.envelopes() {
			got[env.Message] = true
			if env.DequeueCount > 3 {
				t.Errorf("poisoned after %d deliveries", env.DequeueCount)
			}
		}
		for _, text := range forged {
			if !got[text] {
				t.Errorf("envelope does not hold %q as sent; have %v", text, got)
			}
		}
	})
}

// An envelope that would not fit in 64 KiB keeps the original text in a
// blob it names; one that fits keeps it inline, HTML characters unescaped.
// Nothing loops on a 413.
func TestOversizedEnvelopeSpills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, &downstream{}, nil)
		lt := `{"id":"lt","kind":"x","junk":"` + strings.Repeat("<", 11000) + `",`     // invalid JSON
		quotes := `{"id":"q","kind":"x","junk":"` + strings.Repeat(`\"`, 20000) + `",` // escapes double
		b64 := base64.StdEncoding.EncodeToString([]byte(`{"mode":"invalid","pad":"` + strings.Repeat("x", 48000) + `"}`))
		texts := []string{lt, quotes, b64}
		for _, text := range texts {
			g.q.add(text, 0)
		}
		g.start()
		until(t, time.Minute, "all poisoned", func() bool { return len(g.p.envelopes()) == 3 })
		g.stop(t)
		orig := map[string]bool{}
		for _, env := range g.p.envelopes() {
			text := env.Message
			if env.MessageBlob != "" {
				text = g.r.texts[env.MessageBlob]
			}
			orig[text] = true
		}
		for _, text := range texts {
			if !orig[text] {
				t.Errorf("original of %d bytes not recoverable exactly", len(text))
			}
		}
		if g.q.len() != 0 || g.q.receives.Load() > 20 {
			t.Fatalf("queue holds %d, %d receives: something looped", g.q.len(), g.q.receives.Load())
		}
	})
}

// A downstream that accepts requests and answers none for 20 s costs a few
// minutes of delay and nothing else: every try times out, the probe says
// it is down, nothing is poisoned, everything succeeds after.
func TestHangingDownstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ds := &downstream{behave: func(string) error {
			if time.Since(start) < 20*time.Second {
				return errHang
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 2})
		for i := range 40 {
			g.q.add(req(fmt.Sprintf("m%d", i), ""), 0)
		}
		g.start()
		until(t, 5*time.Minute, "all succeeded", func() bool { return g.r.succeeded() == 40 })
		g.stop(t)
		if n := len(g.p.envelopes()); n != 0 {
			t.Fatalf("%d poisoned by a 20 s hang", n)
		}
	})
}

// Messages with a 60 s time-to-live through a 90 s outage are poisoned as
// expiring, with their text, instead of vanishing; so is one whose work
// fails transiently until it runs out of time while the downstream is up.
func TestShortTTLThroughOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ds := &downstream{behave: func(mode string) error {
			if time.Since(start) < 90*time.Second {
				return err503
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{Concurrency: 4})
		texts := map[string]bool{}
		for i := range 100 {
			text := req(fmt.Sprintf("m%d", i), "")
			texts[text] = true
			g.q.add(text, 60*time.Second)
		}
		g.start()
		until(t, 5*time.Minute, "every message ended", func() bool { return g.ended() == 100 })
		g.stop(t)
		if n := len(g.q.expired); n != 0 {
			t.Fatalf("%d messages expired unseen", n)
		}
		for _, env := range g.p.envelopes() {
			if env.Error.Class != "expiring" || !texts[env.Message] {
				t.Errorf("envelope class %q text %q", env.Error.Class, env.Message)
			}
		}
	})
}

func TestShortTTLHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := &downstream{behave: func(mode string) error {
			if mode == "always5xx" {
				return err503
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 50})
		for i := range 20 {
			g.q.add(req(fmt.Sprintf("m%d", i), ""), 60*time.Second)
		}
		g.q.add(req("doomed", "always5xx"), 60*time.Second)
		g.start()
		until(t, 5*time.Minute, "every message ended", func() bool { return g.ended() == 21 })
		g.stop(t)
		if n := len(g.q.expired); n != 0 {
			t.Fatalf("%d expired unseen", n)
		}
		env := g.p.envelopes()
		if g.r.succeeded() != 20 || len(env) != 1 || env[0].Error.Class != "expiring" {
			t.Fatalf("succeeded %d, envelopes %+v", g.r.succeeded(), env)
		}
	})
}

// Messages with the same result name in flight at once cost one call.
func TestInFlightDuplicatesCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ds := &downstream{behave: func(string) error { time.Sleep(time.Second); return nil }}
		g := newRig(t, ds, &worker.Options{Concurrency: 16})
		for range 5 {
			g.q.add(req("same", ""), 0)
		}
		for i := range 5 {
			g.q.add(req(fmt.Sprintf("other%d", i), ""), 0)
		}
		g.start()
		until(t, time.Minute, "queue empty", func() bool { return g.q.len() == 0 })
		g.stop(t)
		if n := ds.runsOf("same"); n != 1 {
			t.Fatalf("5 duplicates in flight cost %d calls", n)
		}
		if n := g.e.Stats().Coalesced.Load(); n != 4 {
			t.Fatalf("coalesced %d, want 4", n)
		}
	})
}

// Deliveries ended by a stop, and by a release whose update failed, are not
// the message's fault: they do not count towards poisoning.
func TestDeliveriesNotTheMessagesFaultDoNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &memQueue{}
		// With one worker, one message is in flight and the other waits,
		// dequeued, when each stop comes.
		q.add(req("slow", ""), 0)
		q.add(req("slow2", ""), 0)
		ds := &downstream{behave: func(string) error { return errHang }}
		// Five stops that cut the work short.
		for range 5 {
			g := newRig(t, ds, &worker.Options{MaxDequeueCount: 2})
			g.q = q
			g.e = worker.New(q, g.p, g.r, dsHandler{ds}, &worker.Options{MaxDequeueCount: 2, SummaryInterval: -1,
				Concurrency: 1, Prefetch: 1, Logger: testLogger()})
			g.start()
			until(t, time.Minute, "in flight", func() bool { return g.e.Stats().InFlight.Load() == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			g.e.Shutdown(ctx)
			cancel()
			<-g.end
		}
		// Then a healthy run: it is worked, not poisoned as a crash loop.
		ds.behave = nil
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 2})
		g.q = q
		g.e = worker.New(q, g.p, g.r, dsHandler{ds}, &worker.Options{MaxDequeueCount: 2, SummaryInterval: -1,
			Logger: testLogger()})
		g.start()
		until(t, time.Minute, "succeeded", func() bool { return g.r.succeeded() == 2 })
		g.stop(t)
		if len(g.p.envelopes()) != 0 {
			t.Fatalf("poisoned after stops: %+v", g.p.envelopes())
		}
	})
}

func TestFailedEnvironmentReleaseDoesNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The message is throttled on its first three deliveries, and each
		// of those releases fails: it comes back when its lease ends,
		// unmarked. The probe (another request) is not throttled.
		var calls atomic.Int64
		ds := &downstream{behave: func(mode string) error {
			if mode == "m" && calls.Add(1) <= 3 {
				return err429
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 2, Lease: 10 * time.Second})
		g.q.add(req("m", "m"), 0)
		g.q.failReleases.Store(3) // three releases fail; the lease brings it back
		g.start()
		until(t, 30*time.Minute, "succeeded", func() bool { return g.r.succeeded() == 1 })
		g.stop(t)
		if len(g.p.envelopes()) != 0 {
			t.Fatalf("poisoned: %+v", g.p.envelopes())
		}
	})
}

// However a message's deliveries end, it is poisoned after
// MaxDequeueCount + EnvironmentAllowance of them.
func TestDeliveriesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// This request alone is throttled, every time, for ever.
		ds := &downstream{behave: func(mode string) error {
			if mode == "throttled" {
				return err429
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 3, EnvironmentAllowance: 5})
		g.q.add(req("t", "throttled"), 0)
		g.start()
		until(t, 2*time.Hour, "poisoned", func() bool { return len(g.p.envelopes()) == 1 })
		g.stop(t)
		if env := g.p.envelopes()[0]; env.DequeueCount != 9 || env.Error.Code != "TooManyDeliveries" {
			t.Fatalf("envelope %+v, want TooManyDeliveries at delivery 9", env)
		}
	})
}

func testLogger() *slog.Logger {
	if testing.Verbose() && strings.Contains(fmt.Sprint(os.Args), "debuglog") {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// A message with no room left for the mark (near 64 KiB) is released for
// faults not its own like any other: those deliveries do not count.
func TestNoRoomForTheMarkDoesNotCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		ds := &downstream{behave: func(mode string) error {
			if mode == "big" && calls.Add(1) <= 3 {
				return err429
			}
			return nil
		}}
		g := newRig(t, ds, &worker.Options{MaxDequeueCount: 2})
		head := `{"id":"big","mode":"big","pad":"`
		text := head + strings.Repeat("x", maxText-len(head)-10) + `"}`
		g.q.add(text, 0)
		g.start()
		until(t, 30*time.Minute, "succeeded", func() bool { return g.r.succeeded() == 1 })
		g.stop(t)
		if len(g.p.envelopes()) != 0 {
			t.Fatalf("poisoned: %+v", g.p.envelopes()[0].Error)
		}
	})
}

type ctxKey struct{}

// Observe's context reaches the task and the delivery's storage calls, and
// done gets the outcome with its timings.
func TestObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var outcomes []worker.Outcome
		seen := atomic.Int64{}
		ds := &downstream{}
		g := newRig(t, ds, &worker.Options{Observe: func(ctx context.Context, m *worker.Message) (context.Context, func(worker.Outcome)) {
			return context.WithValue(ctx, ctxKey{}, m.ID), func(o worker.Outcome) {
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		}})
		ds.behave = nil
		g.q.add(req("a", ""), 0)
		g.q.onDelete = func(ctx context.Context) {
			if ctx.Value(ctxKey{}) != nil {
				seen.Add(1)
			}
		}
		g.start()
		until(t, time.Minute, "succeeded", func() bool { return g.r.succeeded() == 1 })
		g.stop(t)
		mu.Lock()
		defer mu.Unlock()
		if len(outcomes) != 1 || outcomes[0].Result != worker.OutcomeSucceeded || outcomes[0].DequeueCount != 1 ||
			outcomes[0].Started.IsZero() || outcomes[0].End.Before(outcomes[0].Started) {
			t.Fatalf("outcomes %+v", outcomes)
		}
		if seen.Load() != 1 {
			t.Fatal("the delete did not run under Observe's context")
		}
	})
}

// slowResults is a result store whose writes take d: a storage front end
// slower than the downstream. It records the most writes under way at once.
type slowResults struct {
	*memResults
	d         time.Duration
	now, peak atomic.Int64
}

func (r *slowResults) Put(ctx context.Context, name string, doc []byte, failed bool) error {
	n := r.now.Add(1)
	defer r.now.Add(-1)
	for p := r.peak.Load(); n > p && !r.peak.CompareAndSwap(p, n); p = r.peak.Load() {
	}
	select {
	case <-time.After(r.d):
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.memResults.Put(ctx, name, doc, failed)
}

// orderedQueue fails the test when a message is deleted before its
// succeeded result is written.
type orderedQueue struct {
	*memQueue
	t     *testing.T
	r     *memResults
	names sync.Map // message id -> result name
}

func (q *orderedQueue) add(id string) {
	q.names.Store(q.memQueue.add(req(id, ""), 0), worker.ResultName("test", id))
}

func (q *orderedQueue) Delete(ctx context.Context, id, pop string) error {
	if name, ok := q.names.Load(id); ok {
		if done, _ := q.r.Succeeded(ctx, name.(string)); !done {
			q.t.Errorf("message %s deleted before its result %s was written", id, name)
		}
	}
	return q.memQueue.Delete(ctx, id, pop)
}

// slowStorageRig runs an engine at the default settings but conc, whose
// tasks take task and whose result writes take write.
func slowStorageRig(t *testing.T, conc int, task, write time.Duration, opts *worker.Options) (*orderedQueue, *slowResults, *downstream, *worker.Engine) {
	r := &slowResults{memResults: newMemResults(), d: write}
	q := &orderedQueue{memQueue: &memQueue{}, t: t, r: r.memResults}
	ds := &downstream{behave: func(string) error { time.Sleep(task); return nil }}
	o := worker.Options{}
	if opts != nil {
		o = *opts
	}
	o.Concurrency, o.SummaryInterval, o.Logger = conc, -1, testLogger()
	return q, r, ds, worker.New(q, &memPoison{}, r, dsHandler{ds}, &o)
}

// A slow result store does not slow the tasks: a worker is free for the
// next message once its task is done, and the result is written and the
// message deleted off it, so the tasks go at the workers' rate (conc /
// task time) while fewer than Completions writes are under way. Each
// message is deleted only after its result is written, and run once.
func TestSlowResultWritesDoNotHoldWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const conc, n = 4, 400
		const task, write = 50 * time.Millisecond, 40 * time.Millisecond
		q, r, ds, e := slowStorageRig(t, conc, task, write, nil)
		for i := range n {
			q.add(fmt.Sprintf("m%d", i))
		}
		start := time.Now()
		go e.Run(context.Background())
		until(t, time.Minute, "all succeeded", func() bool { return q.len() == 0 })
		took := time.Since(start)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		e.Shutdown(ctx)
		// At the workers' rate: n/conc tasks of 50 ms each, 5 s; holding a
		// worker for the write too would take n/conc × 90 ms, 9 s.
		slotRate := time.Duration(n/conc) * task
		if took > slotRate*115/100 {
			t.Errorf("%d messages took %v; the workers alone allow %v (with the writes on the workers: %v)",
				n, took, slotRate, time.Duration(n/conc)*(task+write))
		}
		if got := r.succeeded(); got != n {
			t.Errorf("%d results written, want %d", got, n)
		}
		if p := r.peak.Load(); p > conc {
			t.Errorf("%d result writes at once, more than the %d completions allowed", p, conc)
		}
		if c := ds.calls.Load(); c != n {
			t.Errorf("%d tasks run for %d messages", c, n)
		}
	})
}

// A completion that outlasts the lease keeps it renewed: the message is not
// delivered again while its result is being written.
func TestLeaseRenewedUntilCompletionEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, r, ds, e := slowStorageRig(t, 2, 10*time.Millisecond, 5*time.Second,
			&worker.Options{Lease: 2 * time.Second, TryTimeout: 30 * time.Second})
		for i := range 6 {
			q.add(fmt.Sprintf("m%d", i))
		}
		go e.Run(context.Background())
		until(t, 5*time.Minute, "all succeeded", func() bool { return q.len() == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		e.Shutdown(ctx)
		if c, d := ds.calls.Load(), e.Stats().Duplicates.Load(); c != 6 || d != 0 {
			t.Errorf("%d tasks run and %d duplicates for 6 messages: a lease lapsed during a result write", c, d)
		}
		if r.succeeded() != 6 || e.Stats().Renewals.Load() == 0 {
			t.Errorf("%d results, %d renewals", r.succeeded(), e.Stats().Renewals.Load())
		}
	})
}

// A stop waits for the completions under way: every message whose task
// ran has its result written and is deleted; the others are released,
// visible at once. Nothing is lost or done twice.
func TestShutdownWaitsForCompletions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 100
		q, r, ds, e := slowStorageRig(t, 4, 50*time.Millisecond, time.Second, nil)
		for i := range n {
			q.add(fmt.Sprintf("m%d", i))
		}
		end := make(chan struct{})
		go func() { e.Run(context.Background()); close(end) }()
		until(t, time.Minute, "writes under way", func() bool { return r.now.Load() == 4 })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		<-end
		ran, written := int(ds.calls.Load()), r.succeeded()
		if written != ran || written == 0 {
			t.Errorf("%d tasks ran, %d results written: the stop did not wait for the completions", ran, written)
		}
		if left := q.len(); left+written != n {
			t.Errorf("%d messages left and %d written, of %d", left, written, n)
		}
		if got, err := q.Receive(context.Background(), 32, time.Minute); err != nil || len(got) != min(32, n-written) {
			t.Errorf("after the stop %d messages visible at once (err %v), want %d", len(got), err, min(32, n-written))
		}
	})
}

// slowAnswerQueue dequeues at once but answers a receive after d: a stop
// that cut the receive short would leave its messages invisible for a
// lease.
type slowAnswerQueue struct {
	*memQueue
	d         time.Duration
	receiving atomic.Bool
}

func (q *slowAnswerQueue) Receive(ctx context.Context, n int, vis time.Duration) ([]*worker.Message, error) {
	msgs, err := q.memQueue.Receive(ctx, n, vis)
	if err != nil || len(msgs) == 0 {
		return msgs, err
	}
	q.receiving.Store(true)
	defer q.receiving.Store(false)
	select {
	case <-time.After(q.d):
		return msgs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// A receive under way when the stop comes is not cut short (within a
// grace): the messages it dequeued are released, visible again at once.
func TestStopDuringReceiveReleasesItsMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &slowAnswerQueue{memQueue: &memQueue{}, d: 300 * time.Millisecond}
		for i := range 10 {
			q.add(req(fmt.Sprintf("m%d", i), ""), 0)
		}
		ds := &downstream{}
		e := worker.New(q, &memPoison{}, newMemResults(), dsHandler{ds},
			&worker.Options{SummaryInterval: -1, Logger: testLogger()})
		end := make(chan struct{})
		go func() { e.Run(context.Background()); close(end) }()
		until(t, time.Minute, "a receive under way", q.receiving.Load)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		e.Shutdown(ctx)
		<-end
		got, _ := q.memQueue.Receive(context.Background(), 32, time.Minute)
		if len(got) != 10 || ds.calls.Load() != 0 {
			t.Fatalf("after the stop %d of 10 messages visible, %d worked", len(got), ds.calls.Load())
		}
	})
}
