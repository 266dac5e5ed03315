package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// mapsAnswer builds the error the Maps client returns for a status.
func mapsAnswer(status int, header http.Header) error {
	req, _ := http.NewRequest(http.MethodGet, "https://atlas.microsoft.com/geocode?api-version=2025-01-01", nil)
	if header == nil {
		header = http.Header{}
	}
	body := fmt.Sprintf(`{"error":{"code":"%d %s","message":"m"}}`, status, strings.ReplaceAll(http.StatusText(status), " ", ""))
	return runtime.NewResponseError(&http.Response{
		StatusCode: status, Header: header, Request: req,
		Body: io.NopCloser(strings.NewReader(body)),
	})
}

// TestDecideFromMapsErrors runs every kind of Maps failure through the
// classification and the engine's one decision, at the boundaries of the
// dequeue count.
func TestDecideFromMapsErrors(t *testing.T) {
	retryAfter := http.Header{"Retry-After": {"7"}}
	cases := []struct {
		name     string
		err      error
		attempts int64
		outage   bool
		want     worker.Action
	}{
		{"400 rejected", mapsAnswer(400, nil), 1, false, worker.Poison},
		{"404 rejected", mapsAnswer(404, nil), 1, false, worker.Poison},
		{"408 first try", mapsAnswer(408, nil), 1, false, worker.Release},
		{"408 last try", mapsAnswer(408, nil), 5, false, worker.Poison},
		{"429 throttled", mapsAnswer(429, retryAfter), 5, false, worker.Pause},
		{"401 identity refused", mapsAnswer(401, nil), 5, false, worker.Pause},
		{"403 no role", mapsAnswer(403, nil), 1, false, worker.Pause},
		{"500 first try", mapsAnswer(500, nil), 1, false, worker.Release},
		{"503 fourth try", mapsAnswer(503, nil), 4, false, worker.Release},
		{"503 fifth try", mapsAnswer(503, nil), 5, false, worker.Poison},
		{"503 during an outage", mapsAnswer(503, nil), 5, true, worker.Pause},
		{"400 during an outage", mapsAnswer(400, nil), 1, true, worker.Poison},
		{"token endpoint down", &maps.TokenError{Err: errors.New("connection refused")}, 5, false, worker.Pause},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), 1, false, worker.Release},
		{"timeout", context.DeadlineExceeded, 5, false, worker.Poison},
		{"invalid request", worker.Invalidf("OutOfRange", "lat"), 1, false, worker.Poison},
		{"unmarked error", errors.New("boom"), 2, false, worker.Release},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := worker.Decide(classify(c.err), c.attempts, 5, c.outage); got != c.want {
				t.Errorf("Decide = %v, want %v (class %v)", got, c.want, worker.ClassOf(classify(c.err)))
			}
		})
	}
	var we *worker.Error
	if !errors.As(classify(mapsAnswer(429, retryAfter)), &we) || we.RetryAfter.Seconds() != 7 {
		t.Errorf("429 Retry-After not carried: %+v", we)
	}
}
