package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// responseErr returns the *azcore.ResponseError azcore makes of an answer.
func responseErr(t testing.TB, status int, header http.Header, body string) error {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json; charset=utf-8")
	req, err := http.NewRequest(http.MethodGet, "https://atlas.microsoft.com/geocode?api-version=2025-01-01&query=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = runtime.NewResponseError(&http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     header,
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    req,
	})
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("NewResponseError returned %T", err)
	}
	return err
}

// recordedBody returns the response body of a recording in testdata.
func recordedBody(t testing.TB, name string) string {
	t.Helper()
	var rec struct {
		Entries []struct {
			ResponseBody json.RawMessage
		}
	}
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || len(rec.Entries) == 0 {
		t.Fatalf("%s: %v", name, err)
	}
	return string(rec.Entries[0].ResponseBody)
}

func TestClassify(t *testing.T) {
	retry7 := http.Header{"Retry-After": {"7"}}
	tests := []struct {
		name       string
		err        error
		class      worker.Class
		code       string
		retryAfter time.Duration
		message    string // the classified message contains it
	}{
		{name: "400 recorded", err: responseErr(t, 400, nil, recordedBody(t, "SearchAddress_v1_400_recording.json")),
			class: worker.ClassRejected, code: "400 BadRequest", message: "Azure Maps answered 400 (400 BadRequest): query is missing or empty"},
		{name: "400 route recorded", err: responseErr(t, 400, nil, recordedBody(t, "RouteDirectionsBatchSync_v1_400_recording.json")),
			class: worker.ClassRejected, code: "400 BadRequest", message: "Request body is invalid or empty"},
		{name: "400 with x-ms-error-code", err: responseErr(t, 400, http.Header{"X-Ms-Error-Code": {"InvalidRequest"}, "X-Ms-Request-Id": {"abc-123"}}, `{"error":{"code":"400 BadRequest","message":"bad"}}`),
			class: worker.ClassRejected, code: "InvalidRequest", message: "bad [x-ms-request-id abc-123]"},
		{name: "400 without body", err: responseErr(t, 400, nil, ""),
			class: worker.ClassRejected, code: "400 BadRequest", message: "Azure Maps answered 400 (400 BadRequest)"},
		{name: "404", err: responseErr(t, 404, nil, ""),
			class: worker.ClassRejected, code: "404 NotFound"},
		{name: "422", err: responseErr(t, 422, nil, `{"error":{"code":"UnprocessableEntity","message":"no route"}}`),
			class: worker.ClassRejected, code: "UnprocessableEntity", message: "no route"},
		{name: "401", err: responseErr(t, 401, http.Header{"Www-Authenticate": {`Bearer realm="x"`}}, `{"error":{"code":"Unauthorized","message":"Access denied, please inspect WWW-Authenticate header."}}`),
			class: worker.ClassEnvironment, code: "Unauthorized", message: "Access denied"},
		{name: "403", err: responseErr(t, 403, nil, `{"error":{"code":"403 Forbidden","message":"Permission, capacity, or authentication issues."}}`),
			class: worker.ClassEnvironment, code: "403 Forbidden", message: "Permission"},
		{name: "408", err: responseErr(t, 408, nil, ""),
			class: worker.ClassTransient, code: "408 RequestTimeout"},
		{name: "429 with Retry-After 7", err: responseErr(t, 429, retry7, `{"error":{"code":"429 TooManyRequests","message":"Too many requests"}}`),
			class: worker.ClassEnvironment, code: "429 TooManyRequests", retryAfter: 7 * time.Second},
		{name: "429 without Retry-After", err: responseErr(t, 429, nil, ""),
			class: worker.ClassEnvironment, code: "429 TooManyRequests"},
		{name: "500", err: responseErr(t, 500, nil, `{"error":{"code":"500 InternalServerError","message":"oops"}}`),
			class: worker.ClassTransient, code: "500 InternalServerError", message: "oops"},
		{name: "503", err: responseErr(t, 503, retry7, "<html>Service Unavailable</html>"),
			class: worker.ClassTransient, code: "503 ServiceUnavailable"},
		{name: "418, unexpected", err: responseErr(t, 418, nil, ""),
			class: worker.ClassTransient, code: "418 I'mateapot"},
		{name: "wrapped 400", err: fmt.Errorf("geocode: %w", responseErr(t, 400, nil, "")),
			class: worker.ClassRejected, code: "400 BadRequest"},
		{name: "token error", err: &maps.TokenError{Err: errors.New("ManagedIdentityCredential: connection refused\nsee https://aka.ms/troubleshoot")},
			class: worker.ClassEnvironment, code: "TokenUnavailable", message: "could not get a token: ManagedIdentityCredential: connection refused"},
		{name: "wrapped token error", err: fmt.Errorf("route: %w", &maps.TokenError{Err: errors.New("key vault: 403")}),
			class: worker.ClassEnvironment, code: "TokenUnavailable"},
		{name: "token request canceled", err: &maps.TokenError{Err: context.Canceled},
			class: worker.ClassTransient, code: "Canceled"},
		{name: "canceled", err: fmt.Errorf("geocode: %w", context.Canceled),
			class: worker.ClassTransient, code: "Canceled"},
		{name: "deadline", err: context.DeadlineExceeded,
			class: worker.ClassTransient, code: "Timeout"},
		{name: "client timeout", err: &url.Error{Op: "Get", URL: "https://atlas.microsoft.com/geocode?query=x", Err: context.DeadlineExceeded},
			class: worker.ClassTransient, code: "Timeout", message: "Azure Maps call timed out: Get: context deadline exceeded"},
		{name: "connection refused", err: &url.Error{Op: "Get", URL: "https://atlas.microsoft.com/geocode?query=1+Secret+Lane", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}},
			class: worker.ClassTransient, code: "NetworkError", message: "Azure Maps unreachable: Get: dial tcp: connection refused"},
		{name: "unexpected EOF", err: fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF),
			class: worker.ClassTransient, code: "NetworkError"},
		{name: "plain error", err: errors.New("boom"),
			class: worker.ClassTransient, code: "MapsCallFailed", message: "boom"},
		{name: "already classified", err: worker.Rejected("Custom", errors.New("x")),
			class: worker.ClassRejected, code: "Custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.err)
			if err == nil {
				t.Fatal("classify returned nil")
			}
			if c := worker.ClassOf(err); c != tt.class {
				t.Errorf("class %v, want %v (%v)", c, tt.class, err)
			}
			if c := worker.CodeOf(err); c != tt.code {
				t.Errorf("code %q, want %q", c, tt.code)
			}
			var we *worker.Error
			if errors.As(err, &we) && we.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter %v, want %v", we.RetryAfter, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("message %q does not contain %q", err, tt.message)
			}
			if strings.Contains(err.Error(), "\n") || len(err.Error()) > 400 {
				t.Errorf("message is not one short line: %q", err)
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
	if err := classify(fmt.Errorf("x: %w", context.Canceled)); !errors.Is(err, context.Canceled) {
		t.Errorf("classify lost context.Canceled: %v", err)
	}
}

// No secret of the request (its credential, its URL) nor anything of the
// answer but its error message reaches the classified error.
func TestClassifyDoesNotLeak(t *testing.T) {
	const secret = "SECRET-7f3a"
	req, err := http.NewRequest(http.MethodPost, "https://atlas.microsoft.com/route/directions?api-version=2025-01-01&subscription-key=key-"+secret,
		strings.NewReader(`{"type":"FeatureCollection","token":"body-`+secret+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer token-"+secret)
	req.Header.Set("subscription-key", "header-"+secret)
	long := strings.Repeat("very long message ", 100)
	re := runtime.NewResponseError(&http.Response{
		StatusCode: 400,
		Status:     "400 Bad Request",
		Header: http.Header{
			"Content-Type":     {"application/json"},
			"Set-Cookie":       {"session=cookie-" + secret},
			"X-Ms-Request-Id":  {"req-42"},
			"Www-Authenticate": {"Bearer error=" + secret},
		},
		Body:    io.NopCloser(strings.NewReader(`{"error":{"code":"400 BadRequest","message":"` + long + `","innererror":{"echo":"inner-` + secret + `"}},"debug":"debug-` + secret + `"}`)),
		Request: req,
	})
	// The test means something only if azcore's own message tells more.
	if !strings.Contains(re.Error(), secret) {
		t.Fatalf("ResponseError.Error() does not contain the secret; the test is void")
	}

	got := classify(fmt.Errorf("route: %w", re))
	for e := got; e != nil; e = errors.Unwrap(e) {
		for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			if strings.Contains(text, secret) {
				t.Errorf("%T leaks the secret: %s", e, text)
			}
		}
	}
	var back *azcore.ResponseError
	if errors.As(got, &back) {
		t.Error("the classified error still carries the ResponseError, and with it the request")
	}
	if !strings.Contains(got.Error(), "req-42") || len(got.Error()) > 400 {
		t.Errorf("message %q: want the request id, cut short", got)
	}

	// Nor does the URL of a failed connection, which holds the query.
	ue := &url.Error{Op: "Get", URL: "https://atlas.microsoft.com/geocode?query=" + secret, Err: errors.New("connection reset by peer")}
	if got := classify(ue); strings.Contains(got.Error(), secret) {
		t.Errorf("network error leaks the URL: %v", got)
	}
}
