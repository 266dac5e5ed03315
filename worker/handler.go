package worker

import (
	"context"
	"encoding/json"
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
