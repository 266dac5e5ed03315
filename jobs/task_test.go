package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// fakeMaps answers every call with body, or fails with err, and records
// what it was asked.
type fakeMaps struct {
	body  json.RawMessage
	nilOK bool // answer nil, nil
	err   error

	calls   int
	geocode maps.GeocodeQuery
	reverse maps.ReverseGeocodeQuery
	route   maps.RouteRequest
}

func (f *fakeMaps) answer() (*maps.Response, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	if f.nilOK {
		return nil, nil
	}
	return &maps.Response{StatusCode: 200, RequestID: "req-1", Body: f.body}, nil
}

func (f *fakeMaps) Geocode(_ context.Context, q maps.GeocodeQuery) (*maps.Response, error) {
	f.geocode = q
	return f.answer()
}

func (f *fakeMaps) ReverseGeocode(_ context.Context, q maps.ReverseGeocodeQuery) (*maps.Response, error) {
	f.reverse = q
	return f.answer()
}

func (f *fakeMaps) RouteDirections(_ context.Context, r maps.RouteRequest) (*maps.Response, error) {
	f.route = r
	return f.answer()
}

// specBody returns the body of the 200 answer of a spec example in testdata,
// byte for byte as the file has it.
func specBody(t testing.TB, name string) json.RawMessage {
	t.Helper()
	var example struct {
		Responses map[string]struct {
			Body json.RawMessage `json:"body"`
		} `json:"responses"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &example); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body := example.Responses["200"].Body
	if len(body) == 0 {
		t.Fatalf("%s has no 200 body", name)
	}
	return body
}

func ptr(v float64) *float64 { return &v }

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		request string
		body    json.RawMessage
		want    any
	}{
		{
			name:    "geocode",
			request: `{"id": "order-43", "kind": "geocode", "addressLine": "15127 NE 24th Street", "locality": "Redmond", "adminDistrict": "WA"}`,
			body:    specBody(t, "Geocode_200.json"),
			want: &GeocodeSummary{Matches: 1, Lat: ptr(47.630358), Lon: ptr(-122.138681),
				FormattedAddress: "15127 NE 24th St, Redmond, WA 98052", Confidence: "High"},
		},
		{
			name:    "reverse-geocode",
			request: `{"id": "pin-7", "kind": "reverse-geocode", "position": {"lat": 47.630358, "lon": -122.138681}}`,
			body:    specBody(t, "ReverseGeocode_200.json"),
			want: &GeocodeSummary{Matches: 1, Lat: ptr(47.630358), Lon: ptr(-122.138681),
				FormattedAddress: "15127 NE 24th St, Redmond, Washington 98052", Confidence: "Medium"},
		},
		{
			name:    "route",
			request: `{"id": "trip-9", "kind": "route", "optimizeRoute": "fastestWithTraffic", "waypoints": [{"lat": 47.608678, "lon": -122.201399}, {"lat": 47.615076, "lon": -122.201669}]}`,
			body:    specBody(t, "RouteDirections_2025-01-01_POST_200.json"),
			want:    &RouteSummary{DistanceInMeters: 947, DurationInSeconds: 266, DurationTrafficInSeconds: ptr(295)},
		},
		{
			name:    "geocode without a match",
			request: `{"id": "nowhere", "kind": "geocode", "query": "xyzzy plugh"}`,
			body:    json.RawMessage(`{"type": "FeatureCollection", "features": []}`),
			want:    &GeocodeSummary{Matches: 0},
		},
		{
			name:    "reverse-geocode in the ocean",
			request: `{"id": "sea", "kind": "reverse-geocode", "position": {"lat": 0, "lon": -30}}`,
			body:    json.RawMessage(`{"type":"FeatureCollection","features":null}`),
			want:    &GeocodeSummary{Matches: 0},
		},
		{
			name:    "geocode at 0, 0",
			request: `{"id": "null-island", "kind": "geocode", "query": "Null Island"}`,
			body:    json.RawMessage(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[0,0]},"properties":{"confidence":"Low"}}]}`),
			want:    &GeocodeSummary{Matches: 1, Lat: ptr(0), Lon: ptr(0), Confidence: "Low"},
		},
		{
			name:    "route without traffic",
			request: `{"id": "r", "kind": "route", "waypoints": [{"lat": 1, "lon": 2}, {"lat": 1.1, "lon": 2}]}`,
			body:    json.RawMessage(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"MultiLineString","coordinates":[]},"properties":{"type":"RoutePath","distanceInMeters":12.5,"durationInSeconds":3}}]}`),
			want:    &RouteSummary{DistanceInMeters: 12.5, DurationInSeconds: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeMaps{body: tt.body}
			task, err := NewHandler(fake, nil).Decode([]byte(tt.request), testMessageID)
			if err != nil {
				t.Fatal(err)
			}
			out, err := task.Run(t.Context())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !reflect.DeepEqual(out.Summary, tt.want) {
				got, _ := json.Marshal(out.Summary)
				want, _ := json.Marshal(tt.want)
				t.Errorf("summary %s, want %s", got, want)
			}
			if !bytes.Equal(out.Response, tt.body) {
				t.Errorf("response is not the Maps body verbatim")
			}
			if fake.calls != 1 {
				t.Errorf("%d calls to Maps, want 1", fake.calls)
			}
		})
	}
}

// The summaries are part of the result contract (DESIGN.md).
func TestSummaryJSON(t *testing.T) {
	for _, tt := range []struct {
		summary any
		want    string
	}{
		{&GeocodeSummary{Matches: 1, Lat: ptr(47.630358), Lon: ptr(-122.138681), FormattedAddress: "15127 NE 24th St, Redmond, WA 98052", Confidence: "High"},
			`{"matches":1,"lat":47.630358,"lon":-122.138681,"formattedAddress":"15127 NE 24th St, Redmond, WA 98052","confidence":"High"}`},
		{&GeocodeSummary{Matches: 0}, `{"matches":0}`},
		{&RouteSummary{DistanceInMeters: 947, DurationInSeconds: 266, DurationTrafficInSeconds: ptr(295)},
			`{"distanceInMeters":947,"durationInSeconds":266,"durationTrafficInSeconds":295}`},
		{&RouteSummary{DistanceInMeters: 947.5, DurationInSeconds: 266}, `{"distanceInMeters":947.5,"durationInSeconds":266}`},
	} {
		got, err := json.Marshal(tt.summary)
		if err != nil || string(got) != tt.want {
			t.Errorf("json.Marshal = %s, %v; want %s", got, err, tt.want)
		}
	}
}

// The request reaches Maps as decoded.
func TestRunSendsTheRequest(t *testing.T) {
	fake := &fakeMaps{body: specBody(t, "RouteDirections_2025-01-01_POST_200.json")}
	task, err := NewHandler(fake, nil).Decode([]byte(`{"id": "trip", "kind": "route", "travelMode": "truck", "departAt": "2026-12-01T08:00:00Z", "waypoints": [{"lat": 1, "lon": 2}, {"lat": 3, "lon": 4}]}`), testMessageID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := maps.RouteRequest{Waypoints: []maps.Position{{Lat: 1, Lon: 2}, {Lat: 3, Lon: 4}}, TravelMode: "truck", RouteOptions: maps.RouteOptions{DepartAt: "2026-12-01T08:00:00Z"}, RouteOutputOptions: routePath}
	if !reflect.DeepEqual(fake.route, want) {
		t.Errorf("Maps got %+v, want %+v", fake.route, want)
	}
	// Again, as after a transient error: the same call.
	if _, err := task.Run(t.Context()); err != nil || fake.calls != 2 || !reflect.DeepEqual(fake.route, want) {
		t.Errorf("second Run: %v, %d calls, %+v", err, fake.calls, fake.route)
	}
}

// A 200 the worker cannot read is a transient BadResponse.
func TestRunBadResponse(t *testing.T) {
	tests := []struct {
		name, request string
		fake          *fakeMaps
	}{
		{"not JSON", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{body: json.RawMessage(`<html>502 Bad Gateway</html>`)}},
		{"truncated", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{body: specBody(t, "Geocode_200.json")[:300]}},
		{"empty", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{body: json.RawMessage(``)}},
		{"no response", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{nilOK: true}},
		{"not a FeatureCollection", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{body: json.RawMessage(`{"features": []}`)}},
		{"a JSON array", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{body: json.RawMessage(`[]`)}},
		{"feature without coordinates", `{"id": "g", "kind": "geocode", "query": "x"}`, &fakeMaps{body: json.RawMessage(`{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point"}}]}`)}},
		{"features of the wrong type", `{"id": "g", "kind": "reverse-geocode", "position": {"lat": 1, "lon": 2}}`, &fakeMaps{body: json.RawMessage(`{"type":"FeatureCollection","features":{}}`)}},
		{"route without a RoutePath", `{"id": "r", "kind": "route", "waypoints": [{"lat": 1, "lon": 2}, {"lat": 3, "lon": 4}]}`, &fakeMaps{body: specBody(t, "Geocode_200.json")}},
		{"RoutePath without distance", `{"id": "r", "kind": "route", "waypoints": [{"lat": 1, "lon": 2}, {"lat": 3, "lon": 4}]}`, &fakeMaps{body: json.RawMessage(`{"type":"FeatureCollection","features":[{"properties":{"type":"RoutePath","durationInSeconds":3}}]}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := NewHandler(tt.fake, nil).Decode([]byte(tt.request), testMessageID)
			if err != nil {
				t.Fatal(err)
			}
			out, err := task.Run(t.Context())
			if err == nil {
				t.Fatalf("Run succeeded with %+v", out)
			}
			if worker.ClassOf(err) != worker.ClassTransient || worker.CodeOf(err) != "BadResponse" {
				t.Errorf("Run: %v (%v %s), want transient BadResponse", err, worker.ClassOf(err), worker.CodeOf(err))
			}
		})
	}
}

// Errors of Maps come back classified.
func TestRunClassifiesErrors(t *testing.T) {
	fake := &fakeMaps{err: responseErr(t, 400, nil, `{"error":{"code":"400 BadRequest","message":"query is missing or empty"}}`)}
	task, err := NewHandler(fake, nil).Decode([]byte(`{"id": "g", "kind": "geocode", "query": "x"}`), testMessageID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = task.Run(t.Context())
	if worker.ClassOf(err) != worker.ClassRejected || worker.CodeOf(err) != "400 BadRequest" {
		t.Errorf("Run: %v (%v %s), want maps-rejected 400 BadRequest", err, worker.ClassOf(err), worker.CodeOf(err))
	}

	fake.err = context.Canceled
	if _, err = task.Run(t.Context()); !errors.Is(err, context.Canceled) || worker.ClassOf(err) != worker.ClassTransient {
		t.Errorf("Run: %v (%v), want transient context.Canceled", err, worker.ClassOf(err))
	}
}

// Each kind probes Maps with a known-good request of its own API, whatever
// the message asked, and classifies the answer as a run would.
func TestProbe(t *testing.T) {
	cases := []struct {
		msg  string
		sent func(f *fakeMaps) bool
	}{
		{`{"kind":"geocode","query":"anything #reject"}`, func(f *fakeMaps) bool { return f.geocode.Query == probeGeocode.Query }},
		{`{"kind":"reverse-geocode","position":{"lat":1,"lon":2}}`, func(f *fakeMaps) bool { return f.reverse.Position == probeReverse.Position }},
		{`{"kind":"route","waypoints":[{"lat":1,"lon":2},{"lat":3,"lon":4}],"travelMode":"truck"}`, func(f *fakeMaps) bool {
			return len(f.route.Waypoints) == 2 && f.route.Waypoints[0] == probeRoute.Waypoints[0] && f.route.TravelMode == ""
		}},
	}
	for _, c := range cases {
		fake := &fakeMaps{body: json.RawMessage(`{}`)}
		task, err := NewHandler(fake, nil).Decode([]byte(c.msg), testMessageID)
		if err != nil {
			t.Fatal(err)
		}
		p := task.(worker.Prober)
		if err := p.Probe(t.Context()); err != nil || fake.calls != 1 || !c.sent(fake) {
			t.Errorf("%s: probe err %v, calls %d, sent %+v %+v %+v", c.msg, err, fake.calls, fake.geocode, fake.reverse, fake.route)
		}
		fake.err = responseErr(t, 503, nil, `{"error":{"code":"503 ServiceUnavailable","message":"down"}}`)
		if err := p.Probe(t.Context()); worker.ClassOf(err) != worker.ClassTransient {
			t.Errorf("%s: probe of a 503: %v (%v), want transient", c.msg, err, worker.ClassOf(err))
		}
	}
}
