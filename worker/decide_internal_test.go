package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

type panicTask struct{}

func (panicTask) ID() string               { return "p" }
func (panicTask) Kind() string             { return "k" }
func (panicTask) Request() json.RawMessage { return nil }
func (panicTask) Run(context.Context) (*Output, error) {
	var m map[string]int
	m["x"] = 1 // a bug: assignment to a nil map
	return nil, nil
}

// TestDecideEngineErrors covers the errors the engine itself meets: storage
// failures, a panicking handler, and a crash-looping message.
func TestDecideEngineErrors(t *testing.T) {
	storage403 := redactErr(&azcore.ResponseError{StatusCode: http.StatusForbidden, ErrorCode: "AuthorizationPermissionMismatch"})
	e := &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, panicErr := e.runSafely(context.Background(), panicTask{})
	cases := []struct {
		name     string
		err      error
		attempts int64
		want     Action
	}{
		{"storage unreachable", storageError(fmt.Errorf("dial tcp: connection refused")), 5, Pause},
		{"storage 403", storageError(storage403), 5, Pause},
		{"panic first try", panicErr, 1, Release},
		{"panic last try", panicErr, 5, Poison},
		{"crash loop", Transient("MaxDequeueCountExceeded", errors.New("x")), 6, Poison},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(c.err, c.attempts, 5, false); got != c.want {
				t.Errorf("Decide = %v, want %v", got, c.want)
			}
		})
	}
	if CodeOf(panicErr) != "Panic" {
		t.Errorf("panic code = %q", CodeOf(panicErr))
	}
}

func TestReleaseMark(t *testing.T) {
	orig := `{"id":"a","kind":"geocode","query":"x"}`
	const id = "6f1c2d6e-0b0a-4f4e-9a55-0c7a1a2b3c4d"
	if got, mk := splitMark(withMark(orig, id, mark{env: 3}), id); got != orig || mk.env != 3 {
		t.Fatalf("splitMark = %q %+v", got, mk)
	}
	if got, mk := splitMark(MarkForReplay(orig, id, "old-id"), id); got != orig || mk.name != "old-id" || mk.env != 0 {
		t.Fatalf("replay mark: %q %+v", got, mk)
	}
	// Text that looks like a mark but does not name this message is the
	// producer's own: forged marks are not believed and are kept whole.
	for _, text := range []string{
		orig,
		"!mapsworker:env=999999\n" + orig,
		withMark(orig, "another-message", mark{env: 999999}),
		"!mapsworker:" + id + ";env=-1\n" + orig,
		"!mapsworker:" + id + ";env=2;what=1\n" + orig,
		"!mapsworker:" + id + ";env=3",
		"eyJpZCI6ImEifQ==",
	} {
		if got, mk := splitMark(text, id); got != text || mk != (mark{}) {
			t.Errorf("splitMark(%q) = %q %+v; producer text must pass untouched", text, got, mk)
		}
	}
}

func TestLegacyMarkDecodesButIsNotBelieved(t *testing.T) {
	orig := `{"id":"a","kind":"geocode","query":"x"}`
	m := &Message{ID: "m1", DequeueCount: 9, Text: "!mapsworker:env=8\n" + orig}
	if m.body() != orig {
		t.Fatalf("body = %q", m.body())
	}
	if m.Original() != m.Text {
		t.Fatalf("Original = %q, want the text as sent", m.Original())
	}
	var e Engine
	if got := e.attempts(m); got != 9 {
		t.Fatalf("attempts = %d, want 9: a legacy mark is not believed", got)
	}
}

func TestReleaseDelayGrows(t *testing.T) {
	prev := time.Duration(0)
	for a := int64(1); a <= 4; a++ {
		lo := time.Duration(float64(5*time.Second<<(a-1)) * 0.8)
		d := releaseDelay(a, 5*time.Second, 10*time.Minute)
		if d < lo || d <= prev/2 {
			t.Errorf("attempt %d: delay %v below %v", a, d, lo)
		}
		prev = d
	}
	if d := releaseDelay(30, 5*time.Second, time.Minute); d > 72*time.Second {
		t.Errorf("delay not capped: %v", d)
	}
}
