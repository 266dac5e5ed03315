package worker

import (
	"errors"
	"fmt"
	"time"
)

// Class says whose fault a failure is, and so what the engine does with the
// message. Handlers mark their errors with one of the constructors below; the
// engine's decide function is the one place that turns a class into an action.
type Class int

const (
	// ClassTransient is a passing fault of the request itself (5xx, 408, a
	// timeout, a reset): retried in process, then released with a growing
	// delay, and poisoned after the maximum dequeue count. Unmarked errors
	// are transient.
	ClassTransient Class = iota
	// ClassInvalid is a request that can never succeed: poisoned at once.
	ClassInvalid
	// ClassRejected is a request the downstream refused as bad (a 400):
	// poisoned at once.
	ClassRejected
	// ClassEnvironment is a fault of the surroundings, not the message
	// (401/403, 429, token endpoint or storage down): the message is
	// released untouched and all dequeuing slows until the cause clears.
	ClassEnvironment
	// ClassExpiring is a message that would reach its time-to-live before it
	// could be worked again: poisoned, so that the queue does not delete it
	// unseen.
	ClassExpiring
)

// String returns the class name used in results and poison envelopes.
func (c Class) String() string {
	switch c {
	case ClassInvalid:
		return "invalid-request"
	case ClassRejected:
		return "maps-rejected"
	case ClassEnvironment:
		return "environment"
	case ClassExpiring:
		return "expiring"
	default:
		return "transient"
	}
}

// Error is an error with its class, a short machine-readable code, and for
// environment faults the wait the peer asked for.
type Error struct {
	Class      Class
	Code       string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Class.String() + ": " + e.Code
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// InvalidRequest marks err as a request that can never succeed.
func InvalidRequest(code string, err error) error {
	return &Error{Class: ClassInvalid, Code: code, Err: err}
}

// Invalidf is InvalidRequest with a formatted message.
func Invalidf(code, format string, args ...any) error {
	return InvalidRequest(code, fmt.Errorf(format, args...))
}

// Rejected marks err as the downstream refusing the request as bad.
func Rejected(code string, err error) error {
	return &Error{Class: ClassRejected, Code: code, Err: err}
}

// Transient marks err as a passing fault of this request.
func Transient(code string, err error) error {
	return &Error{Class: ClassTransient, Code: code, Err: err}
}

// Environmental marks err as a fault of the surroundings; retryAfter, when
// positive, is how long the peer asked callers to wait.
func Environmental(code string, err error, retryAfter time.Duration) error {
	return &Error{Class: ClassEnvironment, Code: code, RetryAfter: retryAfter, Err: err}
}

// ClassOf returns the class err was marked with, or ClassTransient.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassTransient
}

// CodeOf returns the code err was marked with, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
