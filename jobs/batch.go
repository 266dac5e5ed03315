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

// batcher sends the requests of one API (geocode, reverse geocode or route)
// by group commit. A request goes out at once as a single call while the API
// has a free rate slot and fewer than maxCallsInFlight calls are under way.
// Otherwise it joins the pending requests, which go together as one batch
// call (POST /geocode:batch, /route/directions:batch) when a call of this API
// ends (at once when none is under way), and not before the batch rate has a
// slot. So there is no wait for company while there is capacity, and batches
// grow by themselves when the single-call rate or the calls in flight are the
// bottleneck.
//
// A request refused a single-call slot never queues behind it: under a
// backlog bound by the single-call rate such a queue only grows, and every
// request in it would hold its worker for the queue's length. While the
// pending requests cannot go as a batch yet, only the oldest of them waits
// for the next single-call slot (so the single-call rate is used to the
// full), and the others gather for the batch. A lone pending request takes
// a single call, leaving the batch rate for larger batches.
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
	inFlight int  // calls under way, and a lone request waiting for its slot
	lone     bool // a pending request waits for a single-call slot
	// batchAt is when the batch rate has a slot again; timer sends the
	// pending requests then.
	batchAt time.Time
	timer   *time.Timer

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
	if b.inFlight < maxCallsInFlight {
		// A free slot is taken even ahead of pending requests: they wait
		// for a batch, which this call does not delay.
		b.inFlight++
		b.mu.Unlock()
		resp, err := b.single(maps.WithoutRateWait(ctx), q)
		var rl *maps.RateLimitedError
		if !errors.As(err, &rl) {
			b.ended()
			return resp, err
		}
		b.mu.Lock()
		b.inFlight--
	}
	w := &batchWaiter[Q]{q: q, ctx: ctx, done: make(chan batchAnswer, 1)}
	b.pending = append(b.pending, w)
	b.sendLocked(false)
	b.mu.Unlock()
	// Waiting for a slot or a batch is no work: the worker may take the
	// next message meanwhile.
	worker.Waiting(ctx)
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

// ended notes the end of a call and sends what has gathered meanwhile.
func (b *batcher[Q]) ended() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
	b.sendLocked(true)
}

// sendLocked sends the pending requests as far as the calls in flight and
// the batch rate allow: as batches of up to max, each on a goroutine of its
// own, and the oldest as a single call in its slot while they cannot. Unless
// flush (a call has ended, or the batch rate has a slot again), requests
// gather while calls are under way.
func (b *batcher[Q]) sendLocked(flush bool) {
	// Drop the requests whose callers have gone (shutdown).
	live := b.pending[:0]
	for _, w := range b.pending {
		if w.ctx.Err() == nil {
			live = append(live, w)
		}
	}
	clear(b.pending[len(live):])
	b.pending = live
	for len(b.pending) > 0 && b.inFlight < maxCallsInFlight {
		wait := time.Until(b.batchAt)
		batchNow := (flush || b.inFlight == 0) && wait <= 0
		if !b.lone && (len(b.pending) == 1 || !batchNow) {
			// The oldest request waits for the next single-call slot
			// meanwhile (a lone one does not spend a batch slot).
			w := b.pending[0]
			b.pending = append(b.pending[:0], b.pending[1:]...)
			b.inFlight++
			b.lone = true
			go b.sendLone(w)
			continue
		}
		if !batchNow {
			if wait > 0 && b.timer == nil {
				b.timer = time.AfterFunc(wait, b.sendAt)
			}
			return
		}
		n := min(len(b.pending), b.max)
		ws := b.pending[:n:n]
		b.pending = append([]*batchWaiter[Q](nil), b.pending[n:]...)
		b.inFlight++
		go b.sendBatch(ws)
	}
}

// sendAt sends the pending requests when the batch rate has a slot again.
func (b *batcher[Q]) sendAt() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer = nil
	b.sendLocked(true)
}

// sendLone answers w by a single call in the next single-call slot. While
// it waits for the slot, lone keeps the other pending requests for a batch;
// as the slot comes due the next of them may wait for the one after it.
func (b *batcher[Q]) sendLone(w *batchWaiter[Q]) {
	var a batchAnswer
	for {
		b.setLone(false)
		a.resp, a.err = b.single(maps.WithoutRateWait(w.ctx), w.q)
		var rl *maps.RateLimitedError
		if !errors.As(a.err, &rl) {
			break
		}
		b.setLone(true)
		if err := sleep(w.ctx, rl.Wait); err != nil {
			b.setLone(false)
			a.err = err
			break
		}
	}
	w.done <- a
	b.ended()
}

func (b *batcher[Q]) setLone(v bool) {
	b.mu.Lock()
	b.lone = v
	b.mu.Unlock()
}

// sendBatch answers ws by one batch call. If the batch rate has no slot, ws
// go back to the head of the pending requests until it has one.
func (b *batcher[Q]) sendBatch(ws []*batchWaiter[Q]) {
	if b.refused.Load() {
		for _, w := range ws {
			w.done <- batchAnswer{err: errBatchRefused}
		}
		b.ended()
		return
	}
	// The batch serves several callers: it is not cut short by one of
	// them leaving, only by its own timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ws[0].ctx), batchTimeout)
	defer cancel()
	qs := make([]Q, len(ws))
	for i, w := range ws {
		qs[i] = w.q
	}
	resp, err := b.batch(maps.WithoutRateWait(ctx), qs)
	var rl *maps.RateLimitedError
	if errors.As(err, &rl) {
		b.mu.Lock()
		b.batchAt = time.Now().Add(rl.Wait)
		b.pending = append(ws[:len(ws):len(ws)], b.pending...)
		b.inFlight--
		b.sendLocked(true)
		b.mu.Unlock()
		return
	}
	b.batches.Add(1)
	b.items.Add(int64(len(qs)))
	b.answer(ws, resp, err)
	b.ended()
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
