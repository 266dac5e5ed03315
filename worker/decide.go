package worker

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Action is what the engine does with a message whose work failed.
type Action int

// The actions Decide chooses from.
const (
	Poison  Action = iota // failed result where possible, envelope to the poison queue
	Release               // visible again after a delay that grows with the attempts
	Pause                 // the environment's fault: release untouched, slow all dequeuing
)

func (a Action) String() string {
	return [...]string{"poison", "release", "pause"}[a]
}

// Decide is the one place that turns an error's class into what happens to
// the message. attempts counts the deliveries that were the message's own;
// outage says that transient failures have hit many messages in a row with
// no success between them: then the downstream is down, which is not this
// message's fault, and its attempts are not spent on it.
func Decide(err error, attempts, maxAttempts int64, outage bool) Action {
	switch ClassOf(err) {
	case ClassInvalid, ClassRejected:
		return Poison
	case ClassEnvironment:
		return Pause
	default:
		if outage {
			return Pause
		}
		if attempts >= maxAttempts {
			return Poison
		}
		return Release
	}
}

// releaseDelay is the visibility delay of a message released after a
// transient failure: base, 2×base, 4×base, … capped at limit, with ±20%
// jitter so that a burst of failures does not come back as a burst.
func releaseDelay(attempts int64, base, limit time.Duration) time.Duration {
	d := base
	for i := int64(1); i < attempts && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return jitter(d, 0.2)
}

// jitter returns d moved by up to ±frac of itself.
func jitter(d time.Duration, frac float64) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - frac + 2*frac*rand.Float64()))
}

// outageThreshold is how many different messages must fail transiently,
// with no success between, before the engine treats it as an outage. Counting
// distinct messages keeps a few poisonous ones, failing again and again, from
// looking like an outage.
const outageThreshold = 5

// outageDetector tracks the messages that failed transiently since the last
// success.
type outageDetector struct {
	mu     sync.Mutex
	failed map[string]struct{}
}

// failure records a transient failure of message id and reports whether it
// is part of an outage.
func (d *outageDetector) failure(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failed == nil {
		d.failed = make(map[string]struct{}, outageThreshold)
	}
	if len(d.failed) < outageThreshold {
		d.failed[id] = struct{}{}
	}
	return len(d.failed) >= outageThreshold
}

// success ends a streak.
func (d *outageDetector) success() {
	d.mu.Lock()
	clear(d.failed)
	d.mu.Unlock()
}
