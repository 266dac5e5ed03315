package maps

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mapsworker/jobs/maps/catalog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const (
	testToken    = "eyJ0eXAiOiJKV1QifQ.test-token-value.sig"
	testClientID = "11111111-2222-3333-4444-555555555555"
)

// fakeCred is a TokenCredential with a fixed answer.
type fakeCred struct {
	token string
	err   error
	calls atomic.Int32
}

func (c *fakeCred) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if len(opts.Scopes) != 1 || opts.Scopes[0] != Scope {
		return azcore.AccessToken{}, errors.New("unexpected scopes")
	}
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// fakeKeys is a KeySource whose key changes to next on Refresh.
type fakeKeys struct {
	mu                  sync.Mutex
	cur, next           string
	keyErr, refreshErr  error
	keyCalls, refreshes int
}

func (k *fakeKeys) Key(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keyCalls++
	return k.cur, k.keyErr
}

func (k *fakeKeys) Refresh(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refreshes++
	if k.refreshErr != nil {
		return "", k.refreshErr
	}
	if k.next != "" {
		k.cur = k.next
	}
	return k.cur, nil
}

// recorded is a request as the test server saw it.
type recorded struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte
}

// recorder is a TLS test server that records requests and answers with
// the function given (200 and an empty FeatureCollection by default).
type recorder struct {
	ts     *httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	answer func(w http.ResponseWriter, r recorded)
}

func newRecorder(t *testing.T, answer func(w http.ResponseWriter, r recorded)) *recorder {
	t.Helper()
	rec := &recorder{answer: answer}
	rec.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rr := recorded{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone(), b}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, rr)
		rec.mu.Unlock()
		w.Header().Set("x-ms-request-id", "req-"+r.URL.Path)
		if rec.answer != nil {
			rec.answer(w, rr)
			return
		}
		w.Header().Set("Content-Type", "application/geo+json")
		io.WriteString(w, `{"type":"FeatureCollection","features":[]}`)
	}))
	t.Cleanup(rec.ts.Close)
	return rec
}

func (rec *recorder) requests() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.reqs...)
}

func (rec *recorder) options() *ClientOptions {
	return &ClientOptions{ClientID: testClientID, ClientOptions: azcore.ClientOptions{Transport: rec.ts.Client()}}
}

func (rec *recorder) bearerClient(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(rec.ts.URL, &fakeCred{token: testToken}, rec.options())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientChecks(t *testing.T) {
	cred := &fakeCred{token: testToken}
	keys := &fakeKeys{cur: "k"}
	ok := &ClientOptions{ClientID: testClientID}
	tests := []struct {
		name    string
		new     func() (*Client, error)
		wantErr string
	}{
		{"bearer, default endpoint", func() (*Client, error) { return NewClient("", cred, ok) }, ""},
		{"bearer, regional endpoint", func() (*Client, error) { return NewClient("https://us.atlas.microsoft.com/", cred, ok) }, ""},
		{"bearer over http", func() (*Client, error) { return NewClient("http://127.0.0.1:8080", cred, ok) }, "not https"},
		{"bearer without client id", func() (*Client, error) { return NewClient("", cred, &ClientOptions{}) }, "ClientID"},
		{"bearer without options", func() (*Client, error) { return NewClient("", cred, nil) }, "ClientID"},
		{"bearer without credential", func() (*Client, error) { return NewClient("", nil, ok) }, "credential"},
		{"relative endpoint", func() (*Client, error) { return NewClient("atlas.microsoft.com", cred, ok) }, "absolute"},
		{"endpoint with query", func() (*Client, error) { return NewClient("https://atlas.microsoft.com/?x=1", cred, ok) }, "base URL"},
		{"key, no options", func() (*Client, error) { return NewClientWithKey("", keys, nil) }, ""},
		{"key over http", func() (*Client, error) { return NewClientWithKey("http://localhost", keys, nil) }, "not https"},
		{"key without source", func() (*Client, error) { return NewClientWithKey("", nil, nil) }, "KeySource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.new()
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
	c, _ := NewClient("https://us.atlas.microsoft.com/", cred, ok)
	if c.url(catalog.GeocodeBatch) != "https://us.atlas.microsoft.com/geocode:batch" {
		t.Errorf("batch URL %s", c.url(catalog.GeocodeBatch))
	}
	c, _ = NewClient("", cred, ok)
	if c.url(catalog.Route) != DefaultEndpoint+"/route/directions" {
		t.Errorf("route URL %s", c.url(catalog.Route))
	}
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
}

func TestRequests(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		if strings.HasSuffix(r.path, ":batch") {
			io.WriteString(w, `{"summary":{"successfulRequests":1,"totalRequests":1},"batchItems":[{"optionalId":"0","type":"FeatureCollection","features":[]}]}`)
			return
		}
		io.WriteString(w, `{"type":"FeatureCollection","features":[]}`)
	})
	c := rec.bearerClient(t)
	ctx := context.Background()
	route := RouteRequest{
		Waypoints:     []Position{{Lat: 47.6303, Lon: -122.1387}, {Lat: 47.6101, Lon: -122.2015}},
		TravelMode:    "driving",
		OptimizeRoute: "fastestWithoutTraffic",
		RouteOptions:  RouteOptions{DepartAt: "2026-12-01T08:00:00Z"},
	}
	const routeJSON = `{"type":"FeatureCollection","features":[
		{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.1387,47.6303]},"properties":{"pointIndex":0,"pointType":"waypoint"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.2015,47.6101]},"properties":{"pointIndex":1,"pointType":"waypoint"}}],
		"travelMode":"driving","optimizeRoute":"fastestWithoutTraffic","departAt":"2026-12-01T08:00:00Z"`

	tests := []struct {
		name      string
		call      func() error
		method    string
		path      string
		query     url.Values
		body      string // JSON, compared structurally
		batchSize int
	}{
		{
			name: "geocode free text",
			call: func() error {
				_, err := c.Geocode(ctx, GeocodeQuery{Query: "15127 NE 24th Street, Redmond, WA #2", Top: 3,
					BBox: []float64{-122.5, 47.5, -122, 47.8}, Coordinates: &Position{Lat: 47.6, Lon: -122.1}, View: "Auto"})
				return err
			},
			method: "GET", path: "/geocode",
			query: url.Values{"api-version": {"2025-01-01"}, "query": {"15127 NE 24th Street, Redmond, WA #2"}, "top": {"3"},
				"bbox": {"-122.5,47.5,-122,47.8"}, "coordinates": {"-122.1,47.6"}, "view": {"Auto"}},
		},
		{
			name: "geocode structured",
			call: func() error {
				_, err := c.Geocode(ctx, GeocodeQuery{AddressLine: "15127 NE 24th Street", Locality: "Redmond",
					AdminDistrict: "WA", PostalCode: "98052", CountryRegion: "US"})
				return err
			},
			method: "GET", path: "/geocode",
			query: url.Values{"api-version": {"2025-01-01"}, "addressLine": {"15127 NE 24th Street"}, "locality": {"Redmond"},
				"adminDistrict": {"WA"}, "postalCode": {"98052"}, "countryRegion": {"US"}},
		},
		{
			name: "reverse geocode",
			call: func() error {
				_, err := c.ReverseGeocode(ctx, ReverseGeocodeQuery{Position: Position{Lat: 47.6303, Lon: -122.1387},
					ResultTypes: []string{"Address", "PopulatedPlace"}, View: "US"})
				return err
			},
			method: "GET", path: "/reverseGeocode",
			query: url.Values{"api-version": {"2025-01-01"}, "coordinates": {"-122.1387,47.6303"},
				"resultTypes": {"Address,PopulatedPlace"}, "view": {"US"}},
		},
		{
			name: "reverse geocode, position only",
			call: func() error {
				_, err := c.ReverseGeocode(ctx, ReverseGeocodeQuery{Position: Position{Lat: -33.8688, Lon: 151.2093}})
				return err
			},
			method: "GET", path: "/reverseGeocode",
			query: url.Values{"api-version": {"2025-01-01"}, "coordinates": {"151.2093,-33.8688"}},
		},
		{
			name:   "route directions",
			call:   func() error { _, err := c.RouteDirections(ctx, route); return err },
			method: "POST", path: "/route/directions",
			query: url.Values{"api-version": {"2025-01-01"}},
			body:  routeJSON + `}`,
		},
		{
			name: "route directions, options unset",
			call: func() error {
				_, err := c.RouteDirections(ctx, RouteRequest{Waypoints: route.Waypoints})
				return err
			},
			method: "POST", path: "/route/directions",
			query: url.Values{"api-version": {"2025-01-01"}},
			body: `{"type":"FeatureCollection","features":[
				{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.1387,47.6303]},"properties":{"pointIndex":0,"pointType":"waypoint"}},
				{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.2015,47.6101]},"properties":{"pointIndex":1,"pointType":"waypoint"}}]}`,
		},
		{
			name: "geocode batch",
			call: func() error {
				_, err := c.GeocodeBatch(ctx, []GeocodeQuery{{Query: "Pike Pl", Top: 2, Coordinates: &Position{Lat: 47.6, Lon: -122.3}, BBox: []float64{1, 2, 3, 4}}})
				return err
			},
			method: "POST", path: "/geocode:batch",
			query: url.Values{"api-version": {"2025-01-01"}},
			body:  `{"batchItems":[{"query":"Pike Pl","top":2,"coordinates":[-122.3,47.6],"bbox":[1,2,3,4],"optionalId":"0"}]}`,
		},
		{
			name:   "route batch",
			call:   func() error { _, err := c.RouteDirectionsBatch(ctx, []RouteRequest{route}); return err },
			method: "POST", path: "/route/directions:batch",
			query: url.Values{"api-version": {"2025-01-01"}},
			body:  `{"batchItems":[` + routeJSON + `,"optionalId":"0"}]}`,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			reqs := rec.requests()
			if len(reqs) != i+1 {
				t.Fatalf("%d requests, want %d", len(reqs), i+1)
			}
			r := reqs[i]
			if r.method != tt.method || r.path != tt.path {
				t.Errorf("%s %s, want %s %s", r.method, r.path, tt.method, tt.path)
			}
			if !reflect.DeepEqual(r.query, tt.query) {
				t.Errorf("query %v, want %v", r.query, tt.query)
			}
			if got := r.header.Get("Authorization"); got != "Bearer "+testToken {
				t.Errorf("Authorization %q", got)
			}
			if got := r.header.Get("x-ms-client-id"); got != testClientID {
				t.Errorf("x-ms-client-id %q", got)
			}
			if r.header.Get("subscription-key") != "" {
				t.Error("subscription-key sent with a bearer token")
			}
			if tt.body == "" {
				if len(r.body) != 0 {
					t.Errorf("GET with a body: %s", r.body)
				}
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			jsonEqual(t, r.body, tt.body)
		})
	}
}

func TestResponse(t *testing.T) {
	const body = `{"type":"FeatureCollection","features":[{"type":"Feature"}]}` + "\n"
	rec := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		w.Header().Set("x-ms-request-id", "4f3c5a2e-0000-0000-0000-000000000001")
		io.WriteString(w, body)
	})
	resp, err := rec.bearerClient(t).Geocode(context.Background(), GeocodeQuery{Query: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != body || resp.RequestID != "4f3c5a2e-0000-0000-0000-000000000001" || resp.StatusCode != 200 {
		t.Errorf("response %+v", resp)
	}
}

func TestSharedKey(t *testing.T) {
	rec := newRecorder(t, nil)
	for _, clientID := range []string{"", testClientID} {
		c, err := NewClientWithKey(rec.ts.URL, &fakeKeys{cur: "the-key"}, &ClientOptions{ClientID: clientID, ClientOptions: azcore.ClientOptions{Transport: rec.ts.Client()}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Geocode(context.Background(), GeocodeQuery{Query: "x"}); err != nil {
			t.Fatal(err)
		}
		reqs := rec.requests()
		h := reqs[len(reqs)-1].header
		if h.Get("subscription-key") != "the-key" || h.Get("Authorization") != "" || h.Get("x-ms-client-id") != clientID {
			t.Errorf("headers %v", h)
		}
	}
}

// errorAnswer answers with status and an Azure Maps error body.
func errorAnswer(status int, header http.Header, body string) func(http.ResponseWriter, recorded) {
	return func(w http.ResponseWriter, _ recorded) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestResponseError(t *testing.T) {
	fx, err := os.ReadFile(filepath.Join("testdata", "SearchAddress_v1_400_recording.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec400 struct {
		Entries []struct{ ResponseBody json.RawMessage }
	}
	if err := json.Unmarshal(fx, &rec400); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode string
	}{
		{"400 from a recording", 400, string(rec400.Entries[0].ResponseBody), "400 BadRequest"},
		{"401", 401, `{"error":{"code":"Unauthorized","message":"Access denied, please inspect WWW-Authenticate header."}}`, "Unauthorized"},
		{"403", 403, `{"error":{"code":"403 Forbidden","message":"Permission, capacity, or authentication issues."}}`, "403 Forbidden"},
		{"500 without a body", 500, ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, errorAnswer(tt.status, nil, tt.body))
			_, err := rec.bearerClient(t).Geocode(context.Background(), GeocodeQuery{Query: "x"})
			var re *azcore.ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v, want *azcore.ResponseError", err, err)
			}
			if re.StatusCode != tt.status || re.ErrorCode != tt.wantCode {
				t.Errorf("status %d code %q, want %d %q", re.StatusCode, re.ErrorCode, tt.status, tt.wantCode)
			}
			if re.RawResponse.Header.Get("x-ms-request-id") != "req-/geocode" {
				t.Errorf("request id lost: %v", re.RawResponse.Header)
			}
			if got := re.RawResponse.Request.Header.Get("Authorization"); got != "" {
				t.Errorf("the error carries the Authorization header %q", got)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Error("the error message contains the token")
			}
			if len(rec.requests()) != 1 {
				t.Errorf("%d requests, want 1", len(rec.requests()))
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		header   http.Header
		min, max time.Duration
	}{
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, 7 * time.Second},
		{"HTTP date", http.Header{"Retry-After": {date}}, 28 * time.Second, 30 * time.Second},
		{"retry-after-ms", http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"9"}}, 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"x-ms-retry-after-ms", http.Header{"X-Ms-Retry-After-Ms": {"250"}}, 250 * time.Millisecond, 250 * time.Millisecond},
		{"none", nil, 0, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0, 0},
		{"date in the past", http.Header{"Retry-After": {"Mon, 02 Jan 2006 15:04:05 GMT"}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, errorAnswer(429, tt.header, `{"error":{"code":"429 TooManyRequests","message":"slow down"}}`))
			// Without client-side limits nothing absorbs a 429: the
			// client sends once and says how long to hold.
			opts := rec.options()
			opts.DisableRateLimits = true
			c, err := NewClient(rec.ts.URL, &fakeCred{token: testToken}, opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Geocode(context.Background(), GeocodeQuery{Query: "x"})
			if got := RetryAfter(err); got < tt.min || got > tt.max {
				t.Errorf("RetryAfter %v, want %v..%v", got, tt.min, tt.max)
			}
			if n := len(rec.requests()); n != 1 {
				t.Errorf("%d requests: the client retried a 429", n)
			}
			if tt.min <= absorbMaxHold {
				return
			}
			// With them, a hold longer than the limiter absorbs is
			// returned at once, for the engine to pause.
			rec2 := newRecorder(t, errorAnswer(429, tt.header, `{"error":{"code":"429 TooManyRequests","message":"slow down"}}`))
			if _, err := rec2.bearerClient(t).Geocode(context.Background(), GeocodeQuery{Query: "x"}); RetryAfter(err) < tt.min {
				t.Errorf("rate-limited client: %v", err)
			}
			if n := len(rec2.requests()); n != 1 {
				t.Errorf("rate-limited client: %d requests for a hold of %v", n, tt.min)
			}
		})
	}
	if RetryAfter(errors.New("x")) != 0 || RetryAfter(nil) != 0 {
		t.Error("RetryAfter of a plain error")
	}
}

func TestNoRetryByDefault(t *testing.T) {
	rec := newRecorder(t, errorAnswer(503, nil, `{"error":{"code":"503 ServiceUnavailable","message":"down"}}`))
	_, err := rec.bearerClient(t).Geocode(context.Background(), GeocodeQuery{Query: "x"})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 503 {
		t.Fatalf("error %v", err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("%d requests for one call, want 1: azcore retried", n)
	}

	// A caller who sets Retry explicitly gets azcore's retries.
	opts := rec.options()
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}
	c, err := NewClient(rec.ts.URL, &fakeCred{token: testToken}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Geocode(context.Background(), GeocodeQuery{Query: "x"})
	if n := len(rec.requests()); n != 1+3 {
		t.Fatalf("%d requests with MaxRetries 2, want 3 more", n-1)
	}
	if opts.Retry.MaxRetries != 2 {
		t.Error("NewClient changed the caller's options")
	}
}

func TestTokenError(t *testing.T) {
	rec := newRecorder(t, nil)
	cause := errors.New("ManagedIdentityCredential: connection refused")
	cred := &fakeCred{err: cause}
	c, err := NewClient(rec.ts.URL, cred, rec.options())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RouteDirections(context.Background(), RouteRequest{Waypoints: []Position{{}, {Lat: 1, Lon: 1}}})
	var te *TokenError
	if !errors.As(err, &te) || !errors.Is(err, cause) {
		t.Fatalf("error %T %v, want *TokenError wrapping the cause", err, err)
	}
	if _, ok := err.(*TokenError); !ok {
		t.Errorf("the *TokenError is wrapped in %T", err)
	}
	if len(rec.requests()) != 0 {
		t.Error("a request reached Maps without a token")
	}
	if cred.calls.Load() != 1 {
		t.Errorf("credential called %d times", cred.calls.Load())
	}

	// The same for a key that cannot be read.
	kc, _ := NewClientWithKey(rec.ts.URL, &fakeKeys{keyErr: errors.New("Key Vault: 403")}, rec.options())
	if _, err := kc.Geocode(context.Background(), GeocodeQuery{Query: "x"}); !errors.As(err, &te) {
		t.Fatalf("key source failure: %T %v", err, err)
	}
	if len(rec.requests()) != 0 {
		t.Error("a request reached Maps without a key")
	}
}

func TestKeyRefresh(t *testing.T) {
	const oldKey, newKey = "old-secret-key-AAAA", "new-secret-key-BBBB"
	accept := newKey
	rec := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		if r.header.Get("subscription-key") != accept {
			errorAnswer(401, nil, `{"error":{"code":"Unauthorized","message":"Access denied, please inspect WWW-Authenticate header."}}`)(w, r)
			return
		}
		io.WriteString(w, `{"type":"FeatureCollection","features":[]}`)
	})
	newClient := func(keys *fakeKeys) *Client {
		c, err := NewClientWithKey(rec.ts.URL, keys, rec.options())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	route := RouteRequest{Waypoints: []Position{{Lat: 47.6, Lon: -122.1}, {Lat: 47.7, Lon: -122.2}}}

	t.Run("rotated key", func(t *testing.T) {
		keys := &fakeKeys{cur: oldKey, next: newKey}
		c := newClient(keys)
		before := len(rec.requests())
		if _, err := c.RouteDirections(context.Background(), route); err != nil {
			t.Fatal(err)
		}
		reqs := rec.requests()[before:]
		if len(reqs) != 2 || keys.refreshes != 1 {
			t.Fatalf("%d requests, %d refreshes; want 2 and 1", len(reqs), keys.refreshes)
		}
		if reqs[0].header.Get("subscription-key") != oldKey || reqs[1].header.Get("subscription-key") != newKey {
			t.Error("keys not sent in order old, new")
		}
		if len(reqs[1].body) == 0 || string(reqs[0].body) != string(reqs[1].body) {
			t.Errorf("body not re-sent intact:\n%s\n%s", reqs[0].body, reqs[1].body)
		}
		// Later requests use the new key at once.
		if _, err := c.Geocode(context.Background(), GeocodeQuery{Query: "x"}); err != nil || keys.refreshes != 1 {
			t.Fatalf("after refresh: %v, %d refreshes", err, keys.refreshes)
		}
	})

	t.Run("key refreshed by another request", func(t *testing.T) {
		// Key answers the new key on its second call, as after a refresh
		// by a concurrent request: the policy needs no Refresh of its own.
		calls := 0
		src := keySourceFunc{
			key: func() (string, error) {
				calls++
				if calls == 1 {
					return oldKey, nil
				}
				return newKey, nil
			},
			refresh: func() (string, error) { t.Error("Refresh called"); return newKey, nil },
		}
		c, err := NewClientWithKey(rec.ts.URL, src, rec.options())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Geocode(context.Background(), GeocodeQuery{Query: "x"}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("refresh yields the same key", func(t *testing.T) {
		keys := &fakeKeys{cur: oldKey}
		before := len(rec.requests())
		_, err := newClient(keys).Geocode(context.Background(), GeocodeQuery{Query: "x"})
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 401 || re.ErrorCode != "Unauthorized" {
			t.Fatalf("error %v", err)
		}
		if n := len(rec.requests()) - before; n != 1 || keys.refreshes != 1 {
			t.Errorf("%d requests, %d refreshes; want 1 and 1", n, keys.refreshes)
		}
		if strings.Contains(err.Error(), oldKey) || re.RawResponse.Request.Header.Get("subscription-key") != "" {
			t.Error("the error carries the key")
		}
	})

	t.Run("refresh fails", func(t *testing.T) {
		keys := &fakeKeys{cur: oldKey, refreshErr: errors.New("Key Vault unreachable")}
		_, err := newClient(keys).Geocode(context.Background(), GeocodeQuery{Query: "x"})
		var te *TokenError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "Key Vault unreachable") {
			t.Fatalf("error %T %v", err, err)
		}
		if strings.Contains(err.Error(), oldKey) {
			t.Error("the error carries the key")
		}
	})

	t.Run("still refused after refresh", func(t *testing.T) {
		accept = "a-third-key"
		defer func() { accept = newKey }()
		keys := &fakeKeys{cur: oldKey, next: newKey}
		_, err := newClient(keys).Geocode(context.Background(), GeocodeQuery{Query: "x"})
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 401 || keys.refreshes != 1 {
			t.Fatalf("error %v, %d refreshes", err, keys.refreshes)
		}
		if msg := err.Error(); strings.Contains(msg, oldKey) || strings.Contains(msg, newKey) {
			t.Error("the error carries a key")
		}
	})
}

type keySourceFunc struct {
	key, refresh func() (string, error)
}

func (k keySourceFunc) Key(context.Context) (string, error)     { return k.key() }
func (k keySourceFunc) Refresh(context.Context) (string, error) { return k.refresh() }

func TestBatchOrder(t *testing.T) {
	// Items come back out of order, one error item without its optionalId.
	rec := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		io.WriteString(w, `{"summary":{"successfulRequests":2,"totalRequests":3},"batchItems":[
			{"optionalId":"2","type":"FeatureCollection","features":[{"id":"two"}]},
			{"error":{"code":"Conflicting Parameters","message":"query and locality"}},
			{"optionalId":"0","type":"FeatureCollection","features":[{"id":"zero"}]}]}`)
	})
	br, err := rec.bearerClient(t).GeocodeBatch(context.Background(), []GeocodeQuery{{Query: "a"}, {Query: "b", Locality: "c"}, {Query: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	if br.Summary != (BatchSummary{SuccessfulRequests: 2, TotalRequests: 3}) || len(br.Items) != 3 || br.RequestID != "req-/geocode:batch" {
		t.Fatalf("batch %+v", br)
	}
	if !strings.Contains(string(br.Items[0].Body), "zero") || !strings.Contains(string(br.Items[2].Body), "two") {
		t.Errorf("items not in request order: %s | %s", br.Items[0].Body, br.Items[2].Body)
	}
	if e := br.Items[1].Err; e == nil || e.Code != "Conflicting Parameters" || br.Items[1].Body != nil {
		t.Errorf("item 1: %+v", br.Items[1])
	}

	// A batch answer with the wrong number of items is an error.
	rec.answer = func(w http.ResponseWriter, r recorded) {
		io.WriteString(w, `{"summary":{"successfulRequests":0,"totalRequests":0},"batchItems":[]}`)
	}
	if _, err := rec.bearerClient(t).GeocodeBatch(context.Background(), []GeocodeQuery{{Query: "a"}}); err == nil {
		t.Error("short batch answer accepted")
	}
}

// TestNoSecretsInLogs turns azcore's logging on and checks that neither
// the token nor the key is written.
func TestNoSecretsInLogs(t *testing.T) {
	var mu sync.Mutex
	var logged strings.Builder
	azlog.SetListener(func(_ azlog.Event, msg string) {
		mu.Lock()
		logged.WriteString(msg + "\n")
		mu.Unlock()
	})
	defer azlog.SetListener(nil)

	const key = "shared-key-should-not-be-logged"
	rec := newRecorder(t, errorAnswer(401, nil, `{"error":{"code":"Unauthorized","message":"no"}}`))
	opts := rec.options()
	opts.Logging.AllowedHeaders = []string{"Authorization", "subscription-key"} // a careless caller
	opts.Logging.IncludeBody = true
	c, err := NewClient(rec.ts.URL, &fakeCred{token: testToken}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Geocode(context.Background(), GeocodeQuery{Query: "x"})
	kc, _ := NewClientWithKey(rec.ts.URL, &fakeKeys{cur: key, next: key + "2"}, opts)
	kc.Geocode(context.Background(), GeocodeQuery{Query: "x"})

	mu.Lock()
	out := logged.String()
	mu.Unlock()
	if !strings.Contains(out, "/geocode") {
		t.Fatalf("nothing logged: %q", out)
	}
	for _, secret := range []string{testToken, key} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret:\n%s", out)
		}
	}
}

// A redirect is never followed: neither the shared key nor a token reaches
// another host, or the same host over plain http.
func TestNoSecretCrossesARedirect(t *testing.T) {
	var leaked sync.Map
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Subscription-Key", "Authorization"} {
			if v := r.Header.Get(h); v != "" {
				leaked.Store(h, v)
			}
		}
		leaked.Store("request", r.URL.Path)
	}))
	t.Cleanup(plain.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(plain.URL, "http://"))
	targets := map[string]string{
		"another host":    plain.URL + "/geocode",
		"same host, http": "http://127.0.0.1:" + port + "/geocode",
	}
	for name, target := range targets {
		for _, auth := range []string{"key", "bearer"} {
			t.Run(name+" "+auth, func(t *testing.T) {
				rec := newRecorder(t, func(w http.ResponseWriter, r recorded) {
					http.Redirect(w, &http.Request{Method: r.method}, target, http.StatusTemporaryRedirect)
				})
				var c *Client
				var err error
				if auth == "key" {
					c, err = NewClientWithKey(rec.ts.URL, &fakeKeys{cur: "the-shared-key"}, rec.options())
				} else {
					c, err = NewClient(rec.ts.URL, &fakeCred{token: testToken}, rec.options())
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Geocode(t.Context(), GeocodeQuery{Query: "x"}); err == nil {
					t.Error("a redirect was answered as a success")
				}
				leaked.Range(func(k, v any) bool {
					t.Errorf("the redirect was followed: %v = %v", k, v)
					leaked.Delete(k)
					return true
				})
			})
		}
	}
}
