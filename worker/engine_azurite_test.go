package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/worker"
)

// fakeHandler decodes {"id","kind","fail"} and fails as asked; it counts runs.
type fakeHandler struct {
	runs  sync.Map // id -> *atomic.Int64
	delay time.Duration
}

type fakeReq struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Fail string `json:"fail"`
}

type fakeTask struct {
	h   *fakeHandler
	req fakeReq
	raw []byte
}

func (h *fakeHandler) Decode(body []byte, msgID string) (worker.Task, error) {
	var r fakeReq
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, worker.Invalidf("InvalidJSON", "not JSON: %v", err)
	}
	if r.ID == "" {
		r.ID = msgID
	}
	t := &fakeTask{h: h, req: r, raw: body}
	if r.Fail == "invalid" {
		return t, worker.Invalidf("Bad", "asked to be invalid")
	}
	return t, nil
}

func (h *fakeHandler) count(id string) int64 {
	v, _ := h.runs.LoadOrStore(id, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (t *fakeTask) ID() string               { return t.req.ID }
func (t *fakeTask) Kind() string             { return t.req.Kind }
func (t *fakeTask) Request() json.RawMessage { return t.raw }
func (t *fakeTask) Run(ctx context.Context) (*worker.Output, error) {
	v, _ := t.h.runs.LoadOrStore(t.req.ID, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if t.h.delay > 0 {
		select {
		case <-time.After(t.h.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch t.req.Fail {
	case "rejected":
		return nil, worker.Rejected("400 BadRequest", errors.New("refused"))
	case "transient":
		return nil, worker.Transient("503", errors.New("unavailable"))
	case "panic":
		var m map[string]int
		m["x"]++ // a handler bug
	}
	return &worker.Output{Summary: map[string]int{"n": 1}, Response: json.RawMessage(`{"ok":true}`)}, nil
}

func newStorage(t *testing.T) *worker.Storage {
	t.Helper()
	az := azuritetest.New(t, nil)
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{Queue: "requests", Container: "results"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ensure(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestEngineSmoke(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	for i := range 50 {
		if err := st.Requests.Send(ctx, fmt.Sprintf(`{"id":"m%d","kind":"k"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Requests.Send(ctx, `{"id":"bad","kind":"k","fail":"invalid"}`)
	var outcomes sync.Map
	var n atomic.Int64
	h := &fakeHandler{}
	e := worker.New(st.Requests, st.Poison, st.Results, h, &worker.Options{
		MaxPollInterval: 200 * time.Millisecond,
		OnOutcome: func(o worker.Outcome) {
			outcomes.Store(o.ID, o.Result)
			n.Add(1)
		},
	})
	go e.Run(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for n.Load() < 51 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 51 {
		t.Fatalf("outcomes = %d, want 51", got)
	}
	if r, _ := outcomes.Load("bad"); r != worker.OutcomePoisoned {
		t.Fatalf("bad: %v", r)
	}
}

// runEngine runs an engine until stop is called, which drains it.
func runEngine(t *testing.T, st *worker.Storage, h worker.Handler, opts *worker.Options) (e *worker.Engine, stop func()) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.MaxPollInterval == 0 {
		opts.MaxPollInterval = 200 * time.Millisecond
	}
	e = worker.New(st.Requests, st.Poison, st.Results, h, opts)
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			<-done
		})
	}
	t.Cleanup(stop)
	return e, stop
}

func poisonEnvelopes(t *testing.T, st *worker.Storage) []worker.Envelope {
	t.Helper()
	var out []worker.Envelope
	for {
		msgs, err := st.Poison.Receive(context.Background(), 32, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			var e worker.Envelope
			if err := json.Unmarshal([]byte(m.Text), &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTransientRetriedThenPoisoned: a message failing transiently is retried
// in process, released with a delay, and poisoned only at the maximum
// dequeue count, with the reason in the envelope; a panicking handler is one
// such failure and does not stop the engine.
func TestTransientRetriedThenPoisoned(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	st.Requests.Send(ctx, `{"id":"t1","kind":"k","fail":"transient"}`)
	st.Requests.Send(ctx, `{"id":"p1","kind":"k","fail":"panic"}`)
	st.Requests.Send(ctx, `{"id":"ok1","kind":"k"}`)
	h := &fakeHandler{}
	var poisoned atomic.Int64
	e, stop := runEngine(t, st, h, &worker.Options{
		MaxDequeueCount: 3, ReleaseDelay: 200 * time.Millisecond, RetryBase: 5 * time.Millisecond, RetryAttempts: 3,
		OnOutcome: func(o worker.Outcome) {
			if o.Result == worker.OutcomePoisoned {
				poisoned.Add(1)
			}
		},
	})
	waitUntil(t, 30*time.Second, "two poisoned", func() bool { return poisoned.Load() == 2 })
	stop()
	if got := h.count("t1"); got != 9 {
		t.Errorf("transient runs = %d, want 3 deliveries × 3 tries", got)
	}
	if got := h.count("p1"); got != 3 {
		t.Errorf("panic runs = %d, want 3 (panics are not retried in process)", got)
	}
	if got := h.count("ok1"); got != 1 {
		t.Errorf("ok runs = %d", got)
	}
	if e.Stats().Released.Load() != 4 {
		t.Errorf("released = %d, want 4", e.Stats().Released.Load())
	}
	for _, env := range poisonEnvelopes(t, st) {
		if env.DequeueCount != 3 || env.Error.Class != "transient" || env.Message == "" {
			t.Errorf("envelope = %+v", env)
		}
	}
}

// TestCrashLoopPoisonedUnworked: a message already delivered more than the
// maximum (its consumers kept dying) is poisoned without being worked.
func TestCrashLoopPoisonedUnworked(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	st.Requests.Send(ctx, `{"id":"loop","kind":"k"}`)
	for range 2 { // two consumers took it and died
		msgs, err := st.Requests.Receive(ctx, 1, time.Second)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("receive: %v", err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	h := &fakeHandler{}
	var n atomic.Int64
	_, stop := runEngine(t, st, h, &worker.Options{MaxDequeueCount: 2, OnOutcome: func(worker.Outcome) { n.Add(1) }})
	waitUntil(t, 10*time.Second, "outcome", func() bool { return n.Load() == 1 })
	stop()
	if h.count("loop") != 0 {
		t.Errorf("crash-looping message was worked")
	}
	env := poisonEnvelopes(t, st)
	if len(env) != 1 || env[0].Error.Code != "MaxDequeueCountExceeded" || env[0].DequeueCount != 3 {
		t.Fatalf("envelopes = %+v", env)
	}
}

// TestLeaseRenewedForLongWork: two engines compete for messages whose work
// takes three times the lease; the renewals keep each message with its first
// consumer, so each is worked once.
func TestLeaseRenewedForLongWork(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	for i := range 3 {
		st.Requests.Send(ctx, fmt.Sprintf(`{"id":"slow%d","kind":"k"}`, i))
	}
	h := &fakeHandler{delay: 3 * time.Second}
	var done atomic.Int64
	opts := func() *worker.Options {
		return &worker.Options{Lease: time.Second, Concurrency: 2,
			OnOutcome: func(o worker.Outcome) {
				if o.Result == worker.OutcomeSucceeded {
					done.Add(1)
				}
			}}
	}
	e1, stop1 := runEngine(t, st, h, opts())
	e2, stop2 := runEngine(t, st, h, opts())
	waitUntil(t, 30*time.Second, "three done", func() bool { return done.Load() == 3 })
	stop1()
	stop2()
	for i := range 3 {
		if got := h.count(fmt.Sprintf("slow%d", i)); got != 1 {
			t.Errorf("slow%d worked %d times", i, got)
		}
	}
	if r := e1.Stats().Renewals.Load() + e2.Stats().Renewals.Load(); r < 3 {
		t.Errorf("renewals = %d", r)
	}
}

// countingQueue records the size of every receive.
type countingQueue struct {
	worker.Queue
	mu    sync.Mutex
	asked []int
}

func (q *countingQueue) Receive(ctx context.Context, n int, vis time.Duration) ([]*worker.Message, error) {
	q.mu.Lock()
	q.asked = append(q.asked, n)
	q.mu.Unlock()
	return q.Queue.Receive(ctx, n, vis)
}

// busyHandler records how many tasks run at once.
type busyHandler struct {
	fakeHandler
	now, peak atomic.Int64
}

type busyTask struct {
	*fakeTask
	h *busyHandler
}

func (h *busyHandler) Decode(body []byte, id string) (worker.Task, error) {
	t, err := h.fakeHandler.Decode(body, id)
	if err != nil {
		return t, err
	}
	return busyTask{t.(*fakeTask), h}, nil
}

func (t busyTask) Run(ctx context.Context) (*worker.Output, error) {
	n := t.h.now.Add(1)
	defer t.h.now.Add(-1)
	for p := t.h.peak.Load(); n > p && !t.h.peak.CompareAndSwap(p, n); p = t.h.peak.Load() {
	}
	time.Sleep(20 * time.Millisecond)
	return t.fakeTask.Run(ctx)
}

// TestConcurrencyAndBatchSize: never more than Concurrency messages are
// worked at once (and that many are), no receive asks for more than 32, and
// a backlog is fetched in batches, not one message a call.
func TestConcurrencyAndBatchSize(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	const n = 200
	for i := range n {
		st.Requests.Send(ctx, fmt.Sprintf(`{"id":"c%d","kind":"k"}`, i))
	}
	q := &countingQueue{Queue: st.Requests}
	h := &busyHandler{}
	var done atomic.Int64
	opts := &worker.Options{Concurrency: 8, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxPollInterval: 200 * time.Millisecond,
		OnOutcome:       func(worker.Outcome) { done.Add(1) }}
	e := worker.New(q, st.Poison, st.Results, h, opts)
	go e.Run(ctx)
	waitUntil(t, 60*time.Second, "all done", func() bool { return done.Load() == n })
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	e.Shutdown(sctx)
	if p := h.peak.Load(); p != 8 {
		t.Errorf("peak in flight = %d, want 8", p)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	receives := 0
	for _, a := range q.asked {
		if a > 32 || a < 1 {
			t.Errorf("a receive asked for %d messages", a)
		}
		receives++
	}
	if q.asked[0] != 32 {
		t.Errorf("first receive asked for %d, want 32 (a receive's most, of 8 workers + 32 waiting)", q.asked[0])
	}
	if receives > n/4 {
		t.Errorf("%d receives for %d messages: not fetched in batches", receives, n)
	}
}
