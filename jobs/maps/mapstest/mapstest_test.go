package mapstest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

func newServer(t testing.TB, opts *Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// bearer returns the headers of a request authenticated with a token of s.
func bearer(s *Server) http.Header {
	tok, _ := s.issueToken(MapsResource, "test-app", time.Now(), time.Hour)
	return http.Header{"Authorization": {"Bearer " + tok}, "X-Ms-Client-Id": {s.ClientID}}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, a.body)
	}
	return m
}

func (a answer) errorCode(t testing.TB) (code, msg string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, a.body)
	}
	return e.Error.Code, e.Error.Message
}

// call sends a request to the Maps side. target is a path with its query.
func call(t testing.TB, s *Server, method, target string, h http.Header, body any) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

const geocodeOK = "/geocode?api-version=2025-01-01&query=15127+NE+24th+Street%2C+Redmond%2C+WA"

func TestAuth(t *testing.T) {
	s := newServer(t, nil)
	other := newServer(t, nil)
	now := time.Now()
	tok, _ := s.issueToken(MapsResource, "app", now, time.Hour)
	expired, _ := s.issueToken(MapsResource, "app", now.Add(-2*time.Hour), time.Hour)
	storage, _ := s.issueToken("https://storage.azure.com", "app", now, time.Hour)
	foreign, _ := other.issueToken(MapsResource, "app", now, time.Hour)
	tampered := tok[:len(tok)-2] + "AA"
	if tampered == tok {
		tampered = tok[:len(tok)-2] + "BB"
	}
	withSlash, _ := s.issueToken(MapsResource+"/", "app", now, time.Hour)

	tests := []struct {
		name string
		h    http.Header
		want int
	}{
		{"no credentials", nil, 401},
		{"token and client id", http.Header{"Authorization": {"Bearer " + tok}, "X-Ms-Client-Id": {s.ClientID}}, 200},
		{"audience with trailing slash", http.Header{"Authorization": {"Bearer " + withSlash}, "X-Ms-Client-Id": {s.ClientID}}, 200},
		{"token without client id", http.Header{"Authorization": {"Bearer " + tok}}, 401},
		{"token with wrong client id", http.Header{"Authorization": {"Bearer " + tok}, "X-Ms-Client-Id": {"11111111-1111-1111-1111-111111111111"}}, 401},
		{"expired token", http.Header{"Authorization": {"Bearer " + expired}, "X-Ms-Client-Id": {s.ClientID}}, 401},
		{"storage token", http.Header{"Authorization": {"Bearer " + storage}, "X-Ms-Client-Id": {s.ClientID}}, 401},
		{"token of another server", http.Header{"Authorization": {"Bearer " + foreign}, "X-Ms-Client-Id": {s.ClientID}}, 401},
		{"tampered signature", http.Header{"Authorization": {"Bearer " + tampered}, "X-Ms-Client-Id": {s.ClientID}}, 401},
		{"not a bearer token", http.Header{"Authorization": {"Basic " + tok}, "X-Ms-Client-Id": {s.ClientID}}, 401},
		{"shared key when none is set", http.Header{"Subscription-Key": {"k"}}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, s, "GET", geocodeOK, tt.h, nil)
			if a.status != tt.want {
				t.Fatalf("status %d, want %d: %s", a.status, tt.want, a.body)
			}
			if a.header.Get("x-ms-request-id") == "" {
				t.Error("no x-ms-request-id")
			}
			if tt.want == 401 {
				code, msg := a.errorCode(t)
				if code != "Unauthorized" || msg != "Access denied, please inspect WWW-Authenticate header." {
					t.Errorf("error %q %q", code, msg)
				}
				if got := a.header.Get("WWW-Authenticate"); got != "Bearer" {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
		})
	}
	st := s.Stats()
	if st.Unauthorized != 9 || st.Status2xx != 2 {
		t.Errorf("stats: %d unauthorized, %d ok", st.Unauthorized, st.Status2xx)
	}
}

func TestSharedKeyRotation(t *testing.T) {
	s := newServer(t, &Options{SharedKey: "key-one"})
	key := func(k string) http.Header { return http.Header{"Subscription-Key": {k}} }
	if a := call(t, s, "GET", geocodeOK, key("key-one"), nil); a.status != 200 {
		t.Fatalf("key-one: %d %s", a.status, a.body)
	}
	s.SetSharedKey("key-two")
	if a := call(t, s, "GET", geocodeOK, key("key-one"), nil); a.status != 401 {
		t.Fatalf("old key after rotation: %d", a.status)
	}
	if a := call(t, s, "GET", geocodeOK, key("key-two"), nil); a.status != 200 {
		t.Fatalf("new key: %d", a.status)
	}
	s.SetSharedKey("")
	if a := call(t, s, "GET", geocodeOK, key("key-two"), nil); a.status != 401 {
		t.Fatalf("no key accepted after SetSharedKey(\"\"): %d", a.status)
	}
}

// TestManagedIdentityCredential drives the token endpoint with the real
// azidentity credential. azidentity caches tokens process-wide by identity
// and resource, so each test uses its own client id.
func TestManagedIdentityCredential(t *testing.T) {
	s := newServer(t, nil)
	t.Setenv("IDENTITY_ENDPOINT", s.IdentityEndpoint)
	t.Setenv("IDENTITY_HEADER", s.IdentityHeader)
	clientID := "mapstest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(clientID)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tk, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://atlas.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tk.ExpiresOn); d < 55*time.Minute || d > 61*time.Minute {
		t.Errorf("token expires in %v, want about 1h", d)
	}
	h := http.Header{"Authorization": {"Bearer " + tk.Token}, "X-Ms-Client-Id": {s.ClientID}}
	if a := call(t, s, "GET", geocodeOK, h, nil); a.status != 200 {
		t.Fatalf("Maps with a managed identity token: %d %s", a.status, a.body)
	}
	// A second GetToken is served from azidentity's cache.
	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://atlas.microsoft.com/.default"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.TokenRequests()[clientID]; got != 1 {
		t.Errorf("token requests for %s: %d, want 1", clientID, got)
	}

	// A storage token, as Azurite's --oauth basic wants it.
	stk, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwtClaims(t, stk.Token)
	if claims["aud"] != "https://storage.azure.com" || claims["iss"] != "https://sts.windows.net/"+TenantID+"/" ||
		claims["appid"] != clientID || claims["tid"] != TenantID || claims["oid"] == "" {
		t.Errorf("claims: %v", claims)
	}
	for _, c := range []string{"nbf", "iat", "exp"} {
		if _, ok := claims[c].(float64); !ok {
			t.Errorf("claim %s: %v", c, claims[c])
		}
	}
	// The storage token is not a Maps token.
	h.Set("Authorization", "Bearer "+stk.Token)
	if a := call(t, s, "GET", geocodeOK, h, nil); a.status != 401 {
		t.Errorf("Maps with a storage token: %d", a.status)
	}
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(hdr) != `{"alg":"HS256","typ":"JWT"}` {
		t.Errorf("JWT header %s", hdr)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIdentityEndpoint(t *testing.T) {
	s := newServer(t, nil)
	get := func(query string, header string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", s.IdentityEndpoint+"?"+query, nil)
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	good := "api-version=2019-08-01&resource=https%3A%2F%2Fatlas.microsoft.com"
	tests := []struct {
		name, query, header string
		want                int
	}{
		{"ok, system-assigned", good, s.IdentityHeader, 200},
		{"ok, user-assigned", good + "&client_id=abc", s.IdentityHeader, 200},
		{"no identity header", good, "", 400},
		{"wrong identity header", good, "nope", 401},
		{"wrong api-version", "api-version=2017-09-01&resource=x", s.IdentityHeader, 400},
		{"no resource", "api-version=2019-08-01", s.IdentityHeader, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := get(tt.query, tt.header)
			if status != tt.want {
				t.Fatalf("status %d, want %d: %v", status, tt.want, m)
			}
			if status == 200 {
				if m["token_type"] != "Bearer" || m["resource"] != "https://atlas.microsoft.com" {
					t.Errorf("answer %v", m)
				}
				exp, err := strconv.ParseInt(m["expires_on"].(string), 10, 64)
				if err != nil || exp < time.Now().Add(59*time.Minute).Unix() {
					t.Errorf("expires_on %v", m["expires_on"])
				}
				tok := m["access_token"].(string)
				h := http.Header{"Authorization": {"Bearer " + tok}, "X-Ms-Client-Id": {s.ClientID}}
				if a := call(t, s, "GET", geocodeOK, h, nil); a.status != 200 {
					t.Errorf("token refused by Maps: %d", a.status)
				}
			}
		})
	}
	if got := s.TokenRequests(); got[""] != 1 || got["abc"] != 1 || len(got) != 2 {
		t.Errorf("TokenRequests %v", got)
	}

	s.SetTokenOutage(true)
	if status, _ := get(good, s.IdentityHeader); status != 500 {
		t.Errorf("during outage: %d", status)
	}
	s.SetTokenOutage(false)
	if status, _ := get(good, s.IdentityHeader); status != 200 {
		t.Errorf("after outage: %d", status)
	}
}

// ---- shapes against the fixtures ----

func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "missing"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// sameShape checks that got and want hold the same JSON type at each path.
func sameShape(t *testing.T, got, want any, paths [][]any) {
	t.Helper()
	for _, p := range paths {
		g, w := jsonType(dig(got, p...)), jsonType(dig(want, p...))
		if w == "missing" {
			t.Fatalf("bad test: fixture has nothing at %v", p)
		}
		if g != w {
			t.Errorf("at %v: emulator has %s, fixture %s", p, g, w)
		}
	}
}

// sameKeys checks that got has at least the keys of want (exactly, if exact).
func sameKeys(t *testing.T, what string, got, want any, exact bool) {
	t.Helper()
	gk, wk := keys(got), keys(want)
	have := map[string]bool{}
	for _, k := range gk {
		have[k] = true
	}
	for _, k := range wk {
		if !have[k] {
			t.Errorf("%s: emulator lacks key %q (has %v)", what, k, gk)
		}
	}
	if exact && len(gk) != len(wk) {
		t.Errorf("%s: keys %v, fixture %v", what, gk, wk)
	}
}

func featureOfType(doc any, typ string) any {
	fs, _ := dig(doc, "features").([]any)
	for _, f := range fs {
		if dig(f, "properties", "type") == typ {
			return f
		}
	}
	return nil
}

var geocodeFeaturePaths = [][]any{
	{"type"},
	{"geometry", "type"},
	{"geometry", "coordinates", 0},
	{"geometry", "coordinates", 1},
	{"bbox", 3},
	{"properties", "type"},
	{"properties", "confidence"},
	{"properties", "matchCodes", 0},
	{"properties", "address", "formattedAddress"},
	{"properties", "address", "addressLine"},
	{"properties", "address", "locality"},
	{"properties", "address", "postalCode"},
	{"properties", "address", "countryRegion", "name"},
	{"properties", "address", "adminDistricts", 0, "shortName"},
	{"properties", "geocodePoints", 0, "geometry", "coordinates", 1},
	{"properties", "geocodePoints", 0, "calculationMethod"},
	{"properties", "geocodePoints", 0, "usageTypes", 0},
}

func checkGeocodeFeature(t *testing.T, got, want any) {
	t.Helper()
	sameShape(t, got, want, geocodeFeaturePaths)
	sameKeys(t, "feature", got, want, true)
	sameKeys(t, "properties", dig(got, "properties"), dig(want, "properties"), true)
	sameKeys(t, "address", dig(got, "properties", "address"), dig(want, "properties", "address"), false)
	if n := len(dig(got, "geometry", "coordinates").([]any)); n != 2 {
		t.Errorf("coordinates have %d numbers", n)
	}
}

func TestShapes(t *testing.T) {
	s := newServer(t, nil)
	h := bearer(s)

	t.Run("geocode", func(t *testing.T) {
		fx := fixture(t, "Geocode_200.json")
		q := url.Values{}
		for k, v := range fx["parameters"].(map[string]any) {
			if k != "AzureKey" {
				q.Set(k, v.(string))
			}
		}
		a := call(t, s, "GET", "/geocode?"+q.Encode(), h, nil)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/geo+json" {
			t.Errorf("Content-Type %q", ct)
		}
		got, want := a.json(t), dig(fx, "responses", "200", "body")
		if got["type"] != "FeatureCollection" {
			t.Errorf("type %v", got["type"])
		}
		checkGeocodeFeature(t, dig(got, "features", 0), dig(want, "features", 0))
		// The structured fields given come back in the address.
		if loc := dig(got, "features", 0, "properties", "address", "locality"); loc != "Redmond" {
			t.Errorf("locality %v", loc)
		}
		if lat := dig(got, "features", 0, "geometry", "coordinates", 1).(float64); math.Abs(lat-47.67) > 0.1 {
			t.Errorf("Redmond at latitude %v", lat)
		}
	})

	t.Run("reverseGeocode", func(t *testing.T) {
		fx := fixture(t, "ReverseGeocode_200.json")
		c := dig(fx, "parameters", "coordinates").([]any)
		a := call(t, s, "GET", fmt.Sprintf("/reverseGeocode?api-version=2025-01-01&coordinates=%v,%v", c[0], c[1]), h, nil)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/geo+json" {
			t.Errorf("Content-Type %q", ct)
		}
		got, want := a.json(t), dig(fx, "responses", "200", "body")
		checkGeocodeFeature(t, dig(got, "features", 0), dig(want, "features", 0))
		sameShape(t, got, want, [][]any{{"features", 0, "properties", "address", "adminDistricts", 0, "name"}})
		if dig(got, "features", 0, "geometry", "coordinates", 0) != c[0] || dig(got, "features", 0, "geometry", "coordinates", 1) != c[1] {
			t.Errorf("position not echoed: %v", dig(got, "features", 0, "geometry", "coordinates"))
		}
	})

	routePathPaths := [][]any{
		{"type"},
		{"geometry", "type"},
		{"properties", "type"},
		{"properties", "distanceInMeters"},
		{"properties", "durationInSeconds"},
		{"properties", "durationTrafficInSeconds"},
	}

	t.Run("route", func(t *testing.T) {
		fx := fixture(t, "RouteDirections_2025-01-01_POST_200.json")
		body := dig(fx, "parameters", "routeDirectionsRequest").(map[string]any)
		body["departAt"] = "2023-08-28T18:00:00+00:00"
		a := call(t, s, "POST", "/route/directions?api-version=2025-01-01", h, body)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		got, want := a.json(t), dig(fx, "responses", "200", "body")
		gp, wp := featureOfType(got, "RoutePath"), featureOfType(want, "RoutePath")
		if gp == nil {
			t.Fatalf("no RoutePath feature: %s", a.body)
		}
		sameShape(t, gp, wp, append(routePathPaths,
			[]any{"geometry", "coordinates", 0, 0, 0},
			[]any{"bbox", 3},
			[]any{"properties", "departureAt"},
			[]any{"properties", "arrivalAt"},
			[]any{"properties", "legs", 0, "distanceInMeters"},
			[]any{"properties", "legs", 0, "durationInSeconds"},
			[]any{"properties", "legs", 0, "durationTrafficInSeconds"},
			[]any{"properties", "legs", 0, "routePathRange", "range", 1},
			[]any{"properties", "legs", 0, "routePathRange", "legIndex"},
		))
		gw, ww := featureOfType(got, "Waypoint"), featureOfType(want, "Waypoint")
		sameShape(t, gw, ww, [][]any{
			{"geometry", "type"}, {"geometry", "coordinates", 1},
			{"properties", "order", "inputIndex"}, {"properties", "routePathPoint", "legIndex"},
			{"properties", "distanceInMeters"}, {"properties", "durationInSeconds"}, {"properties", "travelMode"},
		})
		// Two waypoints and a via point: one leg, two Waypoint features.
		if n := len(dig(gp, "properties", "legs").([]any)); n != 1 {
			t.Errorf("%d legs, want 1", n)
		}
		waypoints := 0
		for _, f := range got["features"].([]any) {
			if dig(f, "properties", "type") == "Waypoint" {
				waypoints++
			}
		}
		if waypoints != 2 {
			t.Errorf("%d Waypoint features, want 2", waypoints)
		}
	})

	t.Run("geocodeBatch", func(t *testing.T) {
		fx := fixture(t, "GeocodeBatch_200_with_item_error.json")
		a := call(t, s, "POST", "/geocode:batch?api-version=2025-01-01", h, dig(fx, "parameters", "geocodingBatchRequestBody"))
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		got, want := a.json(t), dig(fx, "responses", "200", "body")
		sameShape(t, got, want, [][]any{
			{"summary", "successfulRequests"}, {"summary", "totalRequests"},
			{"batchItems", 0, "optionalId"}, {"batchItems", 0, "type"},
			{"batchItems", 1, "error", "code"}, {"batchItems", 1, "error", "message"},
		})
		checkGeocodeFeature(t, dig(got, "batchItems", 0, "features", 0), dig(want, "batchItems", 0, "features", 0))
		// The fixture's second item mixes query and locality: the same
		// inline error as the real service, and the same summary.
		if g, w := dig(got, "batchItems", 1, "error"), dig(want, "batchItems", 1, "error"); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("item error %v, want %v", g, w)
		}
		if g, w := got["summary"], want.(map[string]any)["summary"]; fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("summary %v, want %v", g, w)
		}
		if n := len(dig(got, "batchItems", 0, "features").([]any)); n > 2 {
			t.Errorf("%d features for top 2", n)
		}
	})

	t.Run("routeBatch", func(t *testing.T) {
		fx := fixture(t, "RouteDirectionsBatch_2025-01-01_POST_200.json")
		a := call(t, s, "POST", "/route/directions:batch?api-version=2025-01-01", h, dig(fx, "parameters", "routeDirectionsBatchRequest"))
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		got, want := a.json(t), dig(fx, "responses", "200", "body")
		sameShape(t, got, want, [][]any{{"summary", "successfulRequests"}, {"summary", "totalRequests"}, {"batchItems", 1, "type"}})
		if g, w := got["summary"], want.(map[string]any)["summary"]; fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("summary %v, want %v", g, w)
		}
		sameShape(t, featureOfType(dig(got, "batchItems", 0), "RoutePath"), featureOfType(dig(want, "batchItems", 0), "RoutePath"), routePathPaths)
	})
}

// ---- answers ----

func TestDeterministic(t *testing.T) {
	s1 := newServer(t, nil)
	s2 := newServer(t, nil)
	target := geocodeOK + "&top=3"
	a := call(t, s1, "GET", target, bearer(s1), nil)
	b := call(t, s2, "GET", target, bearer(s2), nil)
	if a.status != 200 || !bytes.Equal(a.body, b.body) {
		t.Fatalf("same query, different answers:\n%s\n%s", a.body, b.body)
	}
	c := call(t, s1, "GET", "/geocode?api-version=2025-01-01&query=1+Pike+St%2C+Seattle", bearer(s1), nil)
	if bytes.Equal(a.body, c.body) {
		t.Error("different queries, same answer")
	}
	if a.header.Get("x-ms-request-id") == b.header.Get("x-ms-request-id") {
		t.Error("request ids repeat across servers")
	}
}

func TestRouteDistance(t *testing.T) {
	s := newServer(t, nil)
	from, to := [2]float64{-122.1387, 47.6303}, [2]float64{-122.2015, 47.6101}
	body := fmt.Sprintf(`{"type":"FeatureCollection","features":[
		{"type":"Feature","geometry":{"type":"Point","coordinates":[%v,%v]},"properties":{"pointIndex":0,"pointType":"waypoint"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[%v,%v]},"properties":{"pointIndex":1,"pointType":"waypoint"}}],
		"travelMode":"driving"}`, from[0], from[1], to[0], to[1])
	a := call(t, s, "POST", "/route/directions?api-version=2025-01-01", bearer(s), body)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	p := dig(featureOfType(a.json(t), "RoutePath"), "properties").(map[string]any)
	want := math.Round(roadFactor*haversine(from[0], from[1], to[0], to[1])*10) / 10
	if got := p["distanceInMeters"].(float64); got != want || got < 5000 || got > 8000 {
		t.Errorf("distance %v, want %v (about 6 km)", got, want)
	}
	if d, tr := p["durationInSeconds"].(float64), p["durationTrafficInSeconds"].(float64); d <= 0 || tr < d {
		t.Errorf("durations %v, %v", d, tr)
	}
}

func TestBadRequests(t *testing.T) {
	s := newServer(t, nil)
	wp := func(lon, lat float64) string {
		return fmt.Sprintf(`{"type":"Feature","geometry":{"type":"Point","coordinates":[%v,%v]},"properties":{"pointType":"waypoint"}}`, lon, lat)
	}
	route := func(mode string, points ...string) string {
		return `{"type":"FeatureCollection","features":[` + strings.Join(points, ",") + `],"travelMode":"` + mode + `"}`
	}
	many := make([]string, 26)
	for i := range many {
		many[i] = wp(-122+float64(i)*0.01, 47)
	}
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = `{"query":"Seattle"}`
		}
		return `{"batchItems":[` + strings.Join(items, ",") + `]}`
	}
	const g = "/geocode?api-version=2025-01-01&"
	tests := []struct {
		name, method, target, body, msg string
	}{
		{"geocode without query", "GET", g, "", "query is missing or empty"},
		{"geocode with empty query", "GET", g + "query=", "", "query is missing or empty"},
		{"geocode with blank query", "GET", g + "query=+++", "", "query is missing or empty"},
		{"query and structured field", "GET", g + "query=Pike+Pl&locality=Seattle", "", "When 'query' is present"},
		{"top 0", "GET", g + "query=x&top=0", "", "between 1 and 20"},
		{"top 21", "GET", g + "query=x&top=21", "", "between 1 and 20"},
		{"top not a number", "GET", g + "query=x&top=five", "", "between 1 and 20"},
		{"bias coordinates out of range", "GET", g + "query=x&coordinates=-122,91", "", "out of range"},
		{"bbox of 3 numbers", "GET", g + "query=x&bbox=1,2,3", "", "bbox"},
		{"reject trigger", "GET", g + "query=Main+St+%23reject", "", "#reject"},
		{"no api-version", "GET", "/geocode?query=x", "", "api-version"},
		{"old api-version", "GET", "/geocode?api-version=2023-06-01&query=x", "", "2023-06-01"},
		{"reverse without coordinates", "GET", "/reverseGeocode?api-version=2025-01-01", "", "coordinates is missing"},
		{"reverse latitude out of range", "GET", "/reverseGeocode?api-version=2025-01-01&coordinates=10,-90.5", "", "out of range"},
		{"reverse longitude out of range", "GET", "/reverseGeocode?api-version=2025-01-01&coordinates=180.1,0", "", "out of range"},
		{"reverse unknown resultType", "GET", "/reverseGeocode?api-version=2025-01-01&coordinates=10,10&resultTypes=Planet", "", "Planet"},
		{"route with one waypoint", "POST", "/route/directions?api-version=2025-01-01", route("driving", wp(-122, 47)), "At least 2 waypoints"},
		{"route with bad travelMode", "POST", "/route/directions?api-version=2025-01-01", route("flying", wp(-122, 47), wp(-122.1, 47.1)), "travelMode"},
		{"route with 26 driving waypoints", "POST", "/route/directions?api-version=2025-01-01", route("driving", many...), "At most 25"},
		{"route waypoint out of range", "POST", "/route/directions?api-version=2025-01-01", route("driving", wp(-122, 47), wp(-190, 47)), "out of range"},
		{"route with empty body", "POST", "/route/directions?api-version=2025-01-01", "", "Request body is invalid or empty"},
		{"route with bad departAt", "POST", "/route/directions?api-version=2025-01-01", strings.Replace(route("driving", wp(-122, 47), wp(-122.1, 47.1)), `"travelMode"`, `"departAt":"tomorrow","travelMode"`, 1), "departAt"},
		{"empty geocode batch", "POST", "/geocode:batch?api-version=2025-01-01", batch(0), "between 1 and 100"},
		{"geocode batch of 101", "POST", "/geocode:batch?api-version=2025-01-01", batch(101), "between 1 and 100"},
		{"empty route batch", "POST", "/route/directions:batch?api-version=2025-01-01", `{"batchItems":[]}`, "between 1 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			a := call(t, s, tt.method, tt.target, bearer(s), body)
			if a.status != 400 {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			code, msg := a.errorCode(t)
			if code != "400 BadRequest" || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q %q, want 400 BadRequest and %q", code, msg, tt.msg)
			}
		})
	}
	// Limits that are not errors: 25 driving waypoints, 26 for a truck, 100 items.
	for _, ok := range []struct{ target, body string }{
		{"/route/directions?api-version=2025-01-01", route("driving", many[:25]...)},
		{"/route/directions?api-version=2025-01-01", route("truck", many...)},
		{"/geocode:batch?api-version=2025-01-01", batch(100)},
	} {
		if a := call(t, s, "POST", ok.target, bearer(s), ok.body); a.status != 200 {
			t.Errorf("%s: %d %s", ok.target, a.status, a.body)
		}
	}
}

func TestBatchItemErrors(t *testing.T) {
	s := newServer(t, nil)
	body := `{"batchItems":[
		{"query":"1 Pike St, Seattle","optionalId":"a"},
		{"query":"Pike Pl","locality":"Seattle","optionalId":"b"},
		{"query":"x #reject","optionalId":"c"},
		{"addressLine":"1 Main St","top":50,"optionalId":"d"},
		{"locality":"Berlin"}]}`
	a := call(t, s, "POST", "/geocode:batch?api-version=2025-01-01", bearer(s), body)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var got struct {
		Summary    struct{ SuccessfulRequests, TotalRequests int }
		BatchItems []struct {
			OptionalID string
			Type       string
			Error      *struct{ Code, Message string }
		}
	}
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Summary.SuccessfulRequests != 2 || got.Summary.TotalRequests != 5 || len(got.BatchItems) != 5 {
		t.Fatalf("summary %+v, %d items", got.Summary, len(got.BatchItems))
	}
	wantErr := []string{"", "Conflicting Parameters", "400 BadRequest", "400 BadRequest", ""}
	for i, it := range got.BatchItems {
		code := ""
		if it.Error != nil {
			code = it.Error.Code
		}
		if code != wantErr[i] {
			t.Errorf("item %d: error %q, want %q", i, code, wantErr[i])
		}
		if (code == "") != (it.Type == "FeatureCollection") {
			t.Errorf("item %d: type %q with error %q", i, it.Type, code)
		}
	}
	if got.BatchItems[2].OptionalID != "c" {
		t.Errorf("error item lost its optionalId: %+v", got.BatchItems[2])
	}

	rb := `{"batchItems":[
		{"type":"FeatureCollection","features":[
			{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.3368,47.614988]},"properties":{"pointIndex":0,"pointType":"waypoint"}},
			{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.316067,47.606356]},"properties":{"pointIndex":1,"pointType":"waypoint"}}],"optionalId":"0"},
		{"type":"FeatureCollection","features":[
			{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.3368,47.614988]},"properties":{"pointIndex":0,"pointType":"waypoint"}}],"optionalId":"1"}]}`
	a = call(t, s, "POST", "/route/directions:batch?api-version=2025-01-01", bearer(s), rb)
	m := a.json(t)
	if a.status != 200 || dig(m, "summary", "successfulRequests") != 1.0 || dig(m, "batchItems", 1, "error", "code") != "400 BadRequest" {
		t.Errorf("route batch: %d %s", a.status, a.body)
	}
	if st := s.Stats(); st.BatchItems != 7 || st.PerPath[APIGeocodeBatch] != 1 || st.PerPath[APIRouteBatch] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// ---- faults, limits, counters ----

func TestFaults(t *testing.T) {
	s := newServer(t, nil)
	tests := []struct {
		name       string
		fault      Fault
		target     string
		wantStatus int
		wantCode   string
		wantMsg    string
		retryAfter string
	}{
		{"outage", Fault{Status: 503}, geocodeOK, 503, "503 ServiceUnavailable", "Service Unavailable", ""},
		{"forbidden", Fault{Status: 403}, geocodeOK, 403, "403 Forbidden", "Permission, capacity, or authentication issues.", ""},
		{"unauthorized", Fault{Status: 401}, geocodeOK, 401, "Unauthorized", "Access denied, please inspect WWW-Authenticate header.", ""},
		{"throttled", Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}, geocodeOK, 429, "429 TooManyRequests", "Too Many Requests", "2"},
		{"custom", Fault{Status: 500, Code: "500 InternalServerError", Message: "boom"}, geocodeOK, 500, "500 InternalServerError", "boom", ""},
		{"other path only", Fault{Status: 503, Paths: []string{APIRoute, "/geocode:batch"}}, geocodeOK, 200, "", "", ""},
		{"this path", Fault{Status: 503, Paths: []string{"/reverseGeocode"}}, "/reverseGeocode?api-version=2025-01-01&coordinates=1,2", 503, "503 ServiceUnavailable", "Service Unavailable", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetFault(&tt.fault)
			defer s.SetFault(nil)
			a := call(t, s, "GET", tt.target, bearer(s), nil)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", a.status, tt.wantStatus, a.body)
			}
			if tt.wantStatus != 200 {
				code, msg := a.errorCode(t)
				if code != tt.wantCode || msg != tt.wantMsg {
					t.Errorf("error %q %q, want %q %q", code, msg, tt.wantCode, tt.wantMsg)
				}
			}
			if got := a.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
		})
	}
	// Authentication comes first: an outage does not hide a missing token.
	s.SetFault(&Fault{Status: 503})
	if a := call(t, s, "GET", geocodeOK, nil, nil); a.status != 401 {
		t.Errorf("unauthenticated during outage: %d", a.status)
	}
	s.SetFault(nil)
	if a := call(t, s, "GET", geocodeOK, bearer(s), nil); a.status != 200 {
		t.Errorf("after the fault: %d", a.status)
	}
	st := s.Stats()
	if st.Status5xx != 3 || st.Status429 != 1 || st.Status2xx != 2 || st.Unauthorized != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestRateLimit(t *testing.T) {
	s := newServer(t, nil)
	const qps = 5
	s.SetRateLimit(APIGeocode, qps)
	h := bearer(s)
	var wg sync.WaitGroup
	var ok, limited, other atomic.Int64
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := call(t, s, "GET", geocodeOK, h, nil)
			switch a.status {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
				if a.header.Get("Retry-After") != "1" {
					t.Errorf("429 without Retry-After: 1")
				}
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	seconds := 0
	for _, n := range st.PerSecond(APIGeocode) {
		if n > 0 {
			seconds++
		}
	}
	if limited.Load() == 0 || other.Load() != 0 || ok.Load() > int64(qps*seconds) {
		t.Errorf("%d ok, %d limited, %d other over %d seconds", ok.Load(), limited.Load(), other.Load(), seconds)
	}
	if st.Status429 != limited.Load() || st.PerPath[APIGeocode] != 40 {
		t.Errorf("stats %+v", st)
	}
	// Other APIs are not limited, and the limit can be lifted.
	if a := call(t, s, "GET", "/reverseGeocode?api-version=2025-01-01&coordinates=1,2", h, nil); a.status != 200 {
		t.Errorf("reverse: %d", a.status)
	}
	s.SetRateLimit("/geocode", 0)
	for range 2 * qps {
		if a := call(t, s, "GET", geocodeOK, h, nil); a.status != 200 {
			t.Fatalf("after lifting the limit: %d", a.status)
		}
	}
}

func TestStatsAndHook(t *testing.T) {
	s := newServer(t, &Options{Latency: 30 * time.Millisecond})
	var hooked atomic.Int64
	s.SetHandlerHook(func(r *http.Request) {
		if r.URL.Path == "/geocode" {
			hooked.Add(1)
		}
	})
	h := bearer(s)
	start := time.Now()
	call(t, s, "GET", geocodeOK, h, nil)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("answer after %v despite 30ms latency", d)
	}
	s.SetLatency(0)
	call(t, s, "GET", geocodeOK, h, nil)
	call(t, s, "GET", "/nowhere", h, nil)
	call(t, s, "POST", "/geocode?api-version=2025-01-01", h, "{}")
	if hooked.Load() != 3 {
		t.Errorf("hook saw %d geocode requests", hooked.Load())
	}
	st := s.Stats()
	if st.Requests != 4 || st.PerPath[APIGeocode] != 3 || st.Status2xx != 2 || st.Status4xx != 2 {
		t.Errorf("stats %+v", st)
	}
	sum := 0
	for _, n := range st.PerSecond("") {
		sum += n
	}
	if sum != 4 {
		t.Errorf("PerSecond sums to %d", sum)
	}
	s.ResetStats()
	s.SetHandlerHook(nil)
	if st := s.Stats(); st.Requests != 0 || len(st.PerSecond(APIGeocode)) != 1 || st.PerSecond(APIGeocode)[0] != 0 {
		t.Errorf("after reset: %+v %v", st, st.PerSecond(APIGeocode))
	}
}

func TestCertificate(t *testing.T) {
	s := NewServer(nil)
	b, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := cert.VerifyHostname(host); err != nil {
			t.Error(err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: s.CertPool(), DNSName: "127.0.0.1"}); err != nil {
		t.Error(err)
	}
	if _, err := http.Get(s.URL + "/geocode"); err == nil {
		t.Error("a client without the CA trusted the emulator")
	}
	s.Close()
	if _, err := os.Stat(s.CAFile()); !os.IsNotExist(err) {
		t.Errorf("CA file left after Close: %v", err)
	}

	// With CertDir, the files stay and are reused by the next server.
	dir := t.TempDir()
	s1 := NewServer(&Options{CertDir: dir})
	pem1, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	s1.Close()
	s2 := newServer(t, &Options{CertDir: dir})
	pem2, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if s2.CAFile() != filepath.Join(dir, "ca.pem") || !bytes.Equal(pem1, pem2) || len(pem1) == 0 {
		t.Error("certificate not kept in CertDir")
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v %v", fi, err)
	}
	if a := call(t, s2, "GET", geocodeOK, bearer(s2), nil); a.status != 200 {
		t.Errorf("reused certificate: %d", a.status)
	}
}

func TestListenError(t *testing.T) {
	s := newServer(t, nil)
	addr := strings.TrimPrefix(s.URL, "https://")
	if _, err := Start(&Options{Addr: addr}); err == nil {
		t.Fatal("Start on a busy address succeeded")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewServer on a busy address did not panic")
		}
	}()
	NewServer(&Options{IdentityAddr: addr})
}

func BenchmarkGeocode(b *testing.B) {
	s := newServer(b, nil)
	h := bearer(s)
	client := s.Client()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", s.URL+geocodeOK, nil)
			req.Header = h.Clone()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkServeGeocode measures the handler alone, without the network.
func BenchmarkServeGeocode(b *testing.B) {
	s := newServer(b, nil)
	h := bearer(s)
	req, _ := http.NewRequest("GET", s.URL+geocodeOK, nil)
	req.Header = h
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.serveMaps(w, req)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
