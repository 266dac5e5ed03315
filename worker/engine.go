// Package worker is mapsworker's queue engine: it dequeues messages with a
// visibility lease, keeps a bounded number in flight, hands each to a Handler,
// writes the result, and acknowledges, retries, releases or poisons the
// message by the class of its error. It knows nothing of Azure Maps.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-retry"
)

// Queue is the request queue as the engine uses it.
type Queue interface {
	// Receive dequeues up to max messages, invisible to others for visibility.
	Receive(ctx context.Context, max int, visibility time.Duration) ([]*Message, error)
	// Peek returns up to max visible messages without dequeuing them (no pop
	// receipt, no delivery counted).
	Peek(ctx context.Context, max int) ([]*Message, error)
	// Update replaces the text and visibility of a message and returns the
	// new pop receipt. It returns ErrMessageLost when the message was deleted
	// or is leased by another consumer. It does not retry by itself: a try
	// whose answer was lost may have taken effect, and a second try with the
	// old pop receipt would then be refused as if the message were lost.
	Update(ctx context.Context, id, popReceipt, text string, visibility time.Duration) (string, error)
	// Delete removes a message. It returns ErrMessageLost as Update does.
	Delete(ctx context.Context, id, popReceipt string) error
}

// PoisonQueue receives the envelopes of messages that will not succeed.
type PoisonQueue interface {
	Send(ctx context.Context, text string) error
}

// Results stores result documents by name.
type Results interface {
	// Put writes a result once. A failed result may be replaced by a later
	// outcome; a succeeded one may not: Put then returns ErrResultExists.
	Put(ctx context.Context, name string, doc []byte, failed bool) error
	// Succeeded reports whether a succeeded result exists at name.
	Succeeded(ctx context.Context, name string) (bool, error)
	// PutText stores text at name, replacing what is there: the original
	// text of a poisoned message whose envelope would not fit in a queue
	// message.
	PutText(ctx context.Context, name, text string) error
}

// Errors the storage adapters return.
var (
	ErrMessageLost  = errors.New("message lost: deleted, or leased by another consumer")
	ErrResultExists = errors.New("a succeeded result exists already")
	// ErrRefused marks a storage request refused for what it is (400, 413):
	// sending it again cannot help, so it is never taken for an outage.
	ErrRefused = errors.New("storage refused the request")
)

// Options configure an Engine. The zero value of each field takes the default.
type Options struct {
	// Concurrency is the number of messages worked on at once; a task
	// that waits outside the process (see Waiting) gives its slot to the
	// next message. Default 16.
	Concurrency int
	// Prefetch is how many dequeued messages may wait for a free worker,
	// so that a worker never waits for a dequeue and a dequeue fetches a
	// useful batch: the next one (up to 32, a receive's most) is sent when
	// half of this is free, the other half keeping the workers busy until
	// it returns. Default min(4×Concurrency, 64): with 16 workers, receives
	// of 32 while 32 wait.
	Prefetch int
	// Completions is how many succeeded messages may have their result
	// written and then be deleted at once, off the workers: a worker is
	// free for the next message once its task is done, and waits only when
	// this many completions are under way. Default Concurrency.
	Completions int
	// MaxDequeueCount is the deliveries that failed for the message's own
	// reasons after which it is poisoned. Default 5.
	MaxDequeueCount int64
	// EnvironmentAllowance is how many more deliveries a message may have
	// that ended in faults not its own (outages, stops). Past
	// MaxDequeueCount + EnvironmentAllowance deliveries in all a message is
	// poisoned whatever caused them, so that nothing cycles for ever.
	// Default 20.
	EnvironmentAllowance int64
	// Lease is the visibility timeout of a dequeued message, renewed at
	// half while the message is worked on. Default 2m.
	Lease time.Duration
	// MinPollInterval and MaxPollInterval bound the randomized exponential
	// backoff of polls of an empty queue. Defaults 100ms and 1m.
	// MaxPollInterval is also the longest pause of an outage.
	MinPollInterval, MaxPollInterval time.Duration
	// ReleaseDelay is the visibility delay of a message released after its
	// first transient failure; it doubles with each attempt up to
	// MaxReleaseDelay. Defaults 5s and 10m.
	ReleaseDelay, MaxReleaseDelay time.Duration
	// RetryBase and RetryAttempts shape the in-process retry of transient
	// errors (exponential from RetryBase, jittered). Defaults 250ms and 3.
	RetryBase     time.Duration
	RetryAttempts int
	// TryTimeout bounds each try of a task and each probe of a downstream,
	// so that a peer that accepts a request and never answers holds a slot
	// for no longer. Default 30s.
	TryTimeout time.Duration
	// StorageTimeout bounds each storage call of the engine: receives,
	// peeks, the redelivery check, and the deletes, releases and poison
	// moves, which run on a context detached from shutdown so they are never
	// cut short by it. Default 10s: a drain budget plus this stays inside
	// the WebJobs runner's stopping_wait_time even while storage is down.
	StorageTimeout time.Duration
	// ExpiryMargin is how long before its time-to-live ends a released
	// message becomes visible again at the latest; a message that cannot be
	// released and worked again before it expires is poisoned (class
	// expiring) instead. Default 30s.
	ExpiryMargin time.Duration
	// SummaryInterval is how often a summary line is logged at info while
	// there was work. Default 1m; negative disables.
	SummaryInterval time.Duration
	// SummaryAttrs, when set, adds attributes to each summary line (the run
	// command adds Maps calls and 429s since the last line, which the engine
	// cannot see). It is called only when a summary line is logged.
	SummaryAttrs func() []any
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// OnOutcome, when set, is called after each delivery is settled; tests,
	// benchmarks and metrics use it.
	OnOutcome func(Outcome)
	// Observe, when set, is called as each delivery begins, with the
	// engine's context for the work. The context it returns (a trace span's,
	// say) is the one the task and the delivery's storage calls run under;
	// done is called with the outcome when the delivery is settled.
	Observe func(ctx context.Context, m *Message) (_ context.Context, done func(Outcome))
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Prefetch <= 0 {
		c.Prefetch = min(4*c.Concurrency, 64)
	}
	if c.Completions <= 0 {
		c.Completions = c.Concurrency
	}
	if c.MaxDequeueCount <= 0 {
		c.MaxDequeueCount = 5
	}
	if c.EnvironmentAllowance <= 0 {
		c.EnvironmentAllowance = 20
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.MinPollInterval <= 0 {
		c.MinPollInterval = 100 * time.Millisecond
	}
	if c.MaxPollInterval <= 0 {
		c.MaxPollInterval = time.Minute
	}
	c.MaxPollInterval = max(c.MaxPollInterval, c.MinPollInterval)
	if c.ReleaseDelay <= 0 {
		c.ReleaseDelay = 5 * time.Second
	}
	if c.MaxReleaseDelay <= 0 {
		c.MaxReleaseDelay = 10 * time.Minute
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 250 * time.Millisecond
	}
	if c.RetryAttempts <= 0 {
		c.RetryAttempts = 3
	}
	if c.TryTimeout <= 0 {
		c.TryTimeout = 30 * time.Second
	}
	if c.StorageTimeout <= 0 {
		c.StorageTimeout = 10 * time.Second
	}
	if c.ExpiryMargin <= 0 {
		c.ExpiryMargin = 30 * time.Second
	}
	// A message made visible ExpiryMargin before it expires must still have
	// time to be dequeued and poisoned.
	c.ExpiryMargin = max(c.ExpiryMargin, c.expirySafety()+5*time.Second)
	if c.SummaryInterval == 0 {
		c.SummaryInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// expirySafety is the time a delivery needs, before its message expires, to
// poison it: the work of a delivery is cut off this long before expiry.
func (o *Options) expirySafety() time.Duration { return 2*o.StorageTimeout + time.Second }

// sweepInterval is how often a paused engine looks at the front of the queue
// for messages about to expire.
const sweepInterval = 5 * time.Second

// probeFresh is how long the outcome of a downstream probe is trusted, so
// that a burst of failures costs one probe.
const probeFresh = 15 * time.Second

// Outcome says how one delivery of a message was settled.
type Outcome struct {
	MessageID string
	Kind, ID  string // empty when the message could not be decoded
	Result    string // "succeeded", "duplicate", "poisoned", "released", "paused", "stopped", "lost"
	Err       error
	// DequeueCount is the delivery's; InsertedAt is when the message was
	// sent, Started when this delivery began to be worked, and Ended when it
	// was settled (for processing and end-to-end latencies).
	DequeueCount             int64
	InsertedAt, Started, End time.Time
	// VisibleAt is when a released message (released, paused, stopped)
	// can be received again; zero if it was not released, or the release
	// failed and the message comes back when its lease ends.
	VisibleAt time.Time
}

// Outcome results.
const (
	OutcomeSucceeded = "succeeded" // result written, message deleted
	OutcomeDuplicate = "duplicate" // a succeeded result existed: message deleted, no work done
	OutcomePoisoned  = "poisoned"  // moved to the poison queue
	OutcomeReleased  = "released"  // transient failure: visible again after a delay
	OutcomePaused    = "paused"    // environment fault: released, dequeuing paused
	OutcomeStopped   = "stopped"   // released at shutdown before it could finish
	OutcomeLost      = "lost"      // the lease was lost; another consumer has it
)

// Engine moves messages from a Queue through a Handler. Create it with New,
// start it with Run, stop it with Shutdown.
type Engine struct {
	queue   Queue
	poison  PoisonQueue
	results Results
	handler Handler
	opts    Options
	log     *slog.Logger
	brk     *breaker
	health  health
	budget  logBudget
	flights flights
	// ledger counts, per message id, deliveries that were not the message's
	// fault but could not be written into its mark (the release failed, or
	// the mark did not fit).
	ledger ledger
	// expiryWake is the earliest time (UnixNano) a message released early
	// for its expiry becomes visible; idle polling wakes by then.
	expiryWake atomic.Int64

	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown: take no more work
	// stopReceive cuts short a receive under way, receiveGrace after the
	// stop comes (at once when the drain is cut): it may be waiting out
	// storage retries, and the stop must not wait for them; but a receive
	// cut after the service dequeued its messages leaves them invisible for
	// a lease, while one that returns has them released at once.
	stopReceive context.CancelFunc
	receiveCtx  context.Context
	done        chan struct{} // closed when Run has returned
	// acks are the deletes under way off the slots, and completions the
	// result writes and deletes (completing holds a token of each);
	// Run returns after both.
	acks        sync.WaitGroup
	completions sync.WaitGroup
	completing  chan struct{}
	// workCtx is the context of in-flight work; cancelled when a drain runs
	// out of time.
	workCtx    context.Context
	cancelWork context.CancelFunc
	// lastCall is when the storage calls still to come after a cut drain
	// must end (UnixNano), so that the process exits in the runner's
	// stopping_wait_time.
	lastCall atomic.Int64
	running  atomic.Bool
	// busyAt is when the engine last held a message (UnixNano), and inHand
	// how many it holds now; IdleFor reads them.
	busyAt atomic.Int64
	inHand atomic.Int64
	// lastOK is when a message last succeeded (UnixNano).
	lastOK atomic.Int64

	stats Stats
}

// Stats are the engine's running counters.
type Stats struct {
	Succeeded, Duplicates, Poisoned, Released, Paused, Stopped, Lost atomic.Int64
	Renewals, Receives, InFlight                                     atomic.Int64
	// Coalesced counts messages settled by the outcome of another message
	// with the same result name that was in flight at the same time.
	Coalesced atomic.Int64
	// Probes and ProbeFailures count the downstream probes run.
	Probes, ProbeFailures atomic.Int64
	// Outages counts the episodes of environment faults.
	Outages atomic.Int64
}

// New returns an Engine. handler decodes and runs messages; results and
// poison are where their outcomes go.
func New(q Queue, poison PoisonQueue, results Results, handler Handler, opts *Options) *Engine {
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	rctx, rcancel := context.WithCancel(context.Background())
	return &Engine{
		receiveCtx: rctx, stopReceive: rcancel,
		queue: q, poison: poison, results: results, handler: handler,
		opts: o, log: o.Logger,
		brk:        newBreaker(time.Second, o.MaxPollInterval),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		completing: make(chan struct{}, o.Completions),
		workCtx:    ctx,
		cancelWork: cancel,
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Paused reports whether dequeuing is paused for an environment fault.
func (e *Engine) Paused() bool {
	_, open := e.brk.remaining()
	return open
}

// IdleFor reports how long the engine has held no message: 0 while any is
// dequeued or in flight, else the time since the last one was settled (or
// since Run started). A run-once host stops when it stays idle long enough.
func (e *Engine) IdleFor() time.Duration {
	if e.inHand.Load() > 0 {
		return 0
	}
	at := e.busyAt.Load()
	if at == 0 {
		return 0
	}
	return max(time.Since(time.Unix(0, at)), 0)
}

// ErrEngineStopped is returned by Run after Shutdown.
var ErrEngineStopped = errors.New("worker: engine stopped")

// Run dequeues and works messages until Shutdown is called or ctx ends. A
// cancelled ctx is a hard stop: in-flight work is cancelled and released at
// once. Run returns ErrEngineStopped after a Shutdown, else ctx's error.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice")
	}
	defer close(e.done)
	e.busyAt.Store(time.Now().UnixNano())
	held := e.opts.Concurrency + e.opts.Prefetch
	work := make(chan *lease, held)
	finished := make(chan struct{}, held)

	// A message is worked on a goroutine of its own once one of the
	// Concurrency slots is free; a task that waits outside the process
	// gives its slot back early (Waiting).
	slots := make(chan struct{}, e.opts.Concurrency)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			slots <- struct{}{}
			l, ok := <-work
			if !ok {
				return
			}
			l.slot = &slot{slots: slots}
			wg.Go(func() {
				e.settle(l)
				l.slot.release()
				finished <- struct{}{}
			})
		}
	})
	stopSummary := e.startSummary()

	go func() {
		select {
		case <-ctx.Done():
			e.stopTaking()
			e.cutWork()
		case <-e.done:
		}
	}()

	// Receives end with ctx, or at the stop.
	rctx, cancelReceive := context.WithCancel(ctx)
	defer cancelReceive()
	context.AfterFunc(e.receiveCtx, cancelReceive)
	e.fetch(rctx, work, finished, held)
	close(work)
	wg.Wait()
	e.completions.Wait()
	e.acks.Wait()
	stopSummary()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrEngineStopped
}

// Shutdown stops taking work at once and waits for in-flight messages to
// finish. If ctx ends first, the remaining work is cancelled, its messages
// are released (visible again at once), and Shutdown returns ctx's error
// once that is done. Deletes and poison moves under way are never cancelled.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.stopTaking()
	if !e.running.Load() {
		return nil
	}
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		e.cutWork()
		<-e.done
		return ctx.Err()
	}
}

// cutWork cancels the work in flight; the releases and deletes that follow
// share one last StorageTimeout.
func (e *Engine) cutWork() {
	e.lastCall.CompareAndSwap(0, time.Now().Add(e.opts.StorageTimeout).UnixNano())
	e.cancelWork()
	e.stopReceive()
}

// receiveGrace is how long a receive under way at the stop may still take.
const receiveGrace = time.Second

func (e *Engine) stopTaking() {
	e.stopOnce.Do(func() {
		close(e.stop)
		time.AfterFunc(receiveGrace, e.stopReceive)
	})
}

func (e *Engine) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// fetch is the dequeue loop. It holds at most held messages (on the workers
// plus Prefetch waiting for one) and dequeues when half of Prefetch is free,
// so that each receive fetches a useful batch, as the Functions queue
// trigger's new-batch threshold does, while the other half keeps the workers
// busy until it returns. While the breaker is open it dequeues nothing
// but messages about to expire, and when the pause is over it runs the
// breaker's probe; every wait is bounded, so no outcome that fails to come
// can wedge it.
func (e *Engine) fetch(ctx context.Context, work chan<- *lease, finished <-chan struct{}, held int) {
	inHand := 0
	batchMin := max(1, min(32, e.opts.Prefetch/2))
	poll := time.Duration(0)
	lastSweep := time.Time{}
	// wait pauses the loop for d, or until a message finishes when d < 0,
	// noting finished messages meanwhile; it reports false at the stop.
	wait := func(d time.Duration) bool {
		var timeout <-chan time.Time
		if d >= 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		for {
			select {
			case <-e.stop:
				return false
			case <-timeout:
				return true
			case <-finished:
				inHand--
				if d < 0 {
					return true
				}
			}
		}
	}
	push := func(msgs []*Message) {
		for _, m := range msgs {
			inHand++
			e.inHand.Add(1)
			work <- e.newLease(m)
		}
	}
	for {
		// Take note of finished messages without blocking.
		for drained := false; !drained; {
			select {
			case <-finished:
				inHand--
			default:
				drained = true
			}
		}
		if e.stopping() {
			return
		}
		if held-inHand < batchMin {
			// Something is in hand, so something will finish.
			if !wait(-1) {
				return
			}
			continue
		}
		if pause, probe := e.brk.due(); pause > 0 || probe != nil {
			if probe != nil {
				e.runProbe(ctx, probe)
				continue
			}
			if time.Since(lastSweep) >= sweepInterval {
				lastSweep = time.Now()
				if swept := e.sweep(ctx, held-inHand); len(swept) > 0 {
					// More may be expiring behind them: look again as
					// soon as there is room.
					push(swept)
					lastSweep = time.Time{}
					continue
				}
			}
			if !wait(min(pause, sweepInterval)) {
				return
			}
			continue
		}
		e.stats.Receives.Add(1)
		rctx, cancel := context.WithTimeout(ctx, e.opts.StorageTimeout)
		msgs, err := e.queue.Receive(rctx, min(32, held-inHand), e.opts.Lease)
		cancel()
		if err != nil {
			if e.stopping() {
				return
			}
			e.tripBreaker(0, storageError(err), e.storageProbe)
			continue
		}
		push(msgs)
		if len(msgs) > 0 {
			poll = 0
			continue
		}
		if poll == 0 {
			poll = e.opts.MinPollInterval
		} else {
			poll = min(poll*2, e.opts.MaxPollInterval)
		}
		d := jitter(poll, 0.2)
		if at := e.expiryWake.Swap(0); at != 0 {
			if until := time.Until(time.Unix(0, at)); until < d {
				d = max(until, 0)
			} else {
				e.noteExpiryWake(time.Unix(0, at))
			}
		}
		if !wait(d) {
			return
		}
	}
}

// noteExpiryWake makes idle polling wake by t, when a message released early
// for its expiry becomes visible.
func (e *Engine) noteExpiryWake(t time.Time) {
	n := t.UnixNano()
	for {
		cur := e.expiryWake.Load()
		if cur != 0 && cur <= n {
			return
		}
		if e.expiryWake.CompareAndSwap(cur, n) {
			return
		}
	}
}

// sweep looks at the front of the queue while the breaker is open, and
// dequeues a batch when a message there is about to expire, so that it is
// poisoned instead of deleted unseen by the queue. The rest of the batch is
// released again, untouched and uncounted.
func (e *Engine) sweep(ctx context.Context, room int) []*Message {
	pctx, cancel := context.WithTimeout(ctx, e.opts.StorageTimeout)
	defer cancel()
	peeked, err := e.queue.Peek(pctx, 32)
	if err != nil {
		return nil
	}
	soon := time.Now().Add(e.opts.ExpiryMargin + 2*sweepInterval)
	expiring := false
	for _, m := range peeked {
		if !m.ExpiresAt.IsZero() && m.ExpiresAt.Before(soon) {
			expiring = true
			break
		}
	}
	if !expiring || room <= 0 {
		return nil
	}
	e.stats.Receives.Add(1)
	msgs, err := e.queue.Receive(pctx, min(32, room), e.opts.Lease)
	if err != nil {
		return nil
	}
	return msgs
}

// runProbe runs the breaker's probe when its pause is over: success closes
// the breaker, failure opens it again for longer. Its context ends at the
// stop.
func (e *Engine) runProbe(ctx context.Context, probe ProbeFunc) {
	pctx, cancel := context.WithTimeout(ctx, e.opts.TryTimeout)
	err := runProbe(pctx, probe)
	cancel()
	e.stats.Probes.Add(1)
	if err == nil {
		e.closeBreaker()
		return
	}
	if e.stopping() {
		return
	}
	e.stats.ProbeFailures.Add(1)
	pause := e.brk.failed(retryAfterOf(err))
	e.log.Debug("probe failed; still paused", "class", ClassOf(err).String(), "code", CodeOf(err),
		"err", err, "pause", pause.Round(time.Millisecond))
}

// runProbe runs probe, turning a panic into an error. An answer that refuses
// the probe's request as bad still shows the downstream up.
func runProbe(ctx context.Context, probe ProbeFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Transient("Panic", fmt.Errorf("probe panicked: %v", r))
		}
	}()
	err = probe(ctx)
	if c := ClassOf(err); err != nil && (c == ClassInvalid || c == ClassRejected) {
		return nil
	}
	return err
}

// storageProbe checks the storage account with two reads that change
// nothing: a peek of the queue and a look-up of a result.
func (e *Engine) storageProbe(ctx context.Context) error {
	if _, err := e.queue.Peek(ctx, 1); err != nil {
		return storageError(err)
	}
	if _, err := e.results.Succeeded(ctx, probeResultName); err != nil {
		return storageError(err)
	}
	return nil
}

// probeResultName is the result the storage probe looks up; it never exists.
const probeResultName = "mapsworker-probe/none.json"

func retryAfterOf(err error) time.Duration {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.RetryAfter
	}
	return 0
}

// settle works one message to its outcome on a worker. A message whose task
// succeeded is completed (its result written, then the message deleted) off
// the worker, which waits only for a free completion token: while the
// result is written the worker runs the next message's task. The lease is
// renewed until the completion ends.
func (e *Engine) settle(l *lease) {
	e.stats.InFlight.Add(1)
	started := time.Now()
	var done func(Outcome)
	if e.opts.Observe != nil {
		ctx, d := e.opts.Observe(e.workCtx, l.msg)
		l.setContext(ctx)
		done = d
	}
	o, complete := e.process(l)
	if complete == nil {
		e.finish(l, o, started, done)
		return
	}
	e.completing <- struct{}{}
	e.completions.Add(1)
	go func() {
		defer e.completions.Done()
		o := complete()
		<-e.completing
		e.finish(l, o, started, done)
	}()
}

// finish settles a delivery whose outcome is known: renewals end, and the
// outcome is counted, logged and reported.
func (e *Engine) finish(l *lease, o Outcome, started time.Time, done func(Outcome)) {
	defer func() {
		e.busyAt.Store(time.Now().UnixNano())
		e.inHand.Add(-1)
	}()
	defer e.stats.InFlight.Add(-1)
	defer l.stopRenewing()
	o.MessageID = l.msg.ID
	o.DequeueCount, o.InsertedAt, o.Started, o.End = l.msg.DequeueCount, l.msg.InsertedAt, started, time.Now()
	if done != nil {
		done(o)
	}
	if o.Result != OutcomeReleased && o.Result != OutcomePaused && o.Result != OutcomeStopped {
		e.ledger.forget(l.msg.ID)
	}
	e.count(o)
	if e.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []any{"messageId", o.MessageID, "kind", o.Kind, "id", o.ID,
			"dequeueCount", l.msg.DequeueCount, "outcome", o.Result}
		if o.Err != nil {
			attrs = append(attrs, "class", ClassOf(o.Err).String(), "err", o.Err)
		}
		e.log.Debug("message settled", attrs...)
	}
	if e.opts.OnOutcome != nil {
		e.opts.OnOutcome(o)
	}
}

func (e *Engine) count(o Outcome) {
	var c *atomic.Int64
	switch o.Result {
	case OutcomeSucceeded:
		c = &e.stats.Succeeded
	case OutcomeDuplicate:
		c = &e.stats.Duplicates
	case OutcomePoisoned:
		c = &e.stats.Poisoned
	case OutcomeReleased:
		c = &e.stats.Released
	case OutcomePaused:
		c = &e.stats.Paused
	case OutcomeStopped:
		c = &e.stats.Stopped
	default:
		c = &e.stats.Lost
	}
	c.Add(1)
}

// attempts is the number of deliveries of m that count towards poisoning:
// those not known to have ended for a fault that was not its own.
func (e *Engine) attempts(m *Message) int64 {
	return max(m.DequeueCount-m.mark().env-e.ledger.get(m.ID), 1)
}

// process works m up to its outcome, or, when its task succeeded, up to
// the completion that writes its result and deletes it (complete, to be run
// off the worker; o is then empty).
func (e *Engine) process(l *lease) (_ Outcome, complete func() Outcome) {
	m := l.msg
	if e.stopping() && !l.started {
		// Dequeued but not begun when the stop came: give it back at once.
		return e.release(l, Outcome{Result: OutcomeStopped}, 0, true), nil
	}
	l.started = true
	if !m.ExpiresAt.IsZero() && time.Until(m.ExpiresAt) < e.opts.expirySafety() {
		return e.poisonMessage(l, nil, Outcome{Result: OutcomePoisoned, Err: expiring(m)}), nil
	}
	if d, open := e.brk.remaining(); open {
		// The environment is failing; don't spend this delivery on it.
		return e.release(l, Outcome{Result: OutcomePaused}, jitter(d, 0.2)+time.Second, true), nil
	}
	attempts := e.attempts(m)
	if attempts > e.opts.MaxDequeueCount {
		err := Transient("MaxDequeueCountExceeded", fmt.Errorf(
			"delivered %d times without success (limit %d); not worked again", attempts-1, e.opts.MaxDequeueCount))
		return e.poisonMessage(l, nil, Outcome{Result: OutcomePoisoned, Err: err}), nil
	}
	if limit := e.opts.MaxDequeueCount + e.opts.EnvironmentAllowance; m.DequeueCount > limit {
		err := Transient("TooManyDeliveries", fmt.Errorf(
			"delivered %d times (limit %d: %d failures of its own and %d faults of the environment); not worked again",
			m.DequeueCount-1, limit, e.opts.MaxDequeueCount, e.opts.EnvironmentAllowance))
		return e.poisonMessage(l, nil, Outcome{Result: OutcomePoisoned, Err: err}), nil
	}

	body, err := DecodeBody(m.body())
	var task Task
	if err == nil {
		msgName := m.ID
		if n := m.mark().name; n != "" {
			msgName = n
		}
		task, err = e.handler.Decode(body, msgName)
	}
	o := Outcome{}
	if task != nil {
		o.Kind, o.ID = task.Kind(), task.ID()
	}
	if err != nil {
		if ClassOf(err) != ClassInvalid {
			err = InvalidRequest(CodeOf(err), err)
		}
		o.Err = err
		return e.failed(l, task, o, attempts), nil
	}
	name := ResultName(task.Kind(), task.ID())

	// Work is cut off in time to poison the message before it expires.
	ctx := l.context()
	if l.slot != nil {
		ctx = context.WithValue(ctx, slotKey{}, l.slot)
	}
	if !m.ExpiresAt.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, m.ExpiresAt.Add(-e.opts.expirySafety()))
		defer cancel()
	}

	// Another message with the same name in flight here: wait for its
	// outcome instead of paying Maps for the same answer twice. The leader
	// leaves when its delivery ends, its completion's included.
	f, leader := e.flights.join(name)
	if leader {
		defer func() {
			if complete == nil {
				e.flights.leave(name, f)
			}
		}()
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
		}
		if f.succeeded.Load() {
			e.stats.Coalesced.Add(1)
			o.Result = OutcomeDuplicate
			return e.delete(l, o), nil
		}
	}

	// Only a redelivery (or a follower of a failed leader) can find its
	// result written: a first delivery pays no extra storage call for
	// idempotence.
	if m.DequeueCount > 1 || !leader {
		sctx, cancel := context.WithTimeout(ctx, e.opts.StorageTimeout)
		done, err := e.results.Succeeded(sctx, name)
		cancel()
		if err != nil {
			o.Err = storageError(err)
			return e.failed(l, task, o, attempts), nil
		}
		if done {
			f.succeeded.Store(leader)
			o.Result = OutcomeDuplicate
			return e.delete(l, o), nil
		}
	}

	l.began = time.Now()
	out, err := e.run(ctx, task)
	if err == nil {
		e.health.ok(task.Kind())
		e.lastOK.Store(time.Now().UnixNano())
		doc, merr := json.Marshal(Result{
			ID: task.ID(), Kind: task.Kind(), Status: StatusSucceeded, CompletedAt: time.Now().UTC(),
			DequeueCount: m.DequeueCount, Request: task.Request(), Summary: out.Summary, Response: out.Response,
		})
		if merr == nil {
			return Outcome{}, func() Outcome {
				if leader {
					defer e.flights.leave(name, f)
				}
				return e.complete(l, task, o, name, doc, f, leader, attempts)
			}
		}
		err = Transient("ResultEncoding", merr)
	}
	o.Err = err
	return e.failed(l, task, o, attempts), nil
}

// complete writes the result of a task that succeeded and then deletes its
// message: the message is deleted only once its result is written. The
// work is done, so the result is written even if a stop cuts the drain
// short, within the bound on every storage call.
func (e *Engine) complete(l *lease, task Task, o Outcome, name string, doc []byte, f *flight, leader bool, attempts int64) Outcome {
	pctx, cancel := l.resultCtx()
	err := e.results.Put(pctx, name, doc, false)
	cancel()
	if err == nil || errors.Is(err, ErrResultExists) {
		f.succeeded.Store(leader)
		o.Result = OutcomeSucceeded
		return e.ack(l, o)
	}
	o.Err = storageError(err)
	return e.failed(l, task, o, attempts)
}

// expiring is the error of a message poisoned because its time-to-live is
// about to end.
func expiring(m *Message) error {
	return &Error{Class: ClassExpiring, Code: "NearExpiry", Err: fmt.Errorf(
		"the queue deletes this message at %s, before it could be worked again; poisoned so that it is not lost",
		m.ExpiresAt.UTC().Format(time.RFC3339))}
}

// run runs task, retrying transient errors in process with go-retry, each
// try bounded by TryTimeout. Only this retries Maps calls: the Maps client's
// own (azcore) retry is off, so retries are not multiplied. The retries end
// well inside the lease, which is renewed meanwhile anyway.
func (e *Engine) run(ctx context.Context, task Task) (*Output, error) {
	b := retry.NewExponential(e.opts.RetryBase)
	b = retry.WithJitterPercent(20, b)
	b = retry.WithMaxRetries(uint64(e.opts.RetryAttempts-1), b)
	b = retry.WithMaxDuration(e.opts.Lease/4, b)
	return retry.DoValue(ctx, b, func(ctx context.Context) (*Output, error) {
		tctx, cancel := context.WithTimeout(ctx, tryTimeout(task, e.opts.TryTimeout))
		out, err := e.runSafely(tctx, task)
		cancel()
		if err != nil && ClassOf(err) == ClassTransient && CodeOf(err) != "Panic" && ctx.Err() == nil {
			return nil, retry.RetryableError(err)
		}
		return out, err
	})
}

// runSafely turns a panic in a handler into a transient error, so that a
// bug poisons its message after the usual deliveries instead of killing the
// process (and every message in flight with it).
func (e *Engine) runSafely(ctx context.Context, task Task) (out *Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Transient("Panic", fmt.Errorf("handler panicked: %v", r))
			if e.budget.allow("panics") {
				e.log.Error("handler panicked", "kind", task.Kind(), "id", task.ID(), "panic", r, "stack", string(debug.Stack()))
			}
		}
	}()
	out, err = task.Run(ctx)
	if err == nil && out == nil {
		err = Transient("NoOutput", errors.New("handler returned no output"))
	}
	return out, err
}

// failed settles a message whose work failed, as Decide says.
func (e *Engine) failed(l *lease, task Task, o Outcome, attempts int64) Outcome {
	if e.workCtx.Err() != nil {
		// The drain ran out of time and cut the work short: not the
		// message's fault, and it should be picked up again at once.
		o.Result = OutcomeStopped
		return e.release(l, o, 0, true)
	}
	outage := false
	if ClassOf(o.Err) == ClassTransient && task != nil && CodeOf(o.Err) != "StorageRefused" {
		// Is the downstream down, or is this message at fault?
		outage = e.health.up(e, task, l.began) != nil
	}
	switch Decide(o.Err, attempts, e.opts.MaxDequeueCount, outage) {
	case Poison:
		o.Result = OutcomePoisoned
		return e.poisonMessage(l, task, o)
	case Pause:
		pause := e.tripBreaker(retryAfterOf(o.Err), o.Err, e.probeFor(o.Err, task))
		o.Result = OutcomePaused
		return e.release(l, o, jitter(pause, 0.2)+time.Second, true)
	default:
		o.Result = OutcomeReleased
		return e.release(l, o, releaseDelay(attempts, e.opts.ReleaseDelay, e.opts.MaxReleaseDelay), false)
	}
}

// probeFor is the probe that tells when the fault behind err has cleared: a
// storage probe for storage faults, the task's own probe for its
// downstream's.
func (e *Engine) probeFor(err error, task Task) ProbeFunc {
	if CodeOf(err) == codeStorageUnavailable || task == nil {
		return e.storageProbe
	}
	if p, ok := task.(Prober); ok {
		return p.Probe
	}
	// Nothing to ask: resume when the pause is over.
	return func(context.Context) error { return nil }
}

// tripBreaker opens the breaker for an environment fault and logs the first
// fault of an episode only: the WebJobs dashboard keeps 200 lines.
func (e *Engine) tripBreaker(retryAfter time.Duration, err error, probe ProbeFunc) time.Duration {
	pause, first := e.brk.trip(retryAfter, probe)
	if first {
		e.stats.Outages.Add(1)
		if e.budget.episodeBegins() {
			e.log.Warn("environment fault; pausing dequeues until it clears",
				"class", ClassOf(err).String(), "code", CodeOf(err), "err", err, "pause", pause.Round(time.Millisecond))
		}
	}
	return pause
}

// closeBreaker closes the breaker, logging the recovery after a fault.
func (e *Engine) closeBreaker() {
	if e.brk.close() && e.budget.episodeEnds() {
		e.log.Info("environment recovered; dequeuing resumed")
	}
}

// codeStorageUnavailable marks storage faults that are the environment's.
const codeStorageUnavailable = "StorageUnavailable"

// storageError classes a storage failure. A request refused for what it is
// (ErrRefused: 400, 413) is transient, counted against the message, as
// sending it again cannot help; any other failure is the environment's
// fault: the message is fine, the account is not reachable or not allowed.
func storageError(err error) error {
	if errors.Is(err, ErrRefused) {
		return Transient("StorageRefused", err)
	}
	if ClassOf(err) != ClassTransient || CodeOf(err) != "" {
		return err
	}
	return Environmental(codeStorageUnavailable, err, 0)
}

// detached returns a context for a storage call of l's delivery that must
// finish even when the engine is being stopped: it keeps the delivery's
// values (a trace span) but not its cancellation, and has its own deadline.
func (l *lease) detached() (context.Context, context.CancelFunc) {
	e := l.e
	deadline := time.Now().Add(e.opts.StorageTimeout)
	if last := e.lastCall.Load(); last != 0 {
		deadline = time.Unix(0, min(last, deadline.UnixNano()))
	}
	return context.WithDeadline(context.WithoutCancel(l.context()), deadline)
}

// resultCtx bounds the write of a result whose work is done. While the
// engine runs, that is as long as a try may take, not StorageTimeout: a
// storage front end stalling for seconds (Azurite on a busy machine, at 64
// in flight) is waited for, instead of the paid Maps answer being thrown
// away, the message released as an environment fault (which pauses
// dequeuing for every message) and its Maps call made again. Once a stop
// cuts the drain it ends with the other storage calls.
func (l *lease) resultCtx() (context.Context, context.CancelFunc) {
	e := l.e
	if e.lastCall.Load() != 0 {
		return l.detached()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.context()), max(e.opts.StorageTimeout, e.opts.TryTimeout))
	stop := context.AfterFunc(e.workCtx, func() {
		t := time.AfterFunc(time.Until(time.Unix(0, e.lastCall.Load())), cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() {
		stop()
		cancel()
	}
}

// ack deletes the message of a completed delivery, on the completion. As
// with delete, the outcome is the same whether the delete succeeds or not.
func (e *Engine) ack(l *lease, o Outcome) Outcome {
	ctx, cancel := l.detached()
	defer cancel()
	e.deleteMessage(ctx, l)
	return o
}

func (e *Engine) delete(l *lease, o Outcome) Outcome {
	// The delete does not hold the message's slot: the outcome is the same
	// whether it succeeds or not (a message whose delete failed comes back
	// and is acknowledged as a duplicate), and a slot waiting for it adds
	// a storage round trip to every message's time.
	ctx, cancel := l.detached()
	e.acks.Add(1)
	go func() {
		defer e.acks.Done()
		defer cancel()
		e.deleteMessage(ctx, l)
	}()
	return o
}

func (e *Engine) deleteMessage(ctx context.Context, l *lease) {
	if err := l.delete(ctx); err != nil && !errors.Is(err, ErrMessageLost) {
		// The message comes back after its lease and is then acknowledged
		// as a duplicate (ErrMessageLost: another consumer holds it and
		// will find the result). Debug only, like every per-message line:
		// an outage fails them all, and the breaker says so once.
		e.log.Debug("delete failed; the message will be redelivered and acknowledged",
			"messageId", l.msg.ID, "err", err)
	}
}

// release makes the message visible again after the given delay, marking
// it when the delivery was not its fault (environment). A message that
// would expire before it could be worked again is poisoned instead.
func (e *Engine) release(l *lease, o Outcome, after time.Duration, environment bool) Outcome {
	if exp := l.msg.ExpiresAt; !exp.IsZero() && !l.poisoning {
		latest := time.Until(exp) - e.opts.ExpiryMargin
		least := time.Second
		if _, open := e.brk.remaining(); open {
			// A paused engine looks for expiring messages only so often.
			least = 2 * sweepInterval
		}
		if latest < least {
			o.Result = OutcomePoisoned
			return e.poisonMessage(l, nil, Outcome{Kind: o.Kind, ID: o.ID, Result: OutcomePoisoned, Err: expiring(l.msg)})
		}
		if after > latest {
			after = latest
			e.noteExpiryWake(time.Now().Add(after))
		}
	}
	ctx, cancel := l.detached()
	defer cancel()
	marked, err := l.release(ctx, after, environment)
	if err == nil {
		o.VisibleAt = time.Now().Add(after)
	}
	if environment && (err != nil || !marked) {
		// The mark could not carry this delivery: remember it here.
		e.ledger.add(l.msg.ID)
	}
	if err != nil {
		if errors.Is(err, ErrMessageLost) {
			o.Result = OutcomeLost
			return o
		}
		e.log.Debug("release failed; the message comes back when its lease ends",
			"messageId", l.msg.ID, "err", err)
	}
	return o
}

// maxEnvelope is the most text a poison envelope may hold: the 64 KiB of a
// queue message, measured as the service does, in UTF-8 bytes.
const maxEnvelope = maxMessageText

// poisonMessage writes a failed result where the request is named and of a
// class that can never succeed, sends the envelope to the poison queue, and
// then deletes the message. The envelope is sent before the delete, so a
// crash between them duplicates the envelope rather than losing the message.
// An original text too large for the envelope is stored as a blob that the
// envelope names.
func (e *Engine) poisonMessage(l *lease, task Task, o Outcome) Outcome {
	l.poisoning = true
	ctx, cancel := l.detached()
	defer cancel()
	info := errorInfo(o.Err)
	c := ClassOf(o.Err)
	pause := func(err error) Outcome {
		o.Err = storageError(err)
		if ClassOf(o.Err) != ClassEnvironment {
			// Refused for what it is: nothing to wait for. Count the
			// delivery; the limit on deliveries poisons it in the end.
			o.Result = OutcomeReleased
			return e.release(l, o, releaseDelay(e.attempts(l.msg), e.opts.ReleaseDelay, e.opts.MaxReleaseDelay), false)
		}
		o.Result = OutcomePaused
		return e.release(l, o, jitter(e.tripBreaker(0, o.Err, e.storageProbe), 0.2)+time.Second, true)
	}
	if task != nil && (c == ClassInvalid || c == ClassRejected) {
		doc, err := json.Marshal(Result{
			ID: task.ID(), Kind: task.Kind(), Status: StatusFailed, CompletedAt: time.Now().UTC(),
			DequeueCount: l.msg.DequeueCount, Request: validJSON(task.Request()), Error: &info,
		})
		if err == nil {
			err = e.results.Put(ctx, ResultName(task.Kind(), task.ID()), doc, true)
		}
		if err != nil && !errors.Is(err, ErrResultExists) {
			return pause(err)
		}
	}
	env := Envelope{
		Message: l.msg.Original(), MessageID: l.msg.ID, Name: l.msg.mark().name, InsertedAt: l.msg.InsertedAt,
		DequeueCount: l.msg.DequeueCount, PoisonedAt: time.Now().UTC(), Error: info,
	}
	if !l.msg.ExpiresAt.IsZero() {
		env.ExpiresAt = l.msg.ExpiresAt
	}
	text := env.encode()
	if len(text) > maxEnvelope {
		env.MessageBlob = PoisonTextName(l.msg.ID)
		if err := e.results.PutText(ctx, env.MessageBlob, env.Message); err != nil {
			return pause(err)
		}
		env.Message = ""
		text = env.encode()
	}
	if err := e.poison.Send(ctx, text); err != nil {
		return pause(err)
	}
	if e.budget.allow("poisonLines") {
		e.log.Info("poisoning messages; they are in the poison queue with the reason",
			"class", info.Class, "code", info.Code, "messageId", l.msg.ID)
	} else {
		e.log.Debug("message poisoned", "messageId", l.msg.ID, "class", info.Class, "code", info.Code)
	}
	return e.delete(l, o)
}

// validJSON returns raw if it is valid JSON, else null, so that a result
// document always parses.
func validJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || !json.Valid(raw) {
		return json.RawMessage("null")
	}
	return raw
}

// startSummary logs a summary line while there was work: every
// SummaryInterval at first, then less and less often (summaryInterval), so
// that the WebJobs dashboard (first 200 lines of a run) lasts a month.
func (e *Engine) startSummary() (stop func()) {
	if e.opts.SummaryInterval < 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		t := time.NewTimer(summaryInterval(0, e.opts.SummaryInterval))
		defer t.Stop()
		var last [5]int64
		lastAt := start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				t.Reset(summaryInterval(now.Sub(start), e.opts.SummaryInterval))
				s := &e.stats
				cur := [5]int64{s.Succeeded.Load() + s.Duplicates.Load(), s.Poisoned.Load(),
					s.Released.Load() + s.Paused.Load(), s.Renewals.Load(), s.Outages.Load()}
				if cur == last && s.InFlight.Load() == 0 {
					continue
				}
				done := cur[0] - last[0]
				processed := done + cur[1] - last[1] + cur[2] - last[2]
				attrs := []any{"processed", processed,
					"succeeded", done, "poisoned", cur[1] - last[1], "released", cur[2] - last[2],
					"inFlight", s.InFlight.Load(),
					"perSecond", float64(int(float64(processed)/now.Sub(lastAt).Seconds()*10)) / 10}
				if e.opts.SummaryAttrs != nil {
					attrs = append(attrs, e.opts.SummaryAttrs()...)
				}
				attrs = append(attrs, "renewals", cur[3]-last[3])
				if n := cur[4] - last[4]; n > 0 {
					attrs = append(attrs, "outages", n)
				}
				attrs = append(attrs, e.budget.unlogged()...)
				e.log.Info("summary", attrs...)
				last, lastAt = cur, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
