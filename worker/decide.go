package worker

import (
	"math/rand/v2"
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
// outage says that the downstream is down: nothing of the message's kind
// succeeded since its attempt began, and a probe of the downstream (a
// request that is not a message's) failed too. Then the failure is not this
// message's fault, and its attempts are not spent on it. Had anything of its
// kind succeeded meanwhile, the failure is the message's own, and it counts.
func Decide(err error, attempts, maxAttempts int64, outage bool) Action {
	switch ClassOf(err) {
	case ClassInvalid, ClassRejected, ClassExpiring:
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
