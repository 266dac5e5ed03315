package worker

import (
	"sync"
	"time"
)

// breaker pauses dequeuing for the whole instance while the environment is
// failing (Maps refusing our identity, throttling us, storage or the token
// endpoint down). After a pause it lets one probe message through; the
// probe's outcome closes the breaker or opens it for longer.
type breaker struct {
	mu        sync.Mutex
	openUntil time.Time
	trips     int // consecutive environment faults since the last success
	probing   bool
	probeAt   time.Time
	base, max time.Duration
	// probeTimeout frees the breaker from a probe whose outcome never came
	// (its worker stuck past the lease).
	probeTimeout time.Duration
}

func newBreaker(base, max, probeTimeout time.Duration) *breaker {
	return &breaker{base: base, max: max, probeTimeout: probeTimeout}
}

// trip records an environment fault and returns how long dequeuing pauses,
// and whether this fault opened a closed breaker. retryAfter, when the peer
// sent one, is honoured even above the cap.
func (b *breaker) trip(retryAfter time.Duration) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trips++
	first := b.trips == 1
	b.probing = false
	pause := b.base
	for i := 1; i < b.trips && pause < b.max; i++ {
		pause *= 2
	}
	pause = max(min(pause, b.max), retryAfter)
	now := time.Now()
	if until := now.Add(pause); until.After(b.openUntil) {
		b.openUntil = until
	}
	return b.openUntil.Sub(now), first
}

// succeed closes the breaker and reports whether it was open.
func (b *breaker) succeed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.trips > 0
	b.trips, b.probing, b.openUntil = 0, false, time.Time{}
	return was
}

// admit tells the dequeuer how long to wait before its next receive, and
// whether that receive is a probe (one message, and no more until the probe's
// outcome is known). wait < 0 means a probe is out: wait for its outcome.
func (b *breaker) admit() (wait time.Duration, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.trips == 0 {
		return 0, false
	}
	if b.probing && time.Since(b.probeAt) < b.probeTimeout {
		return -1, false
	}
	if d := time.Until(b.openUntil); d > 0 {
		return d, false
	}
	b.probing, b.probeAt = true, time.Now()
	return 0, true
}

// open reports how long the breaker stays open; 0 when closed or probing.
func (b *breaker) open() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.trips == 0 {
		return 0
	}
	return max(time.Until(b.openUntil), 0)
}
