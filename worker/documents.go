package worker

import (
	"encoding/json"
	"time"
)

// Result is the document written to <container>/<kind>/<id>.json.
type Result struct {
	ID           string          `json:"id"`
	Kind         string          `json:"kind"`
	Status       string          `json:"status"` // StatusSucceeded or StatusFailed
	CompletedAt  time.Time       `json:"completedAt"`
	DequeueCount int64           `json:"dequeueCount"`
	Request      json.RawMessage `json:"request"`
	Summary      any             `json:"summary,omitempty"`
	Response     json.RawMessage `json:"response,omitempty"`
	Error        *ErrorInfo      `json:"error,omitempty"`
}

// Result statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// ErrorInfo says why a message failed, in results and poison envelopes.
type ErrorInfo struct {
	Class   string `json:"class"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// Envelope is a message in the poison queue: the original text and why it
// was poisoned.
type Envelope struct {
	Message      string    `json:"message"`
	MessageID    string    `json:"messageId"`
	InsertedAt   time.Time `json:"insertedAt"`
	DequeueCount int64     `json:"dequeueCount"`
	PoisonedAt   time.Time `json:"poisonedAt"`
	Error        ErrorInfo `json:"error"`
}

// ResultName is the blob name of a result: <kind>/<id>.json.
func ResultName(kind, id string) string { return kind + "/" + id + ".json" }

// errorInfo describes err for a result or envelope. Handlers build their
// errors' text without secrets; the length cap keeps a runaway message from
// filling a 64 KiB queue message.
func errorInfo(err error) ErrorInfo {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	return ErrorInfo{Class: ClassOf(err).String(), Code: CodeOf(err), Message: msg}
}
