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
	Text         string // as stored in the queue, possibly with the engine's mark
	DequeueCount int64
	InsertedAt   time.Time
	// ExpiresAt is when the queue deletes the message; zero if never.
	ExpiresAt time.Time
}

// The engine's mark, written before the producer's text by the same
// UpdateMessage call that releases a message for a fault that was not the
// message's own (an outage, a stop), so that the delivery does not count
// towards poisoning and costs no extra request:
//
//	!mapsworker:<message id>;env=<n>[;name=<id>]\n<original text>
//
// The mark names the message it belongs to. A producer cannot know the id the
// queue will give its message, so text that merely looks like a mark is the
// producer's own and passes untouched: it cannot be forged to make a message
// immortal, and the poison envelope keeps the text exactly as sent. name
// carries the result name of a request without an id across a replay (which
// gives the message a new id).
const markPrefix = "!mapsworker:"

// legacyMark is the unbound mark of earlier versions ("!mapsworker:env=N\n").
// Text carrying it is decoded without it, so messages released by an
// earlier version still work, but its count is not trusted and the text
// is kept whole for the envelope.
const legacyMark = "!mapsworker:env="

// mark is what the engine's mark says about a message.
type mark struct {
	env  int64  // deliveries that ended for a fault not the message's own
	name string // the result name's id for a request without one, or ""
}

// splitMark returns the producer's original text and the engine's mark on
// the text of message id. Text whose mark names another message, or that
// only looks like a mark, is all original.
func splitMark(text, id string) (original string, mk mark) {
	rest, ok := strings.CutPrefix(text, markPrefix)
	if !ok || id == "" {
		return text, mark{}
	}
	head, orig, ok := strings.Cut(rest, "\n")
	if !ok {
		return text, mark{}
	}
	fields := strings.Split(head, ";")
	if len(fields) < 2 || fields[0] != id {
		return text, mark{}
	}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "env":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return text, mark{}
			}
			mk.env = n
		case "name":
			mk.name = v
		default:
			return text, mark{}
		}
	}
	return orig, mk
}

// withMark returns original marked for message id.
func withMark(original, id string, mk mark) string {
	var b strings.Builder
	b.Grow(len(markPrefix) + len(id) + 32 + len(mk.name) + len(original))
	b.WriteString(markPrefix)
	b.WriteString(id)
	b.WriteString(";env=")
	b.WriteString(strconv.FormatInt(mk.env, 10))
	if mk.name != "" {
		b.WriteString(";name=")
		b.WriteString(mk.name)
	}
	b.WriteByte('\n')
	b.WriteString(original)
	return b.String()
}

// MarkForReplay returns original marked for the message id that a replay
// gave it, keeping name as the result name of a request that has no id of
// its own. The replay sends the text invisible, then updates it to this.
func MarkForReplay(original, id, name string) string {
	return withMark(original, id, mark{name: name})
}

// Original returns the text the producer sent.
func (m *Message) Original() string {
	orig, _ := splitMark(m.Text, m.ID)
	return orig
}

func (m *Message) mark() mark {
	_, mk := splitMark(m.Text, m.ID)
	return mk
}

// body is the text to decode: the original, without a legacy mark.
func (m *Message) body() string {
	orig := m.Original()
	if rest, ok := strings.CutPrefix(orig, legacyMark); ok {
		if _, after, ok := strings.Cut(rest, "\n"); ok {
			return after
		}
	}
	return orig
}

// DecodeBody turns message text into the JSON body: raw JSON as it is, or
// base64-encoded JSON (standard or URL-safe, padded or not) as Azure
// Functions and other producers write it.
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
	body, ok := decodeBase64(trimmed)
	if !ok {
		return nil, Invalidf("NotJSONOrBase64", "message text is neither JSON nor base64-encoded JSON")
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

// decodeBase64 decodes s in whichever base64 alphabet it is written.
func decodeBase64(s string) ([]byte, bool) {
	unpadded := strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(unpadded, "-_") {
		enc = base64.RawURLEncoding
	}
	body, err := enc.DecodeString(unpadded)
	return body, err == nil
}
