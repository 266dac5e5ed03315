package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// Defaults of the batcher.
const (
	DefaultBatchMax = 100 // the most items Azure Maps takes in one batch
	batchTimeout    = 2 * time.Minute
	// maxCallsInFlight bounds the calls under way to one API (single or
	// batch, sent or waiting for a rate slot). Requests arriving past it
	// gather into the next batch instead of opening more calls.
	maxCallsInFlight = 16
)

// errBatchRefused makes a waiter fall back to a single call.
var errBatchRefused = errors.New("jobs: batch refused")

// batcher sends the requests of one API (geocode or route) by group commit.
// A request goes out at once as a single call while the API has a free rate
// slot and fewer than maxCallsInFlight calls are under way. Otherwise it
// joins the pending requests, which go together when a call of this API
// ends (or at once when none is under way) as one batch call
// (POST /geocode:batch, /route/directions:batch). So there is no wait for
// company while there is capacity, and batches grow by themselves when the
// single-call rate or the calls in flight are the bottleneck.
//
// A request refused a rate slot takes the single call anyway, waiting for its
// slot, when that wait is shorter than a call takes (it would wait at least
// that long for the next batch). A batch whose own rate slot is not free
// sends its first request as a single call instead and keeps the others for
// the next turn.
//
// Each request gets its own item's answer or error. If the batch endpoint is
// refused (403, 404: the account's plan or role does not allow it), or
// answers 400 as a whole, the batcher sends single calls.
type batcher[Q any] struct {
	single func(context.Context, Q) (*maps.Response, error)
	batch  func(context.Context, []Q) (*maps.BatchResponse, error)
	max    int

	mu       sync.Mutex
	pending  []*batchWaiter[Q]
	inFlight int           // calls under way
	latency  time.Duration // moving average of the calls that did not wait for a slot

	refused atomic.Bool
	// Batches and Items count the batch calls and their items, for tests.
	batches, items atomic.Int64
}

type batchWaiter[Q any] struct {
	q    Q
	ctx  context.Context
	done chan batchAnswer // buffered: the sender never blocks
}

type batchAnswer struct {
	resp *maps.Response
	err  error
}

// newBatcher returns a batcher sending up to max items per batch (at most
// and by default DefaultBatchMax).
func newBatcher[Q any](single func(context.Context, Q) (*maps.Response, error), batch func(context.Context, []Q) (*maps.BatchResponse, error), max int) *batcher[Q] {
	if max <= 0 || max > DefaultBatchMax {
		max = DefaultBatchMax
	}
	return &batcher[Q]{single: single, batch: batch, max: max}
}

// do answers q by a single call or through a batch.
func (b *batcher[Q]) do(ctx context.Context, q Q) (*maps.Response, error) {
	if b.refused.Load() {
		return b.single(ctx, q)
	}
	b.mu.Lock()
	if len(b.pending) == 0 && b.inFlight < maxCallsInFlight {
		b.inFlight++
		b.mu.Unlock()
		start := time.Now()
		resp, err := b.single(maps.WithoutRateWait(ctx), q)
		var rl *maps.RateLimitedError
		if !errors.As(err, &rl) {
			b.ended(start)
			return resp, err
		}
		b.mu.Lock()
		if rl.Wait < b.latency {
			// Cheaper than waiting for the next batch: keep the call
			// (it stays counted in flight) and wait for the slot.
			b.mu.Unlock()
			resp, err := b.single(ctx, q)
			b.ended(time.Time{})
			return resp, err
		}
		b.inFlight--
	}
	w := &batchWaiter[Q]{q: q, ctx: ctx, done: make(chan batchAnswer, 1)}
	b.pending = append(b.pending, w)
	if b.inFlight == 0 {
		b.flushLocked()
	}
	b.mu.Unlock()
	select {
	case a := <-w.done:
		if errors.Is(a.err, errBatchRefused) {
			return b.single(ctx, q)
		}
		return a.resp, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ended notes the end of a call begun at start (zero if it waited for a
// rate slot: its time is not the service's) and sends what has gathered
// meanwhile.
func (b *batcher[Q]) ended(start time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
	if !start.IsZero() {
		d := time.Since(start)
		if b.latency == 0 {
			b.latency = d
		} else {
			b.latency += (d - b.latency) / 8
		}
	}
	b.flushLocked()
}

// flushLocked sends up to max pending requests as one call, on a goroutine
// of its own, unless maxCallsInFlight calls are under way.
func (b *batcher[Q]) flushLocked() {
	if len(b.pending) == 0 || b.inFlight >= maxCallsInFlight {
		return
	}
	n := min(len(b.pending), b.max)
	ws := b.pending[:n:n]
	b.pending = append([]*batchWaiter[Q](nil), b.pending[n:]...)
	b.inFlight++
	go b.send(ws)
}

// send answers the waiters ws, as one batch call or a single call, and then
// counts the call as ended.
func (b *batcher[Q]) send(ws []*batchWaiter[Q]) {
	// Drop the requests whose callers have gone (shutdown).
	live := ws[:0]
	for _, w := range ws {
		if w.ctx.Err() == nil {
			live = append(live, w)
		}
	}
	switch {
	case len(live) == 0:
		b.ended(time.Time{})
	case b.refused.Load():
		for _, w := range live {
			w.done <- batchAnswer{err: errBatchRefused}
		}
		b.ended(time.Time{})
	case len(live) == 1:
		// One request needs no batch: a single call is cheaper to answer
		// and leaves the batch rate for larger batches.
		w := live[0]
		resp, err := b.single(w.ctx, w.q)
		w.done <- batchAnswer{resp: resp, err: err}
		b.ended(time.Time{})
	default:
		b.sendBatch(live)
	}
}

// requeue puts ws back at the head of the pending requests.
func (b *batcher[Q]) requeue(ws []*batchWaiter[Q]) {
	if len(ws) == 0 {
		return
	}
	b.mu.Lock()
	b.pending = append(ws[:len(ws):len(ws)], b.pending...)
	b.mu.Unlock()
}

func (b *batcher[Q]) sendBatch(live []*batchWaiter[Q]) {
	// The batch serves several callers: it is not cut short by one of
	// them leaving, only by its own timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), batchTimeout)
	defer cancel()
	qs := make([]Q, len(live))
	for i, w := range live {
		qs[i] = w.q
	}
	start := time.Now()
	resp, err := b.batch(maps.WithoutRateWait(ctx), qs)
	var rl *maps.RateLimitedError
	if errors.As(err, &rl) {
		b.mu.Lock()
		wait := rl.Wait < b.latency
		b.mu.Unlock()
		if !wait {
			// The batch rate is spent for a while: the first request
			// goes alone and the others gather for the next turn.
			b.requeue(live[1:])
			b.send(live[:1])
			return
		}
		start = time.Time{}
		resp, err = b.batch(ctx, qs)
	}
	b.batches.Add(1)
	b.items.Add(int64(len(qs)))
	b.answer(live, resp, err)
	b.ended(start)
}

// answer gives each waiter its item of resp, or err.
func (b *batcher[Q]) answer(live []*batchWaiter[Q], resp *maps.BatchResponse, err error) {
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			switch re.StatusCode {
			case http.StatusForbidden, http.StatusNotFound:
				// The endpoint is not available to this account: use
				// single calls from now on.
				b.refused.Store(true)
				fallthrough
			case http.StatusBadRequest:
				// The batch as a whole was refused; each request may
				// still be answered, or rejected, on its own.
				err = errBatchRefused
			}
		}
		for _, w := range live {
			w.done <- batchAnswer{err: err}
		}
		return
	}
	for i, w := range live {
		it := resp.Items[i]
		if it.Err != nil {
			w.done <- batchAnswer{err: classifyItem(it.Err, resp.RequestID)}
			continue
		}
		w.done <- batchAnswer{resp: &maps.Response{StatusCode: http.StatusOK, RequestID: resp.RequestID, Body: it.Body}}
	}
}

// classifyItem classifies the error of one batch item. Azure Maps reports an
// item it cannot answer (a bad or conflicting parameter) inline: that is the
// request's fault, as a 400 is; an item failing from the service's side
// ("500 …", "…Timeout…") is transient; throttling is the environment's.
func classifyItem(e *maps.ItemError, requestID string) error {
	code := clean(e.Code, 64)
	if code == "" {
		code = "BatchItemFailed"
	}
	err := &cleanError{msg: fmt.Sprintf("Azure Maps batch item: %s: %s%s", code, clean(e.Message, 512), requestIDSuffix(requestID)), err: e}
	lc := strings.ToLower(code)
	switch {
	case strings.HasPrefix(lc, "429"), strings.Contains(lc, "toomany"):
		return worker.Environmental(code, err, 0)
	case strings.HasPrefix(lc, "5"), strings.HasPrefix(lc, "408"), strings.Contains(lc, "internal"),
		strings.Contains(lc, "unavailable"), strings.Contains(lc, "timeout"):
		return worker.Transient(code, err)
	default:
		return worker.Rejected(code, err)
	}
}
