package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"mapsworker/worker"
)

// remoteHandler's tasks wait a second for a remote service, saying so
// (worker.Waiting) when wait is set, and note how many run at once.
type remoteHandler struct {
	wait      bool
	now, peak *atomic.Int64
}

func (h remoteHandler) Decode(body []byte, msgID string) (worker.Task, error) {
	return &remoteTask{h: h, id: msgID, raw: body}, nil
}

type remoteTask struct {
	h   remoteHandler
	id  string
	raw []byte
}

func (t *remoteTask) ID() string               { return t.id }
func (t *remoteTask) Kind() string             { return "remote" }
func (t *remoteTask) Request() json.RawMessage { return t.raw }

func (t *remoteTask) Run(ctx context.Context) (*worker.Output, error) {
	n := t.h.now.Add(1)
	defer t.h.now.Add(-1)
	for p := t.h.peak.Load(); n > p && !t.h.peak.CompareAndSwap(p, n); p = t.h.peak.Load() {
	}
	if t.h.wait {
		worker.Waiting(ctx)
		worker.Waiting(ctx) // a second call gives back nothing more
	}
	time.Sleep(time.Second)
	return &worker.Output{Summary: "done", Response: json.RawMessage(`{}`)}, nil
}

// A task waiting outside the process gives its slot to the next message:
// with two slots and eight tasks that each wait a second for a remote
// service, the eight wait together, one second in all, instead of two at a
// time for four. Tasks that do not say they wait stay two at a time.
func TestWaitingTaskFreesItsSlot(t *testing.T) {
	for _, tc := range []struct {
		wait     bool
		wantPeak int64
		wantTook time.Duration
	}{
		{wait: true, wantPeak: 8, wantTook: time.Second},
		{wait: false, wantPeak: 2, wantTook: 4 * time.Second},
	} {
		t.Run(fmt.Sprintf("wait=%v", tc.wait), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := remoteHandler{wait: tc.wait, now: new(atomic.Int64), peak: new(atomic.Int64)}
				q, r := &memQueue{}, newMemResults()
				e := worker.New(q, &memPoison{}, r, h,
					&worker.Options{Concurrency: 2, Prefetch: 8, SummaryInterval: -1, Logger: testLogger()})
				for i := range 8 {
					q.add(fmt.Sprintf(`{"id":"m%d"}`, i), 0)
				}
				start := time.Now()
				go e.Run(context.Background())
				for r.succeeded() < 8 {
					time.Sleep(10 * time.Millisecond)
				}
				took := time.Since(start)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				e.Shutdown(ctx)
				if p := h.peak.Load(); p != tc.wantPeak {
					t.Errorf("%d tasks at once, want %d", p, tc.wantPeak)
				}
				if took < tc.wantTook || took > tc.wantTook+time.Second/2 {
					t.Errorf("eight tasks took %v, want %v", took, tc.wantTook)
				}
			})
		})
	}
}
