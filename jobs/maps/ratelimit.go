package maps

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

type noRateWaitKey struct{}

// WithoutRateWait returns a copy of ctx under which a call is sent only if
// its API has a free rate slot now: otherwise the call fails at once with a
// *RateLimitedError, nothing is sent and no slot is taken. A caller that can
// serve the request another way (a batch) uses it to learn whether a single
// call would have to wait. Without client-side rate limits every call goes.
func WithoutRateWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRateWaitKey{}, true)
}

type rateWaitKey struct{}

// OnRateWait returns a copy of ctx under which a call that has to wait for a
// rate slot calls f before each wait, so that the caller can put the wait to
// use: a queue worker gives its slot to the next message meanwhile.
func OnRateWait(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, rateWaitKey{}, f)
}

// RateLimitedError is the error of a call made under WithoutRateWait when its
// API has no free rate slot. Wait is how long the call would have waited.
type RateLimitedError struct {
	API  string
	Wait time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("maps: no free %s rate slot for %v", e.API, e.Wait)
}

// NonRetriable tells azcore's retry policy not to retry the call.
func (e *RateLimitedError) NonRetriable() {}

// rateLimitPolicy paces the requests to each API so that none is sent above
// its limit, and backs off when Azure Maps answers 429 anyway (the limits are
// per account, shared by every instance): the rate is halved, no request is
// sent before the answer's Retry-After has passed, and the rate then recovers
// by a tenth of the limit per second (additive increase).
type rateLimitPolicy struct {
	limiters map[string]*limiter
	// base is each API's limit for the account, paced; the limiters run at
	// base divided by the instances sharing the account (SetRateShare).
	base map[string]float64
}

func newRateLimitPolicy(limits map[string]int) *rateLimitPolicy {
	all := DefaultRateLimits()
	for api, qps := range limits {
		if qps != 0 {
			all[api] = qps
		}
	}
	p := &rateLimitPolicy{limiters: map[string]*limiter{}, base: map[string]float64{}}
	for api, qps := range all {
		if qps > 0 {
			p.base[api] = float64(qps) * pacedShare
			p.limiters[api] = newLimiter(p.base[api], time.Now)
		}
	}
	return p
}

// share makes each API's limit the account's divided by n instances.
func (p *rateLimitPolicy) share(n int) {
	n = max(n, 1)
	for api, l := range p.limiters {
		l.setLimit(p.base[api] / float64(n))
	}
}

// absorb429 is how many times a request answered 429 with a short hold
// (at most absorbMaxHold: Azure Maps asks for 1 s) is sent again, in a slot
// after the hold at the lowered rate, before the 429 is returned. A 429
// absorbed so is not billed and is no outage: the worker does not pause for
// it. A longer hold is returned at once, for the engine to pause.
const (
	absorb429     = 2
	absorbMaxHold = 2 * time.Second
)

// pacedShare is the share of a limit the client paces at. The service counts
// arrivals, not departures: requests sent exactly 1/limit apart may arrive
// bunched by the network and the scheduler, and one more than the limit in
// a second is a 429 that pauses the whole worker. 5% absorbs 50 ms of
// jitter.
const pacedShare = 0.95

// Do implements policy.Policy.
func (p *rateLimitPolicy) Do(req *policy.Request) (*http.Response, error) {
	l := p.limiters[limitOf(req.Raw().URL.Path)]
	if l == nil {
		return req.Next()
	}
	ctx := req.Raw().Context()
	if noWait, _ := ctx.Value(noRateWaitKey{}).(bool); noWait {
		if d := l.tryReserve(); d > 0 {
			return nil, &RateLimitedError{API: limitOf(req.Raw().URL.Path), Wait: d}
		}
		return p.send(req, l)
	}
	for tries := 0; ; tries++ {
		if err := p.wait(ctx, l); err != nil {
			return nil, err
		}
		resp, err := p.send(req, l)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || tries == absorb429 ||
			RetryAfter(&azcore.ResponseError{RawResponse: resp}) > absorbMaxHold {
			return resp, err
		}
		// Throttled: the rate is cut and the hold set; send again in a
		// slot after it, as long as the caller waits.
		if err := req.RewindBody(); err != nil {
			return resp, nil
		}
		resp.Body.Close()
	}
}

// wait waits for a slot of l.
func (p *rateLimitPolicy) wait(ctx context.Context, l *limiter) error {
	for {
		d, gen := l.reserve()
		if d <= 0 {
			return nil
		}
		if f, _ := ctx.Value(rateWaitKey{}).(func()); f != nil {
			f()
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			l.cancel(gen)
			return ctx.Err()
		}
		if l.generation() == gen {
			return nil
		}
		// A 429 came meanwhile: the slot was taken at the old rate.
	}
}

// send sends req in the slot taken, and cuts l's rate on a 429.
func (p *rateLimitPolicy) send(req *policy.Request, l *limiter) (*http.Response, error) {
	resp, err := req.Next()
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		l.throttled(RetryAfter(&azcore.ResponseError{RawResponse: resp}))
	}
	return resp, err
}

// limiter schedules requests at most one per 1/rate (no burst), so that any
// one-second window holds at most rate of them. rate drops on a 429 and
// climbs back to limit.
type limiter struct {
	now   func() time.Time
	limit float64

	mu      sync.Mutex
	rate    float64   // current rate, ≤ limit
	next    time.Time // the earliest time the next request may go
	grown   time.Time // when rate was last increased or cut
	lastCut time.Time
	gen     int // counts cuts; a slot taken before a cut is taken again
}

// recoverPerSecond is the share of the limit the rate regains per second
// after a cut.
const recoverPerSecond = 0.1

func newLimiter(limit float64, now func() time.Time) *limiter {
	return &limiter{now: now, limit: limit, rate: limit}
}

// setLimit changes the limit; the current rate keeps its share of it.
func (l *limiter) setLimit(limit float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit == l.limit || limit <= 0 {
		return
	}
	l.rate = l.rate * limit / l.limit
	l.limit = limit
}

func (l *limiter) generation() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// reserve takes the next free slot and returns how long to wait for it, and
// the generation the slot belongs to.
func (l *limiter) reserve() (time.Duration, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return l.take(now).Sub(now), l.gen
}

// take takes the next free slot, at now or later, and returns its time.
func (l *limiter) take(now time.Time) time.Time {
	if l.rate < l.limit {
		l.rate = min(l.limit, l.rate+l.limit*recoverPerSecond*now.Sub(l.grown).Seconds())
		l.grown = now
	}
	slot := l.next
	if slot.Before(now) {
		slot = now
	}
	l.next = slot.Add(time.Duration(float64(time.Second) / l.rate))
	return slot
}

// tryReserve takes the next slot if it is due now and returns 0; otherwise it
// takes nothing and returns how long until the slot.
func (l *limiter) tryReserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if d := l.next.Sub(now); d > 0 {
		return d
	}
	l.take(now)
	return 0
}

// cancel gives back the last slot when its request was not sent. Slots
// taken since stay where they are: giving back one is enough to keep the
// schedule from drifting.
func (l *limiter) cancel(gen int) {
	l.mu.Lock()
	if gen == l.gen {
		l.next = l.next.Add(-time.Duration(float64(time.Second) / l.rate))
	}
	l.mu.Unlock()
}

// throttled cuts the rate after a 429 (once per second: the answers to
// requests already in flight are one event) and holds requests back for
// retryAfter.
func (l *limiter) throttled(retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastCut) >= time.Second {
		l.rate = max(l.rate/2, l.limit*0.05, 0.1)
		l.lastCut, l.grown = now, now
		// The slots taken at the old rate are void: their requests take
		// new ones, from after Retry-After.
		l.gen++
		l.next = now.Add(retryAfter)
	} else if until := now.Add(retryAfter); l.next.Before(until) {
		l.next = until
	}
}
