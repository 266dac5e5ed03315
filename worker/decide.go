package worker

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// action is what the engine does with a message whose work failed.
type action int

const (
	actPoison  action = iota // failed result where possible, envelope to the poison queue
	actRelease               // visible again after a delay that grows with the attempts
	actPause                 // the environment's fault: release untouched, slow all dequeuing
)

// decide is the one place that turns an error's class into what happens to
// the message. attempts counts the deliveries that were the message's own;
// outage says that transient failures have hit many messages in a row with
// no success between them: then the downstream is down, which is not this
// message's fault, and its attempts are not spent on it.
func decide(err error, attempts, maxAttempts int64, outage bool) action {
	switch ClassOf(err) {
	case ClassInvalid, ClassRejected:
		return actPoison
	case ClassEnvironment:
		return actPause
	default:
		if outage {
			return actPause
		}
		if attempts >= maxAttempts {
			return actPoison
		}
		return actRelease
	}
}

// releaseDelay is the visibility delay of a message released after a
// transient failure: 5s, 10s, 20s, … capped at limit, with ±20% jitter so that
// a burst of failures does not come back as a burst.
func releaseDelay(attempts int64, limit time.Duration) time.Duration {
	d := 5 * time.Second
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

// outageThreshold is how many messages in a row must fail transiently, with
// no success between, before the engine treats it as an outage.
const outageThreshold = 5

// outageDetector counts consecutive transient failures across messages.
type outageDetector struct {
	streak atomic.Int64
}

// failure records a transient failure and reports whether it is part of an
// outage.
func (d *outageDetector) failure() bool { return d.streak.Add(1) >= outageThreshold }

// success ends a streak.
func (d *outageDetector) success() { d.streak.Store(0) }
