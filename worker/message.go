package worker

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one delivery of a queue message.
type Message struct {
	ID           string
	PopReceipt   string
	Text         string // as stored in the queue, possibly with the engine's release mark
	DequeueCount int64
	InsertedAt   time.Time
}

// releaseMark prefixes the text of a message the engine released because of
// an environment fault (Maps 401/403/429, token endpoint or storage down). The
// queue counts every delivery; without the mark, an outage longer than
// MaxDequeueCount release cycles would poison valid messages. The mark is
// written by the UpdateMessage call that releases the message anyway, so it
// costs no extra request, and it keeps the message id, which may name the
// result. Neither JSON nor base64 can start with '!', so it cannot be confused
// with a producer's text.
const releaseMark = "!mapsworker:env="

// splitMark returns the producer's original text and how many deliveries
// ended in an environment release.
func splitMark(text string) (original string, envReleases int64) {
	rest, ok := strings.CutPrefix(text, releaseMark)
	if !ok {
		return text, 0
	}
	num, orig, ok := strings.Cut(rest, "\n")
	if !ok {
		return text, 0
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return text, 0
	}
	return orig, n
}

// withMark returns original marked with n environment releases.
func withMark(original string, n int64) string {
	return releaseMark + strconv.FormatInt(n, 10) + "\n" + original
}

// attempts is the number of deliveries that count towards poisoning: those
// that did not end in an environment release.
func (m *Message) attempts() int64 {
	_, env := splitMark(m.Text)
	return max(m.DequeueCount-env, 1)
}

// Original returns the text the producer sent.
func (m *Message) Original() string {
	orig, _ := splitMark(m.Text)
	return orig
}

// DecodeBody turns message text into the JSON body: raw JSON as it is, or
// base64-encoded JSON as Azure Functions producers write it by default.
func DecodeBody(text string) ([]byte, error) {
	if !utf8.ValidString(text) {
		return nil, Invalidf("NotUTF8", "message text is not valid UTF-8")
	}
	// A byte-order mark is not JSON, but some producers write one.
	trimmed := strings.TrimSpace(strings.TrimPrefix(text, "\ufeff"))
	if trimmed == "" {
		return nil, Invalidf("Empty", "message text is empty")
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		return []byte(trimmed), nil
	}
	body, err := base64.StdEncoding.DecodeString(trimmed)
	if err != nil {
		// Some producers use URL-safe or unpadded base64.
		var err2 error
		body, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(trimmed, "="))
		if err2 != nil {
			return nil, Invalidf("NotJSONOrBase64", "message text is neither JSON nor base64-encoded JSON")
		}
	}
	if !utf8.Valid(body) {
		return nil, Invalidf("NotUTF8", "base64-decoded message is not valid UTF-8")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, Invalidf("NotJSONObject", "base64-decoded message is not a JSON object")
	}
	return body, nil
}
