package worker

import (
	"bytes"
	"encoding/json"
	"strings"
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
	// Message is the original text, exactly as the producer sent it; empty
	// when it is in MessageBlob.
	Message string `json:"message"`
	// MessageBlob, when the envelope would not fit in a queue message with
	// the text inline, names the blob in the results container that holds
	// the original text.
	MessageBlob string `json:"messageBlob,omitempty"`
	MessageID   string `json:"messageId"`
	// Name, when set, is the id that names the result of a request that
	// has none of its own (the id of the message it was first sent as).
	Name         string    `json:"name,omitempty"`
	InsertedAt   time.Time `json:"insertedAt"`
	ExpiresAt    time.Time `json:"expiresAt,omitzero"`
	DequeueCount int64     `json:"dequeueCount"`
	PoisonedAt   time.Time `json:"poisonedAt"`
	Error        ErrorInfo `json:"error"`
}

// encode returns the envelope as compact JSON. HTML characters are not
// escaped: "<" stays one byte, not six, so that more text fits inline.
func (env *Envelope) encode() string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(env) // strings and times only: cannot fail
	return strings.TrimSuffix(b.String(), "\n")
}

// PoisonTextName is the blob that holds the original text of a poisoned
// message whose envelope would not fit in a queue message.
func PoisonTextName(messageID string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-':
			return r
		}
		return '_'
	}, messageID)
	return poisonTextPrefix + safe + ".txt"
}

// poisonTextPrefix is where original texts of poisoned messages are kept in
// the results container; no kind of request is named so.
const poisonTextPrefix = "poison-text/"

// ResultName is the blob name of a result: <kind>/<id>.json.
func ResultName(kind, id string) string { return kind + "/" + id + ".json" }

// IsResult reports whether a blob of the results container is a result,
// not one of the engine's own: status documents, spilled poison texts.
func IsResult(name string) bool {
	for _, p := range [...]string{statusPrefix, poisonTextPrefix, "mapsworker-probe/", checkPrefix} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return strings.HasSuffix(name, ".json")
}

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
