package maps

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"mapsworker/jobs/maps/mapstest"
)

// managedIdentity points azidentity at the emulator's token endpoint and
// returns a credential for a client id of its own: azidentity caches tokens
// process-wide by identity and resource, not by endpoint.
func managedIdentity(t *testing.T, s *mapstest.Server) (azcore.TokenCredential, string) {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", s.IdentityEndpoint)
	t.Setenv("IDENTITY_HEADER", s.IdentityHeader)
	id := "maps-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ID: azidentity.ClientID(id),
		// The token endpoint's outage test should not wait for retries.
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred, id
}

func emulatorClient(t *testing.T, s *mapstest.Server, cred azcore.TokenCredential, clientID string) *Client {
	t.Helper()
	c, err := NewClient(s.URL, cred, &ClientOptions{
		ClientID:      clientID,
		ClientOptions: azcore.ClientOptions{Transport: s.Client()},
		// These tests are of the emulator: its rate limits must be reachable.
		DisableRateLimits: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// summary reads what the worker reads from a geocoding answer.
func geocodeSummary(t *testing.T, body []byte) (lat, lon float64, formatted, confidence string) {
	t.Helper()
	var fc struct {
		Type     string
		Features []struct {
			Geometry   struct{ Coordinates []float64 }
			Properties struct {
				Confidence string
				Address    struct{ FormattedAddress string }
			}
		}
	}
	if err := json.Unmarshal(body, &fc); err != nil || fc.Type != "FeatureCollection" || len(fc.Features) == 0 {
		t.Fatalf("not a FeatureCollection with features (%v): %s", err, body)
	}
	f := fc.Features[0]
	if len(f.Geometry.Coordinates) != 2 {
		t.Fatalf("coordinates %v", f.Geometry.Coordinates)
	}
	return f.Geometry.Coordinates[1], f.Geometry.Coordinates[0], f.Properties.Address.FormattedAddress, f.Properties.Confidence
}

func routeSummary(t *testing.T, body []byte) (meters float64, secs, trafficSecs int) {
	t.Helper()
	var fc struct {
		Features []struct {
			Properties struct {
				Type                     string
				DistanceInMeters         float64
				DurationInSeconds        int
				DurationTrafficInSeconds int
			}
		}
	}
	if err := json.Unmarshal(body, &fc); err != nil {
		t.Fatal(err)
	}
	for _, f := range fc.Features {
		if p := f.Properties; p.Type == "RoutePath" {
			return p.DistanceInMeters, p.DurationInSeconds, p.DurationTrafficInSeconds
		}
	}
	t.Fatalf("no RoutePath: %s", body)
	return
}

func TestEmulatorManagedIdentity(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	cred, id := managedIdentity(t, s)
	c := emulatorClient(t, s, cred, s.ClientID)
	ctx := context.Background()

	resp, err := c.Geocode(ctx, GeocodeQuery{Query: "15127 NE 24th Street, Redmond, WA", Top: 1})
	if err != nil {
		t.Fatal(err)
	}
	lat, lon, formatted, conf := geocodeSummary(t, resp.Body)
	if lat < 47 || lat > 48.5 || lon < -123 || lon > -121.5 || formatted == "" || conf == "" {
		t.Errorf("Redmond at %v,%v %q %q", lat, lon, formatted, conf)
	}
	if resp.RequestID == "" {
		t.Error("no request id")
	}

	rev, err := c.ReverseGeocode(ctx, ReverseGeocodeQuery{Position: Position{Lat: 47.6303, Lon: -122.1387}})
	if err != nil {
		t.Fatal(err)
	}
	if lat, lon, _, _ := geocodeSummary(t, rev.Body); lat != 47.6303 || lon != -122.1387 {
		t.Errorf("reverse geocode moved the point to %v,%v", lat, lon)
	}

	route := RouteRequest{
		Waypoints:  []Position{{Lat: 47.6303, Lon: -122.1387}, {Lat: 47.6101, Lon: -122.2015}},
		TravelMode: "driving", OptimizeRoute: "fastestWithoutTraffic", RouteOptions: RouteOptions{DepartAt: "2026-12-01T08:00:00Z"},
	}
	rr, err := c.RouteDirections(ctx, route)
	if err != nil {
		t.Fatal(err)
	}
	if m, s, ts := routeSummary(t, rr.Body); m < 5000 || m > 8000 || s <= 0 || ts < s {
		t.Errorf("route summary %v m, %v s, %v s", m, s, ts)
	}

	gb, err := c.GeocodeBatch(ctx, []GeocodeQuery{{Query: "1 Pike St, Seattle"}, {Query: "Pike Pl", Locality: "Seattle"}, {AddressLine: "1 Main St", Locality: "Berlin"}})
	if err != nil {
		t.Fatal(err)
	}
	if gb.Summary.SuccessfulRequests != 2 || gb.Items[1].Err == nil || gb.Items[1].Err.Code != "Conflicting Parameters" || gb.Items[0].Err != nil {
		t.Errorf("geocode batch %+v", gb)
	}
	if lat, _, _, _ := geocodeSummary(t, gb.Items[2].Body); lat < 52 || lat > 53 {
		t.Errorf("Berlin at latitude %v", lat)
	}

	rb, err := c.RouteDirectionsBatch(ctx, []RouteRequest{route, {Waypoints: route.Waypoints[:1]}})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Items[0].Err != nil || rb.Items[1].Err == nil || rb.Items[1].Err.Code != "400 BadRequest" {
		t.Errorf("route batch %+v", rb)
	}
	if m, _, _ := routeSummary(t, rb.Items[0].Body); m < 5000 {
		t.Errorf("batch route %v m", m)
	}

	// One token for all of it: the bearer policy and azidentity cache it.
	if n := s.TokenRequests()[id]; n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if st := s.Stats(); st.Requests != 5 || st.Status2xx != 5 || st.BatchItems != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestEmulatorErrors(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	c := emulatorClient(t, s, s.Credential(), s.ClientID)
	ctx := context.Background()

	// A request Maps refuses.
	_, err := c.Geocode(ctx, GeocodeQuery{Query: "nowhere #reject"})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "400 BadRequest" || re.RawResponse.Header.Get("x-ms-request-id") == "" {
		t.Fatalf("rejected query: %v", err)
	}
	_, err = c.RouteDirections(ctx, RouteRequest{Waypoints: []Position{{Lat: 1, Lon: 1}, {Lat: 2, Lon: 2}}, TravelMode: "flying"})
	if !errors.As(err, &re) || re.ErrorCode != "400 BadRequest" {
		t.Fatalf("bad travel mode: %v", err)
	}

	// Throttling: Retry-After in whole seconds, no retry by azcore.
	s.SetFault(&mapstest.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond})
	s.ResetStats()
	_, err = c.Geocode(ctx, GeocodeQuery{Query: "x"})
	if !errors.As(err, &re) || re.StatusCode != 429 || RetryAfter(err) != 2*time.Second {
		t.Fatalf("429: %v, RetryAfter %v", err, RetryAfter(err))
	}
	// An outage: one request per call.
	s.SetFault(&mapstest.Fault{Status: 503})
	_, err = c.ReverseGeocode(ctx, ReverseGeocodeQuery{Position: Position{Lat: 1, Lon: 1}})
	if !errors.As(err, &re) || re.StatusCode != 503 {
		t.Fatalf("503: %v", err)
	}
	if st := s.Stats(); st.Requests != 2 {
		t.Errorf("%d requests for 2 calls: azcore retried", st.Requests)
	}
	s.SetFault(&mapstest.Fault{Status: 403})
	_, err = c.Geocode(ctx, GeocodeQuery{Query: "x"})
	if !errors.As(err, &re) || re.ErrorCode != "403 Forbidden" {
		t.Fatalf("403: %v", err)
	}
	s.SetFault(nil)

	// The wrong Maps account.
	wrong := emulatorClient(t, s, s.Credential(), "99999999-9999-9999-9999-999999999999")
	_, err = wrong.Geocode(ctx, GeocodeQuery{Query: "x"})
	if !errors.As(err, &re) || re.StatusCode != 401 || re.ErrorCode != "Unauthorized" {
		t.Fatalf("wrong client id: %v", err)
	}
	// Rate limited.
	s.SetRateLimit(mapstest.APIRoute, 1)
	var limited int
	for range 5 {
		_, err := c.RouteDirections(ctx, RouteRequest{Waypoints: []Position{{Lat: 1, Lon: 1}, {Lat: 2, Lon: 2}}})
		if errors.As(err, &re) && re.StatusCode == 429 && RetryAfter(err) == time.Second {
			limited++
		}
	}
	if limited < 3 {
		t.Errorf("%d of 5 route calls limited at 1 QPS", limited)
	}
}

func TestEmulatorTokenOutage(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	cred, id := managedIdentity(t, s)
	c := emulatorClient(t, s, cred, s.ClientID)
	s.SetTokenOutage(true)
	_, err := c.Geocode(context.Background(), GeocodeQuery{Query: "x"})
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %T %v, want *TokenError", err, err)
	}
	if s.Stats().Requests != 0 {
		t.Error("a request reached Maps without a token")
	}
	if s.TokenRequests()[id] == 0 {
		t.Error("the token endpoint was not asked")
	}
	// Once the endpoint is back, the same client works.
	s.SetTokenOutage(false)
	if _, err := c.Geocode(context.Background(), GeocodeQuery{Query: "x"}); err != nil {
		t.Fatal(err)
	}
}

// vault is a KeySource backed by a variable, standing in for Key Vault.
type vault struct {
	mu        sync.Mutex
	stored    string // what Key Vault holds
	cached    string // what the client last read
	refreshes int
}

func (v *vault) Key(context.Context) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cached, nil
}

func (v *vault) Refresh(context.Context) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.refreshes++
	v.cached = v.stored
	return v.cached, nil
}

func TestEmulatorKeyRotation(t *testing.T) {
	s := mapstest.NewServer(&mapstest.Options{SharedKey: "key-1"})
	defer s.Close()
	kv := &vault{stored: "key-1", cached: "key-1"}
	c, err := NewClientWithKey(s.URL, kv, &ClientOptions{ClientOptions: azcore.ClientOptions{Transport: s.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Geocode(ctx, GeocodeQuery{Query: "x"}); err != nil {
		t.Fatal(err)
	}
	// The key is rotated in Maps and Key Vault; the client still has key-1.
	s.SetSharedKey("key-2")
	kv.mu.Lock()
	kv.stored = "key-2"
	kv.mu.Unlock()
	s.ResetStats()
	if _, err := c.RouteDirections(ctx, RouteRequest{Waypoints: []Position{{Lat: 1, Lon: 1}, {Lat: 2, Lon: 2}}}); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Requests != 2 || st.Unauthorized != 1 || kv.refreshes != 1 {
		t.Errorf("stats %+v, %d refreshes", st, kv.refreshes)
	}
}
