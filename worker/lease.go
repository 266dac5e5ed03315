package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// lease is the engine's hold on one dequeued message. Every call that needs
// the pop receipt goes through it, so a renewal's new receipt is the one the
// delete or release uses (the queue rejects an outdated one).
type lease struct {
	e       *Engine
	mu      sync.Mutex
	msg     *Message
	timer   *time.Timer
	settled bool // deleted, released or lost: renew no more
	lost    bool // a renewal found the message gone or leased by another
	// unsure says the last renewal's answer never came: it may have taken
	// effect, leaving a pop receipt we do not know.
	unsure    bool
	started   bool      // the worker began working it (set by the worker only)
	poisoning bool      // being poisoned: a release must not poison again
	began     time.Time // when the task began to run
	slot      *slot     // the worker slot it is worked in; nil until then
	// ctx is the delivery's work context when Options.Observe gave one;
	// atomic, as renewals read it holding mu.
	ctx atomic.Pointer[context.Context]
}

// setContext sets the context of the delivery's work (Options.Observe's).
func (l *lease) setContext(ctx context.Context) { l.ctx.Store(&ctx) }

// context is the delivery's work context: the engine's, or Observe's.
func (l *lease) context() context.Context {
	if p := l.ctx.Load(); p != nil {
		return *p
	}
	return l.e.workCtx
}

func (e *Engine) newLease(m *Message) *lease {
	l := &lease{e: e, msg: m}
	l.timer = time.AfterFunc(e.opts.Lease/2, l.renew)
	return l
}

// renew extends the visibility of a message worked on for longer than half
// its lease. azqueue's UpdateMessage always sends the text, so the current
// text is sent again, or the body would be wiped.
func (l *lease) renew() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.settled {
		return
	}
	e := l.e
	ctx, cancel := l.detached()
	defer cancel()
	pop, err := e.queue.Update(ctx, l.msg.ID, l.msg.PopReceipt, l.msg.Text, e.opts.Lease)
	switch {
	case err == nil:
		l.unsure = false
		l.msg.PopReceipt = pop
		e.stats.Renewals.Add(1)
		l.timer.Reset(e.opts.Lease / 2)
	case errors.Is(err, ErrMessageLost) && l.unsure:
		// The renewal whose answer was lost took effect: the message is
		// still ours, under a receipt we never saw. It can be renewed no
		// more; the result is written as usual, and the message, if not
		// deleted, comes back after its lease and is acknowledged.
		l.settled, l.lost = true, true
		e.log.Debug("lease renewal outcome unknown; renewing no more", "messageId", l.msg.ID, "err", err)
	case errors.Is(err, ErrMessageLost):
		l.settled, l.lost = true, true
		if e.budget.allow("lostLeases") {
			e.log.Warn("lease lost while working; another consumer may work the message too (is MAPS_LEASE too short?)",
				"messageId", l.msg.ID, "err", err)
		}
	default:
		l.unsure = true
		// Try again soon: the lease still has half its time. Debug only:
		// a storage outage fails every renewal, and the breaker's warning
		// already says so once.
		e.log.Debug("lease renewal failed; retrying", "messageId", l.msg.ID, "err", err)
		l.timer.Reset(min(e.opts.Lease/8, 10*time.Second))
	}
}

func (l *lease) stopRenewing() {
	l.mu.Lock()
	l.settled = true
	l.timer.Stop()
	l.mu.Unlock()
}

func (l *lease) delete(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer.Stop()
	l.settled = true
	if l.lost {
		return ErrMessageLost
	}
	return l.e.queue.Delete(ctx, l.msg.ID, l.msg.PopReceipt)
}

// release makes the message visible again after the given delay. A release
// for a fault that was not the message's (environment) marks the text, so
// that the delivery does not count towards poisoning; marked reports
// whether it did (there may be no room for the mark).
func (l *lease) release(ctx context.Context, after time.Duration, environment bool) (marked bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer.Stop()
	if l.lost {
		return false, ErrMessageLost
	}
	l.settled = true
	text := l.msg.Text
	if environment {
		orig, mk := splitMark(text, l.msg.ID)
		mk.env++
		if t := withMark(orig, l.msg.ID, mk); len(t) <= maxMessageText {
			text, marked = t, true
		}
	}
	_, err = l.e.queue.Update(ctx, l.msg.ID, l.msg.PopReceipt, text, max(after, 0))
	return marked && err == nil, err
}

// maxMessageText is the most text a queue message may hold (64 KiB).
const maxMessageText = 64 * 1024
