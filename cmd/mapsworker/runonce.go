package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"mapsworker/internal/settings"
	"mapsworker/worker"
)

// Exit statuses of `mapsworker run`. A Container Apps job or a Kubernetes
// Job reads them (deploy/ refers to them): done is a success; a fault is
// worth another execution; bad settings are not.
const (
	exitDone     = 0 // stopped, or the queue stayed empty, or a bound was reached
	exitFault    = 1 // an environment fault outlasted the idle grace, or the run failed
	exitSettings = 3 // a bad setting or flag, named on one line
)

// Defaults of the run-once flags.
const (
	defaultIdleGrace = 30 * time.Second
	minIdleGrace     = time.Second
)

// runLimits are the bounds of one `run`: --until-empty with its idle grace,
// --max-messages and --max-duration. The zero value is a continuous run.
type runLimits struct {
	UntilEmpty  bool
	IdleGrace   time.Duration
	MaxMessages int64
	MaxDuration time.Duration
}

// runFlags returns the flags of `mapsworker run` and the limits they set.
func runFlags() (*flag.FlagSet, *runLimits) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	l := &runLimits{}
	fs.BoolVar(&l.UntilEmpty, "until-empty", false, "stop when the queue has stayed empty for --idle-grace (a Container Apps job, a KEDA ScaledJob)")
	fs.DurationVar(&l.IdleGrace, "idle-grace", defaultIdleGrace, "with --until-empty: how long the queue must stay empty; also how long an environment fault may last with no progress")
	fs.Int64Var(&l.MaxMessages, "max-messages", 0, "stop after taking this many messages (0: no bound)")
	fs.DurationVar(&l.MaxDuration, "max-duration", 0, "stop taking messages after this long, then drain (0: no bound)")
	return fs, l
}

// bounded reports whether the run ends by itself.
func (l runLimits) bounded() bool {
	return l.UntilEmpty || l.MaxMessages > 0 || l.MaxDuration > 0
}

// pollCap is the longest wait between polls of an empty queue that still
// lets the run see, several times within the idle grace, that it is empty.
func (l runLimits) pollCap(maxPoll time.Duration) time.Duration {
	if !l.UntilEmpty {
		return maxPoll
	}
	return min(maxPoll, max(l.IdleGrace/4, 100*time.Millisecond))
}

// runEnd says why a run ends, and with what status.
type runEnd struct {
	reason string // for the log, before "; draining"
	code   int
	err    string // for a fault: what failed, for how long
}

// runOnce watches a bounded run: it counts the messages the queue hands
// over (and hands over no more than --max-messages), notes when the queue
// was seen empty and when environment faults began, and decides when the
// run ends. Its clock is injected so that tests control time.
//
// Two kinds of fault are told apart because different news ends them: a
// storage fault (a receive failed) ends with the next receive that
// succeeds; a work fault (a message released for an environment fault:
// Maps refusing the identity, throttling, the token endpoint down) ends
// only with a message settled otherwise, because the released message is
// invisible for a while and the queue then looks empty without being so.
type runOnce struct {
	limits runLimits
	now    func() time.Time

	mu         sync.Mutex
	started    time.Time
	taken      int64     // messages received
	lastEmpty  time.Time // the last receive that succeeded and was empty
	emptySince time.Time // first empty receive since the queue last gave messages or failed; zero: not empty
	storeFault time.Time // storage has not answered since; zero: it answers
	workFault  time.Time // first message released for an environment fault since the last progress
	// hiddenUntil is when the last message released comes back: until then
	// (and a little after, for a poll to take it) an empty queue is not
	// empty, and a fault has not been given a chance to clear.
	hiddenUntil time.Time
	lastFault   string
}

func newRunOnce(l runLimits, now func() time.Time) *runOnce {
	if now == nil {
		now = time.Now
	}
	return &runOnce{limits: l, now: now, started: now()}
}

// admit caps a receive of up to n messages to what --max-messages leaves.
func (r *runOnce) admit(n int) int {
	if r.limits.MaxMessages <= 0 {
		return n
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(min(int64(n), max(r.limits.MaxMessages-r.taken, 0)))
}

// received records the result of a receive that began at began.
func (r *runOnce) received(began time.Time, n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if err != nil {
		if r.storeFault.IsZero() {
			// Storage has not answered since the failed receive began:
			// it may have spent long in the SDK's retries.
			r.storeFault = began
		}
		r.lastFault = shortErr(err)
		r.emptySince = time.Time{} // not known to be empty
		return
	}
	r.storeFault = time.Time{}
	if n > 0 {
		r.taken += int64(n)
		r.emptySince = time.Time{}
		return
	}
	r.lastEmpty = now
	if r.emptySince.IsZero() {
		r.emptySince = now
	}
}

// settled records a message's outcome (the engine's OnOutcome).
func (r *runOnce) settled(o worker.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.VisibleAt.After(r.hiddenUntil) {
		r.hiddenUntil = o.VisibleAt
	}
	switch o.Result {
	case worker.OutcomePaused:
		if r.workFault.IsZero() {
			r.workFault = r.now()
		}
		if o.Err != nil {
			r.lastFault = shortErr(o.Err)
		}
	case worker.OutcomeStopped:
	default:
		// Only work begun after the fault was seen is news that it
		// ended: a success already under way when Maps began to
		// throttle proves nothing, and the released message is still
		// invisible, so the queue would look empty without being so.
		if o.Started.IsZero() || !o.Started.Before(r.workFault) {
			r.workFault = time.Time{}
		}
	}
}

// end reports whether the run should end now, and why; idle is how long
// the engine has held no message (Engine.IdleFor). The queue counts as
// empty when every receive for the grace found nothing, the last of them
// recently (a receive stuck in retries is no news), and no environment
// fault is pending.
func (r *runOnce) end(idle time.Duration) (runEnd, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	l := r.limits
	lasted := func(since time.Time) bool { return !since.IsZero() && now.Sub(since) >= l.IdleGrace }
	// back: every released message has been visible long enough for a
	// poll to take it.
	back := now.Sub(r.hiddenUntil) >= l.IdleGrace/2
	switch {
	case l.MaxMessages > 0 && r.taken >= l.MaxMessages:
		return runEnd{reason: "max-messages reached", code: exitDone}, true
	case l.MaxDuration > 0 && now.Sub(r.started) >= l.MaxDuration:
		return runEnd{reason: "max-duration reached", code: exitDone}, true
	case !l.UntilEmpty:
		return runEnd{}, false
	case lasted(r.storeFault) || lasted(r.workFault) && back:
		return runEnd{reason: "environment fault outlasted the idle grace", code: exitFault,
			err: fmt.Sprintf("environment faults for %v with no progress; the last: %s", l.IdleGrace, r.lastFault)}, true
	case idle >= l.IdleGrace && lasted(r.emptySince) && now.Sub(r.lastEmpty) < l.IdleGrace/2 &&
		r.storeFault.IsZero() && r.workFault.IsZero() && back:
		return runEnd{reason: "queue stayed empty", code: exitDone}, true
	}
	return runEnd{}, false
}

// messages is how many messages the queue has handed over.
func (r *runOnce) messages() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.taken
}

// watch checks every tick whether the run should end, and sends the end
// once. It returns when ctx ends.
func (r *runOnce) watch(ctx context.Context, idle func() time.Duration, tick time.Duration, ended chan<- runEnd) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if e, ok := r.end(idle()); ok {
			ended <- e
			return
		}
	}
}

// queue returns q with its receives watched by r.
func (r *runOnce) queue(q worker.Queue) worker.Queue { return &watchedQueue{q, r} }

// watchedQueue is the request queue as a bounded run sees it.
type watchedQueue struct {
	worker.Queue
	r *runOnce
}

// Receive implements worker.Queue.
func (q *watchedQueue) Receive(ctx context.Context, n int, visibility time.Duration) ([]*worker.Message, error) {
	if n = q.r.admit(n); n == 0 {
		// --max-messages reached: the run is ending; take nothing more.
		return nil, nil
	}
	began := q.r.now()
	msgs, err := q.Queue.Receive(ctx, n, visibility)
	// A receive cut short by the stop is no news; one that ran out of its
	// deadline (storage not answering) is a fault.
	if !errors.Is(ctx.Err(), context.Canceled) {
		q.r.received(began, len(msgs), err)
	}
	return msgs, err
}

// describe is the bounded run's part of the start-up log (nothing for a
// continuous run, whose line stays as it was).
func (l runLimits) describe() []any {
	if !l.bounded() {
		return nil
	}
	var attrs []any
	if l.UntilEmpty {
		attrs = append(attrs, "untilEmpty", true, "idleGrace", l.IdleGrace)
	}
	if l.MaxMessages > 0 {
		attrs = append(attrs, "maxMessages", l.MaxMessages)
	}
	if l.MaxDuration > 0 {
		attrs = append(attrs, "maxDuration", l.MaxDuration)
	}
	return attrs
}

// validate checks the flags; an error names the flag.
func (l runLimits) validate() error {
	switch {
	case l.IdleGrace < minIdleGrace:
		return &settings.Error{Name: "--idle-grace", Problem: fmt.Sprintf("%v is shorter than %v", l.IdleGrace, minIdleGrace)}
	case l.MaxMessages < 0:
		return &settings.Error{Name: "--max-messages", Problem: "must not be negative"}
	case l.MaxDuration < 0:
		return &settings.Error{Name: "--max-duration", Problem: "must not be negative"}
	}
	return nil
}
