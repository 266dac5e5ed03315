package jobs

import (
	"context"
	"encoding/json"
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

// BatchMaps is the batch part of the Azure Maps client, used when
// HandlerOptions.Batch is set. *maps.Client satisfies it.
type BatchMaps interface {
	GeocodeBatch(ctx context.Context, qs []maps.GeocodeQuery) (*maps.BatchResponse, error)
	RouteDirectionsBatch(ctx context.Context, rs []maps.RouteRequest) (*maps.BatchResponse, error)
}

// Defaults of the batcher. The window is long enough for a storage-bound
// worker (about 200 msg/s on a small instance) to gather ten or more
// requests of a kind into one call; it adds at most that much to each
// request's time, which costs no throughput while many messages are in
// flight, but some at low concurrency.
const (
	DefaultBatchWindow = 50 * time.Millisecond
	DefaultBatchMax    = 100 // the most items Azure Maps takes in one batch
	batchTimeout       = 2 * time.Minute
	// maxBatchesInFlight bounds the batch calls under way (or waiting for
	// the client's rate limit: batch APIs allow 10 QPS). Requests arriving
	// meanwhile gather into the next batch instead of queueing as many small
	// ones.
	maxBatchesInFlight = 2
)

// errBatchRefused makes a waiter fall back to a single call.
var errBatchRefused = errors.New("jobs: batch refused")

// batcher gathers the requests of one API (geocode or route) that arrive
// within a short window (or until max are in hand) and sends them as one
// batch call (POST /geocode:batch, /route/directions:batch). Each request gets its own item's answer or error. If
// the batch endpoint is refused (403, 404: the account's plan or role does
// not allow it), or answers 400 as a whole, the batcher sends single calls.
type batcher[Q any] struct {
	single func(context.Context, Q) (*maps.Response, error)
	batch  func(context.Context, []Q) (*maps.BatchResponse, error)
	window time.Duration
	max    int

	mu       sync.Mutex
	pending  []*batchWaiter[Q]
	timer    *time.Timer
	due      bool // the window of the pending requests has passed
	inFlight int  // batch calls under way

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
	body      json.RawMessage
	requestID string
	err       error
}

func newBatcher[Q any](single func(context.Context, Q) (*maps.Response, error), batch func(context.Context, []Q) (*maps.BatchResponse, error), window time.Duration, max int) *batcher[Q] {
	if window <= 0 {
		window = DefaultBatchWindow
	}
	if max <= 0 || max > DefaultBatchMax {
		max = DefaultBatchMax
	}
	return &batcher[Q]{single: single, batch: batch, window: window, max: max}
}

// do answers q, through a batch when the endpoint takes batches.
func (b *batcher[Q]) do(ctx context.Context, q Q) (*maps.Response, error) {
	if b.refused.Load() {
		return b.single(ctx, q)
	}
	w := &batchWaiter[Q]{q: q, ctx: ctx, done: make(chan batchAnswer, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, w)
	switch {
	case len(b.pending) >= b.max:
		b.flushLocked()
	case len(b.pending) == 1:
		b.due = false
		b.timer = time.AfterFunc(b.window, b.flush)
	}
	b.mu.Unlock()
	select {
	case a := <-w.done:
		if errors.Is(a.err, errBatchRefused) {
			return b.single(ctx, q)
		}
		if a.err != nil {
			return nil, a.err
		}
		return &maps.Response{StatusCode: http.StatusOK, RequestID: a.requestID, Body: a.body}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flush is called when the window of the pending requests has passed.
func (b *batcher[Q]) flush() {
	b.mu.Lock()
	b.due = true
	b.flushLocked()
	b.mu.Unlock()
}

// flushLocked sends up to max pending requests on a goroutine of their own,
// unless maxBatchesInFlight batches are under way: then the requests wait
// for one of them to end, and gather meanwhile.
func (b *batcher[Q]) flushLocked() {
	if len(b.pending) == 0 || b.inFlight >= maxBatchesInFlight {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	n := min(len(b.pending), b.max)
	ws := b.pending[:n:n]
	b.pending = append([]*batchWaiter[Q](nil), b.pending[n:]...)
	b.inFlight++
	go func() {
		b.send(ws)
		b.mu.Lock()
		b.inFlight--
		if len(b.pending) > 0 && (b.due || len(b.pending) >= b.max) {
			b.flushLocked()
		} else if len(b.pending) > 0 && b.timer == nil {
			b.timer = time.AfterFunc(b.window, b.flush)
		}
		b.mu.Unlock()
	}()
}

func (b *batcher[Q]) send(ws []*batchWaiter[Q]) {
	// Drop the requests whose callers have gone (shutdown); if none is
	// left, there is nothing to send.
	live := ws[:0]
	for _, w := range ws {
		if w.ctx.Err() == nil {
			live = append(live, w)
		}
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 || b.refused.Load() {
		// One request needs no batch: a single call is cheaper to answer.
		for _, w := range live {
			w.done <- batchAnswer{err: errBatchRefused}
		}
		return
	}
	// The batch serves several callers: it is not cut short by one of
	// them leaving, only by its own timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), batchTimeout)
	defer cancel()
	qs := make([]Q, len(live))
	for i, w := range live {
		qs[i] = w.q
	}
	b.batches.Add(1)
	b.items.Add(int64(len(qs)))
	resp, err := b.batch(ctx, qs)
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
		w.done <- batchAnswer{body: it.Body, requestID: resp.RequestID}
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
