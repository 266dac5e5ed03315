package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"mapsworker/worker"
)

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
				h := slowHandler{work: time.Second, wait: tc.wait, runs: new(atomic.Int64), now: new(atomic.Int64), peak: new(atomic.Int64)}
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
