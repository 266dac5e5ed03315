package maps

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// TokenError reports that the client could not obtain its credential: the
// Entra ID token (the token endpoint or authority failed) or, for a shared-key
// client, the key (the KeySource failed). No request reached Azure Maps, so
// the fault lies with the environment, not the request.
//
// Err is the credential's own error; it carries no token or key. If the
// request's context ended, errors.Is(err, context.Canceled) (or
// DeadlineExceeded) still reports it through Err.
type TokenError struct {
	Err error
}

// Error implements error.
func (e *TokenError) Error() string {
	if e.Err == nil {
		return "maps: could not obtain a credential for Azure Maps"
	}
	return "maps: could not obtain a credential for Azure Maps: " + e.Err.Error()
}

// Unwrap returns the credential's error.
func (e *TokenError) Unwrap() error { return e.Err }

// NonRetriable tells azcore's retry policy (when a caller enables it) not to
// retry: credentials retry on their own, and the engine decides the rest.
func (*TokenError) NonRetriable() {}

// ItemError is the error of one item of a batch, which Azure Maps reports
// inline while answering the batch as a whole with 200.
type ItemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *ItemError) Error() string {
	if e.Message == "" {
		return "maps: batch item failed: " + e.Code
	}
	return "maps: batch item failed: " + e.Code + ": " + e.Message
}

// newResponseError returns the *azcore.ResponseError for resp. The request
// kept in RawResponse.Request is a copy without the Authorization and
// subscription-key headers, so that no secret travels with the error.
func newResponseError(resp *http.Response) error {
	if req := resp.Request; req != nil {
		clone := req.Clone(req.Context())
		clone.Header.Del("Authorization")
		clone.Header.Del(headerSubscriptionKey)
		clone.Body, clone.GetBody = nil, nil
		resp.Request = clone
	}
	return runtime.NewResponseError(resp)
}

// RetryAfter returns how long Azure Maps asked the caller to wait before
// trying again, read from the response headers of err's *azcore.ResponseError:
// retry-after-ms or x-ms-retry-after-ms (milliseconds), else Retry-After
// (seconds or an HTTP date). It returns 0 if err carries no such header.
func RetryAfter(err error) time.Duration {
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		return 0
	}
	h := re.RawResponse.Header
	for _, name := range [...]string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := h.Get(name); v != "" {
			if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
				return time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
