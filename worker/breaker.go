package worker

import (
	"context"
	"sync"
	"time"
)

// ProbeFunc checks a downstream with a request of its own (not a message's):
// nil when the downstream answers as it should.
type ProbeFunc func(ctx context.Context) error

// breaker pauses dequeuing for the whole instance while the environment is
// failing (Maps refusing our identity, throttling us or down, storage or the
// token endpoint down). It is closed, or open until a time; when that time
// comes the dequeuer runs the probe of the fault that opened it, and the
// probe's outcome either closes the breaker or opens it again for longer.
// No message is spent on probing, so an outage of any length costs messages
// nothing.
//
// Pauses grow per episode, not per failed message: the faults of all the
// messages in flight when the environment fails open the breaker once, at
// the shortest pause; only a failed probe doubles it.
type breaker struct {
	mu        sync.Mutex
	open      bool
	openUntil time.Time
	level     int // failed probes in this episode
	probe     ProbeFunc
	base, max time.Duration
}

func newBreaker(base, max time.Duration) *breaker {
	return &breaker{base: base, max: max}
}

// pauseLocked is the pause at the current level, at least retryAfter.
func (b *breaker) pauseLocked(retryAfter time.Duration) time.Duration {
	p := b.base
	for i := 0; i < b.level && p < b.max; i++ {
		p *= 2
	}
	return max(min(p, b.max), retryAfter)
}

// trip records an environment fault whose recovery probe finds out when it
// has cleared. It returns how long dequeuing pauses from now, and whether
// this fault began an episode. retryAfter, when the peer sent one, is
// honoured even above the cap.
func (b *breaker) trip(retryAfter time.Duration, probe ProbeFunc) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	first := !b.open
	if first {
		b.open, b.level = true, 0
	}
	if probe != nil {
		b.probe = probe
	}
	now := time.Now()
	if until := now.Add(b.pauseLocked(retryAfter)); until.After(b.openUntil) {
		b.openUntil = until
	}
	return b.openUntil.Sub(now), first
}

// due returns the probe to run when the pause has passed, or how long is
// left of it. It returns (0, nil) when the breaker is closed.
func (b *breaker) due() (wait time.Duration, probe ProbeFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return 0, nil
	}
	if d := time.Until(b.openUntil); d > 0 {
		return d, nil
	}
	return 0, b.probe
}

// failed records a failed probe: the episode goes on, with a longer pause.
func (b *breaker) failed(retryAfter time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.level++
	p := b.pauseLocked(retryAfter)
	b.openUntil = time.Now().Add(p)
	return p
}

// close ends an episode and reports whether one was under way.
func (b *breaker) close() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.open
	b.open, b.level, b.probe, b.openUntil = false, 0, nil, time.Time{}
	return was
}

// remaining reports whether the breaker is open and how long is left of
// the pause (0 when its probe is due).
func (b *breaker) remaining() (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return 0, false
	}
	return max(time.Until(b.openUntil), 0), true
}
