package worker_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"mapsworker/worker"
)

// slowHandler decodes every message into a task that works for work, and
// says it may when long is set. When wait is set the work is waiting for a
// remote service, and the task says so (worker.Waiting). now and peak, when
// set, count the tasks running and the most at once.
type slowHandler struct {
	work      time.Duration
	long      bool
	wait      bool
	runs      *atomic.Int64
	now, peak *atomic.Int64
}

func (h slowHandler) Decode(body []byte, msgID string) (worker.Task, error) {
	t := &slowTask{h: h, id: msgID, raw: body}
	if h.long {
		return &longTask{t}, nil
	}
	return t, nil
}

type slowTask struct {
	h   slowHandler
	id  string
	raw []byte
}

func (t *slowTask) ID() string               { return t.id }
func (t *slowTask) Kind() string             { return "slow" }
func (t *slowTask) Request() json.RawMessage { return t.raw }

func (t *slowTask) Run(ctx context.Context) (*worker.Output, error) {
	t.h.runs.Add(1)
	if t.h.now != nil {
		n := t.h.now.Add(1)
		defer t.h.now.Add(-1)
		for p := t.h.peak.Load(); n > p && !t.h.peak.CompareAndSwap(p, n); p = t.h.peak.Load() {
		}
	}
	if t.h.wait {
		worker.Waiting(ctx)
		worker.Waiting(ctx) // a second call gives back nothing more
	}
	select {
	case <-time.After(t.h.work):
		return &worker.Output{Summary: "done", Response: json.RawMessage(`{}`)}, nil
	case <-ctx.Done():
		return nil, worker.Transient("Timeout", ctx.Err())
	}
}

type longTask struct{ *slowTask }

func (*longTask) TryTimeout() time.Duration { return 5 * time.Minute }

// A task that says it runs long gets its own try bound, and its lease is
// renewed throughout: 90 s of work, past the 30 s default and the lease,
// is one run and one result. Without it, the same work times out.
func TestLongRunnerOutlastsTryTimeout(t *testing.T) {
	for _, long := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			runs := new(atomic.Int64)
			q, p, r := &memQueue{}, &memPoison{}, newMemResults()
			e := worker.New(q, p, r, slowHandler{work: 90 * time.Second, long: long, runs: runs},
				&worker.Options{SummaryInterval: -1, Logger: testLogger(), MaxDequeueCount: 2})
			q.add(`{"id":"m"}`, 0)
			done := make(chan struct{})
			go func() { e.Run(context.Background()); close(done) }()
			time.Sleep(4 * time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			e.Shutdown(ctx)
			<-done
			switch {
			case long && (r.succeeded() != 1 || runs.Load() != 1):
				t.Errorf("long runner: %d results after %d runs, want 1 after 1", r.succeeded(), runs.Load())
			case !long && r.succeeded() != 0:
				t.Errorf("plain task: %d results of 90 s work under a 30 s try bound, want 0", r.succeeded())
			}
		})
	}
}
