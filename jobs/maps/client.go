package maps

import (
	"context"
	"errors"
	"fmt"
	"mapsworker/jobs/maps/catalog"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

const (
	// DefaultEndpoint is the global Azure Maps endpoint. Geography-specific
	// endpoints (https://us.atlas.microsoft.com, https://eu.atlas.microsoft.com)
	// keep data in one geography.
	DefaultEndpoint = "https://atlas.microsoft.com"

	// Scope is the Entra ID scope of Azure Maps tokens, whatever the endpoint's
	// geography.
	Scope = "https://atlas.microsoft.com/.default"

	// APIVersion is the version of the Geocoding and Route Directions APIs the
	// client speaks. The request and response shapes in this package are those
	// of this version.
	APIVersion = "2025-01-01"
)

const (
	moduleName    = "mapsworker/jobs/maps"
	moduleVersion = "v0.1.0"

	headerClientID        = "x-ms-client-id"
	headerSubscriptionKey = "subscription-key"
	headerRequestID       = "x-ms-request-id"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	azcore.ClientOptions

	// ClientID is the Azure Maps account's Client ID (a GUID shown on the
	// account's Authentication page, not an application id). Entra ID
	// authentication needs it on every request, as the x-ms-client-id header,
	// because a token names a principal, not a Maps account. NewClient requires
	// it; NewClientWithKey sends it when set.
	ClientID string

	// RateLimits caps the requests per second sent to each API, keyed by
	// APIGeocode, APIReverseGeocode, APIRoute, APIGeocodeBatch and
	// APIRouteBatch. An API not named keeps its DefaultRateLimits figure (the
	// Gen2 per-account limits); a value < 0 removes its limit. As the limits
	// are per Maps account, instances sharing it take shares (SetRateShare).
	// On a 429 the client halves the API's rate, waits out Retry-After and
	// regains a tenth of the limit per second.
	RateLimits map[string]int
	// DisableRateLimits sends requests as fast as they come.
	DisableRateLimits bool
}

// Client calls the Azure Maps Geocoding and Route Directions APIs. Its methods
// are safe for concurrent use.
//
// A Client does not retry by default: the worker's engine decides once what
// is retried (see NewClient). Every answer other than 2xx is returned as an
// *azcore.ResponseError; a failure to obtain a credential as a *TokenError.
type Client struct {
	pl     runtime.Pipeline
	limits *rateLimitPolicy // nil without client-side rate limits

	endpoint string            // the account's, without a trailing slash
	urls     map[string]string // of each API of catalog.APIs, by name
}

// url returns the URL of the named API of catalog.APIs.
func (c *Client) url(api string) string {
	u, ok := c.urls[api]
	if !ok {
		panic("maps: no API " + api + " in catalog.APIs")
	}
	return u
}

// NewClient returns a Client that authenticates with Entra ID: each request
// carries a bearer token for Scope from cred and the account's Client ID.
// An empty endpoint means DefaultEndpoint; opts.ClientID is required.
//
// The endpoint must be https. azcore's bearer token policy refuses to send a
// token over plain HTTP anyway; NewClient says so at construction instead of
// at the first request. Local tests use the mapstest emulator, which serves
// TLS with its own CA.
//
// Retries: unless opts.Retry.MaxRetries is set, azcore's retry policy is
// disabled (MaxRetries -1). The worker's engine already retries transient
// Maps errors with its own backoff, and azcore's 3 retries under each of its
// attempts would multiply the calls (and the wait) by four.
func NewClient(endpoint string, cred azcore.TokenCredential, opts *ClientOptions) (*Client, error) {
	if cred == nil {
		return nil, errors.New("maps: NewClient needs a credential")
	}
	if opts == nil || opts.ClientID == "" {
		return nil, errors.New("maps: ClientOptions.ClientID (the Azure Maps account's Client ID, AZURE_MAPS_CLIENT_ID) is required for Entra ID authentication")
	}
	ep, err := checkEndpoint(endpoint, "bearer tokens")
	if err != nil {
		return nil, err
	}
	perRetry := []policy.Policy{
		clientIDPolicy(opts.ClientID),
		runtime.NewBearerTokenPolicy(tokenCredential{cred}, []string{Scope}, nil),
	}
	return newClient(ep, perRetry, opts), nil
}

// NewClientWithKey returns a Client that authenticates with the account's
// shared key, read from keys for each request and sent as the
// subscription-key header. When Maps answers 401 or 403, the key may have been
// rotated: the client asks keys for the current key (and, if that is still
// the key it sent, calls Refresh) and sends the request once more with the
// new key. An empty endpoint means DefaultEndpoint; opts may be nil.
//
// The endpoint must be https: a shared key is a long-lived secret and is
// never sent in clear text. The key never appears in an error or a log.
//
// Retries are disabled by default, as for NewClient.
func NewClientWithKey(endpoint string, keys KeySource, opts *ClientOptions) (*Client, error) {
	if keys == nil {
		return nil, errors.New("maps: NewClientWithKey needs a KeySource")
	}
	ep, err := checkEndpoint(endpoint, "shared keys")
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ClientOptions{}
	}
	var perRetry []policy.Policy
	if opts.ClientID != "" {
		perRetry = append(perRetry, clientIDPolicy(opts.ClientID))
	}
	perRetry = append(perRetry, &keyPolicy{keys: keys})
	return newClient(ep, perRetry, opts), nil
}

func newClient(endpoint string, perRetry []policy.Policy, opts *ClientOptions) *Client {
	co := opts.ClientOptions // a copy: the caller's options stay as they were
	var limits *rateLimitPolicy
	if !opts.DisableRateLimits {
		limits = newRateLimitPolicy(opts.RateLimits)
		perRetry = append([]policy.Policy{limits}, perRetry...)
	}
	if co.Retry.MaxRetries == 0 {
		// The engine retries with go-retry; see NewClient.
		co.Retry.MaxRetries = -1
	}
	co.Transport = withoutRedirects(co.Transport)
	// Secrets are never logged, even if a caller allows their headers.
	co.Logging.AllowedHeaders = withoutSecretHeaders(co.Logging.AllowedHeaders)
	pl := runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{
		// The query text and coordinates are the user's data: logged redacted.
		AllowedQueryParameters: []string{"api-version", "top", "view", "resultTypes"},
		AllowedHeaders:         []string{headerClientID},
		PerRetry:               perRetry,
	}, &co)
	urls := make(map[string]string, len(catalog.APIs))
	for _, a := range catalog.APIs {
		urls[a.Name] = endpoint + a.Path
	}
	return &Client{
		pl:       pl,
		limits:   limits,
		endpoint: endpoint,
		urls:     urls,
	}
}

// SetRateShare divides the client-side rate limits, which are the Maps
// account's, by the n instances that share the account now. It is safe to
// call at any time; without rate limits it does nothing.
func (c *Client) SetRateShare(n int) {
	if c.limits != nil {
		c.limits.share(n)
	}
}

// withoutRedirects returns a transport that never follows a redirect: Azure
// Maps does not redirect, and Go's client would carry the subscription-key
// header to any host, and a token over plain http to the same host. A
// caller's *http.Client is copied with redirects off; nil gets a client of
// its own.
func withoutRedirects(t policy.Transporter) policy.Transporter {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	switch c := t.(type) {
	case nil:
		return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), CheckRedirect: noRedirect}
	case *http.Client:
		cc := *c
		cc.CheckRedirect = noRedirect
		return &cc
	}
	return t
}

// checkEndpoint returns endpoint without a trailing slash, or an error if it
// is not an absolute https URL. what names the secret that https protects.
func checkEndpoint(endpoint, what string) (string, error) {
	if endpoint == "" {
		return DefaultEndpoint, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("maps: endpoint %q is not an absolute URL", endpoint)
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return "", fmt.Errorf("maps: endpoint %q is not https: %s are only sent over TLS "+
			"(azcore's bearer token policy refuses plain-HTTP endpoints); "+
			"for local runs use the mapstest emulator's https URL and trust its CA (SSL_CERT_FILE)", endpoint, what)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("maps: endpoint %q must be a base URL without user info, query or fragment", u.Redacted())
	}
	return strings.TrimRight(endpoint, "/"), nil
}

func withoutSecretHeaders(h []string) []string {
	var out []string
	for _, name := range h {
		switch strings.ToLower(name) {
		case "authorization", headerSubscriptionKey:
		default:
			out = append(out, name)
		}
	}
	return out
}

// clientIDPolicy sets x-ms-client-id, which Entra ID authentication needs on
// every request to name the Maps account the token is used for.
type clientIDPolicy string

// Do implements policy.Policy.
func (p clientIDPolicy) Do(req *policy.Request) (*http.Response, error) {
	req.Raw().Header.Set(headerClientID, string(p))
	return req.Next()
}

// tokenCredential marks every failure of the wrapped credential as a
// *TokenError, so that callers can tell "no token" (the environment's fault)
// from an answer of Azure Maps without parsing messages.
type tokenCredential struct {
	cred azcore.TokenCredential
}

// GetToken implements azcore.TokenCredential.
func (c tokenCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tk, err := c.cred.GetToken(ctx, opts)
	if err != nil {
		return azcore.AccessToken{}, &TokenError{Err: err}
	}
	return tk, nil
}
