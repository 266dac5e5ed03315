package main

import (
	"errors"
	"slices"
	"testing"
	"time"

	"mapsworker/worker"
)

// TestRunOnceEnd drives the run-once decision with a fake clock: events at
// offsets from the start, then the question "does the run end at this
// offset, with the engine idle for this long?".
func TestRunOnceEnd(t *testing.T) {
	const grace = 30 * time.Second
	errStorage := errors.New("storage unreachable")
	type event struct {
		at    time.Duration
		recv  int           // messages a receive returned (-1: no receive)
		err   error         // of that receive
		began time.Duration // when that receive (or the settled work) began
		out   string
		// visible is when a released message is visible again; 0: at once
		visible time.Duration
	}
	recv := func(at time.Duration, n int) event { return event{at: at, recv: n, began: at} }
	recvErr := func(at time.Duration) event { return event{at: at, recv: 0, err: errStorage, began: at} }
	// recvErrAfter is a receive that began at began and failed, after the
	// SDK's retries, at at.
	recvErrAfter := func(began, at time.Duration) event {
		return event{at: at, recv: 0, err: errStorage, began: began}
	}
	settled := func(at time.Duration, result string) event { return event{at: at, recv: -1, out: result, began: at} }
	// settledHidden is a release at at whose message is visible again at visible.
	settledHidden := func(at, visible time.Duration, result string) event {
		return event{at: at, recv: -1, out: result, began: at, visible: visible}
	}
	// settledBegun is an outcome of work that began at began.
	settledBegun := func(began, at time.Duration, result string) event {
		return event{at: at, recv: -1, out: result, began: began}
	}
	untilEmpty := runLimits{UntilEmpty: true, IdleGrace: grace}

	// empties is a healthy empty queue polled every 5 s over [from, to].
	empties := func(from, to time.Duration) []event {
		var es []event
		for at := from; at <= to; at += 5 * time.Second {
			es = append(es, recv(at, 0))
		}
		return es
	}
	then := func(lists ...[]event) []event { return slices.Concat(lists...) }

	cases := []struct {
		name   string
		limits runLimits
		events []event
		at     time.Duration
		idle   time.Duration
		want   string // the end's reason; "" for no end
		code   int
	}{
		{"empty from the start", untilEmpty, empties(0, grace), grace, grace, "queue stayed empty", exitDone},
		{"empty, not for long enough", untilEmpty, empties(0, grace-time.Second), grace - time.Millisecond, grace, "", 0},
		{"a message is in hand", untilEmpty, empties(0, time.Minute), time.Minute, 0, "", 0},
		{"never polled", untilEmpty, nil, time.Minute, time.Minute, "", 0},
		{"no receive answered lately (one is stuck in retries)", untilEmpty, empties(0, 10*time.Second), 40 * time.Second, 40 * time.Second, "", 0},
		{"messages came, the grace counts from the next empty receive",
			untilEmpty, then(empties(0, 5*time.Second), []event{recv(10*time.Second, 3)}, empties(11*time.Second, 40*time.Second)), 40 * time.Second, 29 * time.Second, "", 0},
		{"messages came, then the grace passed",
			untilEmpty, then(empties(0, 5*time.Second), []event{recv(10*time.Second, 3)}, empties(11*time.Second, 41*time.Second)), 41 * time.Second, 30 * time.Second, "queue stayed empty", exitDone},
		{"storage down for the grace", untilEmpty, []event{recvErr(0), recvErr(20 * time.Second)}, grace, grace, "environment fault outlasted the idle grace", exitFault},
		{"storage down, not for long enough", untilEmpty, []event{recvErr(0)}, grace - time.Second, grace, "", 0},
		{"storage stopped answering: counted from when the failed receive began", untilEmpty, then(empties(0, 5*time.Second), []event{recvErrAfter(10*time.Second, 40*time.Second)}), 40 * time.Second, 40 * time.Second, "environment fault outlasted the idle grace", exitFault},
		{"a storage blip after long work is not an outage", untilEmpty, []event{recv(0, 32), recvErr(5 * time.Minute)}, 5*time.Minute + time.Second, 0, "", 0},
		{"empty, then storage down: not known to be empty", untilEmpty, then(empties(0, 25*time.Second), []event{recvErr(29 * time.Second)}), grace, grace, "", 0},
		{"storage back: empty, no fault", untilEmpty, then([]event{recvErr(0)}, empties(time.Second, 31*time.Second)), 31 * time.Second, grace, "queue stayed empty", exitDone},
		{"Maps refusing: paused, idle between probes",
			untilEmpty, []event{recv(0, 1), settled(time.Second, worker.OutcomePaused), recv(5*time.Second, 1), settled(6*time.Second, worker.OutcomePaused)}, grace + time.Second, grace - 6*time.Second, "environment fault outlasted the idle grace", exitFault},
		{"Maps refusing: the released message is invisible and the queue looks empty",
			untilEmpty, then([]event{recv(0, 1), settled(time.Second, worker.OutcomePaused)}, empties(2*time.Second, grace+time.Second)), grace + time.Second, grace, "environment fault outlasted the idle grace", exitFault},
		{"a fault then progress", untilEmpty, []event{recv(0, 2), settled(time.Second, worker.OutcomePaused), settled(10*time.Second, worker.OutcomeSucceeded)}, grace + time.Second, 0, "", 0},
		{"work begun before the fault is no progress", untilEmpty, []event{recv(0, 2), settled(time.Second, worker.OutcomePaused), settledBegun(0, 2*time.Second, worker.OutcomeSucceeded)}, grace + time.Second, grace, "environment fault outlasted the idle grace", exitFault},
		{"a released message still hidden keeps a fault from ending the run", untilEmpty, []event{recv(0, 1), settledHidden(time.Second, grace+20*time.Second, worker.OutcomePaused)}, grace + 10*time.Second, grace, "", 0},
		{"nor is the queue empty while a released message is hidden", untilEmpty, then([]event{recv(0, 1), settledHidden(time.Second, grace+20*time.Second, worker.OutcomeReleased)}, empties(2*time.Second, grace+10*time.Second)), grace + 10*time.Second, grace, "", 0},
		{"once it is back, the fault ends the run", untilEmpty, []event{recv(0, 1), settledHidden(time.Second, grace, worker.OutcomePaused)}, grace + grace/2, grace, "environment fault outlasted the idle grace", exitFault},
		{"a transient release is progress", untilEmpty, []event{recv(0, 1), settled(time.Second, worker.OutcomePaused), settled(2*time.Second, worker.OutcomeReleased)}, grace + 2*time.Second, 0, "", 0},
		{"continuous: a fault never ends it", runLimits{IdleGrace: grace}, []event{recvErr(0)}, time.Hour, time.Hour, "", 0},
		{"max-messages reached", runLimits{IdleGrace: grace, MaxMessages: 5}, []event{recv(0, 3), recv(time.Second, 2)}, time.Second, 0, "max-messages reached", exitDone},
		{"max-messages not reached", runLimits{IdleGrace: grace, MaxMessages: 5}, []event{recv(0, 4)}, time.Second, 0, "", 0},
		{"max-duration", runLimits{IdleGrace: grace, MaxDuration: time.Minute}, []event{recv(0, 32)}, time.Minute, 0, "max-duration reached", exitDone},
		{"max-duration not yet", runLimits{IdleGrace: grace, MaxDuration: time.Minute}, nil, time.Minute - time.Millisecond, 0, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
			now := start
			r := newRunOnce(tc.limits, func() time.Time { return now })
			for _, e := range tc.events {
				now = start.Add(e.at)
				if e.recv >= 0 {
					r.received(start.Add(e.began), e.recv, e.err)
				} else {
					o := worker.Outcome{Result: e.out, Err: errors.New("403 Forbidden"), Started: start.Add(e.began)}
					if e.visible > 0 {
						o.VisibleAt = start.Add(e.visible)
					}
					r.settled(o)
				}
			}
			now = start.Add(tc.at)
			got, ok := r.end(tc.idle)
			if ok != (tc.want != "") || got.reason != tc.want || got.code != tc.code {
				t.Errorf("end = %+v %v, want %q code %d", got, ok, tc.want, tc.code)
			}
		})
	}
}

// TestRunOnceAdmit: a receive never takes more than --max-messages leaves,
// so that a bounded run takes exactly N and leaves the rest visible.
func TestRunOnceAdmit(t *testing.T) {
	r := newRunOnce(runLimits{IdleGrace: time.Second, MaxMessages: 40}, nil)
	var got []int
	for range 4 {
		n := r.admit(32)
		got = append(got, n)
		r.received(time.Now(), n, nil)
	}
	if want := []int{32, 8, 0, 0}; !slices.Equal(got, want) || r.messages() != 40 {
		t.Errorf("admitted %v (%d), want %v (40)", got, r.messages(), want)
	}
	if n := newRunOnce(runLimits{}, nil).admit(32); n != 32 {
		t.Errorf("unbounded admit = %d", n)
	}
}

// TestRunLimitsPollCap: with --until-empty the empty queue is polled at
// least four times in the grace.
func TestRunLimitsPollCap(t *testing.T) {
	for _, tc := range []struct {
		l             runLimits
		maxPoll, want time.Duration
	}{
		{runLimits{}, time.Minute, time.Minute},
		{runLimits{UntilEmpty: true, IdleGrace: 30 * time.Second}, time.Minute, 7500 * time.Millisecond},
		{runLimits{UntilEmpty: true, IdleGrace: 30 * time.Second}, time.Second, time.Second},
		{runLimits{UntilEmpty: true, IdleGrace: time.Second}, time.Minute, 250 * time.Millisecond},
		{runLimits{MaxMessages: 3}, time.Minute, time.Minute},
	} {
		if got := tc.l.pollCap(tc.maxPoll); got != tc.want {
			t.Errorf("%+v pollCap(%v) = %v, want %v", tc.l, tc.maxPoll, got, tc.want)
		}
	}
}
