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
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"mapsworker/internal/redact"
	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// Codes of failures that are not answers of Azure Maps, which bring their own.
const (
	codeTokenUnavailable = "TokenUnavailable"
	codeCanceled         = "Canceled"
	codeTimeout          = "Timeout"
	codeNetwork          = "NetworkError"
	codeMapsCall         = "MapsCallFailed"
)

// maxMessageLen bounds the text of a peer's message copied into an error.
const maxMessageLen = 256

// classify marks an error of the Maps client with the worker class that says
// whose fault it is. It is the only place in jobs that looks at status codes.
//
//	400, 404, 422       the request was refused as bad: rejected
//	401, 403            the identity lacks access: environment
//	429                 over the account's rate: environment, with Retry-After
//	408, 5xx            a passing fault: transient
//	other statuses      transient: retried, and poisoned only after several tries
//	no token            the credential failed: environment (TokenUnavailable)
//	canceled, timeout,
//	network errors      transient
//
// The message of a classified Maps answer is built from the status, the
// error code, the service's own message and x-ms-request-id only; never from
// ResponseError.Error(), which carries the whole response, nor from the
// request, which carries the credential.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var marked *worker.Error
	if errors.As(err, &marked) {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyResponse(re)
	}
	// Canceled comes first: a token request cut short by shutdown is not a
	// broken token endpoint.
	if errors.Is(err, context.Canceled) {
		return worker.Transient(codeCanceled, &cleanError{msg: "Azure Maps call canceled: " + withoutURL(err), err: err})
	}
	var te *maps.TokenError
	if errors.As(err, &te) {
		return worker.Environmental(codeTokenUnavailable, &cleanError{
			msg: "Azure Maps: the credential could not get a token: " + firstLine(te.Err),
			err: err,
		}, 0)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return worker.Transient(codeTimeout, &cleanError{msg: "Azure Maps call timed out: " + withoutURL(err), err: err})
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
		return worker.Transient(codeNetwork, &cleanError{msg: "Azure Maps unreachable: " + withoutURL(err), err: err})
	}
	return worker.Transient(codeMapsCall, err)
}

// classifyResponse classifies a non-2xx answer of Azure Maps.
func classifyResponse(re *azcore.ResponseError) error {
	e := newResponseError(re)
	switch s := re.StatusCode; {
	case s == http.StatusBadRequest, s == http.StatusNotFound, s == http.StatusUnprocessableEntity:
		return worker.Rejected(e.code, e)
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		return worker.Environmental(e.code, e, 0)
	case s == http.StatusTooManyRequests:
		return worker.Environmental(e.code, e, maps.RetryAfter(re))
	default:
		// 408 and 5xx are passing faults. Anything else is unexpected
		// of this API: transient, so that it is tried a few times and
		// then poisoned, rather than poisoned at once or pausing all.
		return worker.Transient(e.code, e)
	}
}

// responseError is a non-2xx answer of Azure Maps, reduced to what is safe
// to keep in results, poison envelopes and logs.
type responseError struct {
	status    int
	code      string // the service's error code, or "<status> <StatusText>"
	message   string // the service's error.message, cut short
	requestID string // x-ms-request-id, for support cases
}

func newResponseError(re *azcore.ResponseError) *responseError {
	e := &responseError{status: re.StatusCode, code: clean(re.ErrorCode, 64)}
	if resp := re.RawResponse; resp != nil {
		e.requestID = clean(resp.Header.Get("x-ms-request-id"), 64)
		// The body is cached by NewResponseError; Payload returns it
		// without reading the network again.
		if body, err := runtime.Payload(resp); err == nil {
			var answer struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal(body, &answer) == nil {
				e.message = clean(answer.Error.Message, maxMessageLen)
				if e.code == "" {
					e.code = clean(answer.Error.Code, 64)
				}
			}
		}
	}
	if e.code == "" {
		// The form Azure Maps uses itself: "400 BadRequest".
		e.code = strconv.Itoa(e.status) + " " + strings.ReplaceAll(http.StatusText(e.status), " ", "")
	}
	return e
}

func (e *responseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Azure Maps answered %d (%s)", e.status, e.code)
	if e.message != "" {
		b.WriteString(": ")
		b.WriteString(e.message)
	}
	b.WriteString(requestIDSuffix(e.requestID))
	return b.String()
}

func requestIDSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " [x-ms-request-id " + id + "]"
}

// cleanError has a message safe to show and the original error underneath,
// for errors.Is and errors.As.
type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }

// withoutURL returns err's message without the request URL that *url.Error
// puts in front of it: the URL of a geocode carries the user's query.
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + firstLine(ue.Err)
	}
	return firstLine(err)
}

// firstLine returns the first line of err's message, cut short and with
// anything that looks like a secret removed (package redact, the one place
// that knows their forms). Errors of azidentity run to many lines of
// troubleshooting advice.
func firstLine(err error) string {
	if err == nil {
		return "unknown error"
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return clean(redact.Text(msg), maxMessageLen)
}

// clean makes a peer's text fit for a one-line message: control characters
// become spaces, and it is cut to at most n bytes on a character boundary.
func clean(s string, n int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
