package worker

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Handler turns the body of a queue message (already base64-decoded where it
// was encoded) into a Task. It knows the kinds of request; the engine knows
// queues. messageID is the queue's id for the message, the default request id.
//
// On a request that can never succeed Decode returns an error marked
// ClassInvalid. It may return a non-nil Task with that error when the id and
// kind were usable, so that the engine can write a failed result under that
// name; such a Task is never run.
type Handler interface {
	Decode(body []byte, messageID string) (Task, error)
}

// Task is one decoded, validated request.
type Task interface {
	// ID names the result: 1-128 of [A-Za-z0-9._-], not starting with '.'.
	ID() string
	// Kind is the kind of request; results live under <kind>/<id>.json.
	Kind() string
	// Request is the request as received, for the result document.
	Request() json.RawMessage
	// Run does the work. Its error is marked with a Class; unmarked errors
	// are transient. Run is called at most once per delivery attempt and
	// must be safe to call again after a transient error.
	Run(ctx context.Context) (*Output, error)
}

// Output is what a successful Task produced.
type Output struct {
	// Summary is the kind's short answer (a position, a distance).
	Summary any
	// Response is the downstream's response body, verbatim.
	Response json.RawMessage
}

// Prober is implemented by a Task that can check its downstream with a
// request of its own: a known-good request of the same kind, to the same
// service. The engine probes when several messages in a row fail, to tell
// an outage (the probe fails too: nothing is counted against the messages)
// from messages that fail on their own (the probe succeeds: they count, and
// are poisoned in the end), and to learn when a paused outage is over.
type Prober interface {
	Probe(ctx context.Context) error
}

var errNoProbe = errors.New("the task has no probe")

// LongRunner is implemented by a Task whose work outlasts Options.TryTimeout
// by design: a job it submits and then polls (an asynchronous route matrix).
// TryTimeout returns the bound of one try of that task. The lease is renewed
// while it runs, as for every task, and a stop cancels it.
type LongRunner interface {
	TryTimeout() time.Duration
}

// tryTimeout is the bound of one try of task: its own when it is a
// LongRunner that says so, else def.
func tryTimeout(task Task, def time.Duration) time.Duration {
	if lr, ok := task.(LongRunner); ok {
		if d := lr.TryTimeout(); d > 0 {
			return d
		}
	}
	return def
}
