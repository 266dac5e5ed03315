package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

const testMessageID = "0b4a5e0c-1d2f-4e6a-9b8c-7d6e5f4a3b2c"

// waypoints returns a JSON array of n valid positions.
func waypoints(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"lat": %g, "lon": -122.2}`, 47.6+float64(i)/1000)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func positions(n int) []maps.Position {
	ps := make([]maps.Position, n)
	for i := range ps {
		ps[i] = maps.Position{Lat: 47.6 + float64(i)/1000, Lon: -122.2}
	}
	return ps
}

// routePath is what every route asks Azure Maps to answer.
var routePath = []string{"routePath"}

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		msgID   string // testMessageID if empty
		wantID  string
		kind    string
		geocode *maps.GeocodeQuery
		reverse *maps.ReverseGeocodeQuery
		route   *maps.RouteRequest
	}{
		{
			name:    "design geocode query",
			body:    `{"id": "order-42", "kind": "geocode", "query": "15127 NE 24th Street, Redmond, WA", "top": 1}`,
			wantID:  "order-42",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "15127 NE 24th Street, Redmond, WA", Top: 1},
		},
		{
			name:    "design geocode structured",
			body:    `{"id": "order-43", "kind": "geocode", "addressLine": "15127 NE 24th Street", "locality": "Redmond", "adminDistrict": "WA", "countryRegion": "US"}`,
			wantID:  "order-43",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{AddressLine: "15127 NE 24th Street", Locality: "Redmond", AdminDistrict: "WA", CountryRegion: "US"},
		},
		{
			name:    "geocode postal code only",
			body:    `{"id": "p", "kind": "geocode", "postalCode": "98052"}`,
			wantID:  "p",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{PostalCode: "98052"},
		},
		{
			name:    "geocode structured with top, blank query and null fields",
			body:    `{"id": "s", "kind": "geocode", "query": "  ", "addressLine": " 1 Main St ", "locality": null, "top": 20}`,
			wantID:  "s",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{AddressLine: "1 Main St", Top: 20},
		},
		{
			name:   "geocode query with every option",
			body:   `{"id": "all", "kind": "geocode", "query": "Pike Pl", "top": 3, "bbox": [-122.5, 47.4, -122.1, 47.8], "coordinates": {"lat": 47.6, "lon": -122.3}, "view": "Auto"}`,
			wantID: "all",
			kind:   KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "Pike Pl", Top: 3, BBox: []float64{-122.5, 47.4, -122.1, 47.8},
				Coordinates: &maps.Position{Lat: 47.6, Lon: -122.3}, View: "Auto"},
		},
		{
			name:    "geocode bbox across the antimeridian",
			body:    `{"id": "am", "kind": "geocode", "query": "Fiji", "bbox": [177, -19, -179, -16]}`,
			wantID:  "am",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "Fiji", BBox: []float64{177, -19, -179, -16}},
		},
		{
			name:    "top written as 2.0",
			body:    `{"id": "t", "kind": "geocode", "query": "x", "top": 2.0}`,
			wantID:  "t",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "x", Top: 2},
		},
		{
			name:    "query of 2048 two-byte characters",
			body:    `{"id": "long", "kind": "geocode", "query": "` + strings.Repeat("é", 2048) + `"}`,
			wantID:  "long",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: strings.Repeat("é", 2048)},
		},
		{
			name:    "no id: the message id names it",
			body:    `{"kind": "geocode", "query": "Redmond"}`,
			wantID:  testMessageID,
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "Redmond"},
		},
		{
			name:    "null id: the message id names it",
			body:    `{"id": null, "kind": "geocode", "query": "Redmond"}`,
			wantID:  testMessageID,
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "Redmond"},
		},
		{
			name:    "unknown fields, and names in another case, are ignored",
			body:    `{"id": "u", "kind": "geocode", "query": "x", "ID": "../etc", "Kind": 7, "extra": {"a": [1, 2e999, "z"]}}`,
			wantID:  "u",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "x"},
		},
		{
			name:    "byte order mark and white space",
			body:    "\xef\xbb\xbf \r\n\t{\"id\" : \"bom\" , \"kind\" : \"geocode\" , \"top\" : 5 , \"query\" : \"x\" }\n",
			wantID:  "bom",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "x", Top: 5},
		},
		{
			name:    "brackets inside strings are not nesting",
			body:    `{"id": "br", "kind": "geocode", "query": "\"` + nested(40) + `{{{"}`,
			wantID:  "br",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: `"` + nested(40) + `{{{`},
		},
		{
			name:    "nesting of 32 in an unknown field",
			body:    `{"id": "n", "kind": "geocode", "query": "x", "extra": ` + nested(31) + `}`,
			wantID:  "n",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "x"},
		},
		{
			name:    "id of 128 characters",
			body:    `{"id": "` + strings.Repeat("a", 128) + `", "kind": "geocode", "query": "x"}`,
			wantID:  strings.Repeat("a", 128),
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "x"},
		},
		{
			name:    "id of every allowed character",
			body:    `{"id": "-A.z_0-9..", "kind": "geocode", "query": "x"}`,
			wantID:  "-A.z_0-9..",
			kind:    KindGeocode,
			geocode: &maps.GeocodeQuery{Query: "x"},
		},
		{
			name:    "design reverse-geocode",
			body:    `{"id": "pin-7", "kind": "reverse-geocode", "position": {"lat": 47.6303, "lon": -122.1387}}`,
			wantID:  "pin-7",
			kind:    KindReverseGeocode,
			reverse: &maps.ReverseGeocodeQuery{Position: maps.Position{Lat: 47.6303, Lon: -122.1387}},
		},
		{
			name:    "reverse-geocode at the edges, with view",
			body:    `{"id": "edge", "kind": "reverse-geocode", "position": {"lat": -90, "lon": 180}, "view": "US"}`,
			wantID:  "edge",
			kind:    KindReverseGeocode,
			reverse: &maps.ReverseGeocodeQuery{Position: maps.Position{Lat: -90, Lon: 180}, View: "US"},
		},
		{
			name:    "a number too small for a float64 is 0",
			body:    `{"id": "tiny", "kind": "reverse-geocode", "position": {"lat": 1e-999, "lon": -0.0}}`,
			wantID:  "tiny",
			kind:    KindReverseGeocode,
			reverse: &maps.ReverseGeocodeQuery{Position: maps.Position{Lat: 0, Lon: 0}},
		},
		{
			name:   "design route",
			body:   `{"id": "trip-9", "kind": "route", "waypoints": [{"lat": 47.6303, "lon": -122.1387}, {"lat": 47.6101, "lon": -122.2015}], "travelMode": "driving", "optimizeRoute": "fastestWithoutTraffic", "departAt": "2026-12-01T08:00:00Z"}`,
			wantID: "trip-9",
			kind:   KindRoute,
			route: &maps.RouteRequest{Waypoints: []maps.Position{{Lat: 47.6303, Lon: -122.1387}, {Lat: 47.6101, Lon: -122.2015}},
				TravelMode: "driving", OptimizeRoute: "fastestWithoutTraffic", RouteOptions: maps.RouteOptions{DepartAt: "2026-12-01T08:00:00Z"}, RouteOutputOptions: routePath},
		},
		{
			name:   "route defaults to driving",
			body:   `{"id": "d", "kind": "route", "waypoints": ` + waypoints(2) + `}`,
			wantID: "d",
			kind:   KindRoute,
			route:  &maps.RouteRequest{Waypoints: positions(2), TravelMode: "driving", RouteOutputOptions: routePath},
		},
		{
			name:   "25 driving waypoints",
			body:   `{"id": "d25", "kind": "route", "waypoints": ` + waypoints(25) + `}`,
			wantID: "d25",
			kind:   KindRoute,
			route:  &maps.RouteRequest{Waypoints: positions(25), TravelMode: "driving", RouteOutputOptions: routePath},
		},
		{
			name:   "25 walking waypoints, shortest",
			body:   `{"id": "w25", "kind": "route", "travelMode": "walking", "optimizeRoute": "shortest", "waypoints": ` + waypoints(25) + `}`,
			wantID: "w25",
			kind:   KindRoute,
			route:  &maps.RouteRequest{Waypoints: positions(25), TravelMode: "walking", RouteOutputOptions: routePath, OptimizeRoute: "shortest"},
		},
		{
			name:   "150 truck waypoints, with traffic",
			body:   `{"id": "t150", "kind": "route", "travelMode": "truck", "optimizeRoute": "fastestWithTraffic", "waypoints": ` + waypoints(150) + `}`,
			wantID: "t150",
			kind:   KindRoute,
			route:  &maps.RouteRequest{Waypoints: positions(150), TravelMode: "truck", RouteOutputOptions: routePath, OptimizeRoute: "fastestWithTraffic"},
		},
		{
			name:   "departAt with fraction and offset",
			body:   `{"id": "dep", "kind": "route", "optimizeRoute": "fastestAvoidClosureWithoutTraffic", "departAt": "2023-06-01T09:30:00.000-07:00", "waypoints": ` + waypoints(2) + `}`,
			wantID: "dep",
			kind:   KindRoute,
			route: &maps.RouteRequest{Waypoints: positions(2), TravelMode: "driving", RouteOutputOptions: routePath,
				OptimizeRoute: "fastestAvoidClosureWithoutTraffic", RouteOptions: maps.RouteOptions{DepartAt: "2023-06-01T09:30:00.000-07:00"}},
		},
		{
			name:   "departAt without offset, which Azure Maps takes as UTC",
			body:   `{"id": "utc", "kind": "route", "departAt": "2026-12-01T08:00:00", "waypoints": ` + waypoints(2) + `}`,
			wantID: "utc",
			kind:   KindRoute,
			route:  &maps.RouteRequest{Waypoints: positions(2), TravelMode: "driving", RouteOutputOptions: routePath, RouteOptions: maps.RouteOptions{DepartAt: "2026-12-01T08:00:00"}},
		},
	}
	h := NewHandler(nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgID := tt.msgID
			if msgID == "" {
				msgID = testMessageID
			}
			tk, err := h.Decode([]byte(tt.body), msgID)
			if err != nil {
				t.Fatalf("Decode: %v (code %s)", err, worker.CodeOf(err))
			}
			task := tk.(*task)
			if task.ID() != tt.wantID || task.Kind() != tt.kind {
				t.Errorf("task is %s/%s, want %s/%s", task.Kind(), task.ID(), tt.kind, tt.wantID)
			}
			want := bytes.TrimPrefix([]byte(tt.body), []byte("\xef\xbb\xbf"))
			if got := task.Request(); !bytes.Equal(got, want) || !json.Valid(got) {
				t.Errorf("Request() = %.80q, want the body as received", got)
			}
			var geocode *maps.GeocodeQuery
			var reverse *maps.ReverseGeocodeQuery
			var route *maps.RouteRequest
			switch c := task.call.(type) {
			case *geocodeCall:
				geocode = &c.q
			case *reverseCall:
				reverse = &c.q
			case *routeCall:
				route = &c.r
			}
			if !reflect.DeepEqual(geocode, tt.geocode) {
				t.Errorf("geocode query = %+v, want %+v", geocode, tt.geocode)
			}
			if !reflect.DeepEqual(reverse, tt.reverse) {
				t.Errorf("reverse-geocode query = %+v, want %+v", reverse, tt.reverse)
			}
			if !reflect.DeepEqual(route, tt.route) {
				t.Errorf("route request = %+v, want %+v", route, tt.route)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	const msgID = testMessageID
	longID := strings.Repeat("a", 129)
	tests := []struct {
		name   string
		body   string
		msgID  string // msgID if empty
		code   string
		field  string // the message names it
		wantID string // "" means no Task; otherwise the Task's ID
		kind   string
	}{
		// The body as a whole: never a Task, as nothing names a result.
		{name: "empty", body: "", code: "InvalidJSON"},
		{name: "only white space", body: " \n\t", code: "InvalidJSON"},
		{name: "not JSON", body: "geocode Redmond please", code: "InvalidJSON"},
		{name: "array", body: `[{"kind": "geocode", "query": "x"}]`, code: "InvalidJSON", field: "not an array"},
		{name: "string", body: `"geocode"`, code: "InvalidJSON", field: "object"},
		{name: "null", body: `null`, code: "InvalidJSON", field: "object"},
		{name: "number", body: `42`, code: "InvalidJSON", field: "object"},
		{name: "truncated", body: `{"kind": "geocode", "query": "x"`, code: "InvalidJSON"},
		{name: "bad syntax", body: `{"kind": "geocode", "query": 'x'}`, code: "InvalidJSON", field: "byte"},
		{name: "trailing garbage", body: `{"kind": "geocode", "query": "x"} x`, code: "InvalidJSON", field: "after the JSON object"},
		{name: "two objects", body: `{"kind": "geocode", "query": "x"}{"kind": "route"}`, code: "InvalidJSON", field: "after the JSON object"},
		{name: "not UTF-8", body: "{\"kind\": \"geocode\", \"query\": \"caf\xe9\"}", code: "NotUTF8"},
		{name: "overlong UTF-8", body: "{\"kind\": \"geocode\", \"query\": \"\xc0\xaf\"}", code: "NotUTF8"},
		{name: "too large", body: `{"kind": "geocode", "query": "x", "pad": "` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, code: "TooLarge"},
		{name: "too deep", body: `{"kind": "geocode", "query": "x", "extra": ` + nested(32) + `}`, code: "TooDeep", field: "32"},
		{name: "far too deep", body: nested(30000), code: "TooDeep"},
		{name: "too deep and unclosed", body: strings.Repeat(`{"a":`, 1000), code: "TooDeep"},

		// The id: a Task named by the message id, never by the bad id.
		{name: "id climbs out", body: `{"id": "../x", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id hidden", body: `{"id": ".hidden", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id of 129 characters", body: `{"id": "` + longID + `", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id unicode", body: `{"id": "café", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id with slash", body: `{"id": "a/b", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id with space", body: `{"id": "a b", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id with NUL", body: `{"id": "a\u0000b", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id empty", body: `{"id": "", "kind": "geocode", "query": "x"}`, code: "InvalidID", field: "id", wantID: msgID, kind: KindGeocode},
		{name: "id a number", body: `{"id": 42, "kind": "route", "waypoints": []}`, code: "WrongType", field: "id", wantID: msgID, kind: KindRoute},
		{name: "bad id and bad message id", body: `{"id": "../x", "kind": "geocode", "query": "x"}`, msgID: "../y", code: "InvalidID", field: "id"},
		{name: "no id and bad message id", body: `{"kind": "geocode", "query": "x"}`, msgID: ".msg", code: "InvalidID", field: "message id"},
		{name: "bad id and unknown kind", body: `{"id": "../x", "kind": "teleport"}`, code: "InvalidID", field: "id"},

		// The kind: never a Task, as results live under the kind.
		{name: "kind missing", body: `{"id": "k", "query": "x"}`, code: "MissingField", field: "kind"},
		{name: "kind null", body: `{"id": "k", "kind": null, "query": "x"}`, code: "MissingField", field: "kind"},
		{name: "kind unknown", body: `{"id": "k", "kind": "teleport"}`, code: "UnknownKind", field: "teleport"},
		{name: "kind in another case", body: `{"id": "k", "kind": "Geocode", "query": "x"}`, code: "UnknownKind", field: "Geocode"},
		{name: "kind a number", body: `{"id": "k", "kind": 1}`, code: "WrongType", field: "kind"},

		// Geocode fields: a Task, so that the failed result has a name.
		{name: "geocode with nothing", body: `{"id": "g", "kind": "geocode"}`, code: "MissingField", field: "query", wantID: "g", kind: KindGeocode},
		{name: "geocode blank query", body: `{"id": "g", "kind": "geocode", "query": " \t "}`, code: "MissingField", field: "query", wantID: "g", kind: KindGeocode},
		{name: "query and locality", body: `{"id": "g", "kind": "geocode", "query": "Pike Pl", "locality": "Seattle"}`, code: "ConflictingParameters", field: "locality", wantID: "g", kind: KindGeocode},
		{name: "query and countryRegion", body: `{"id": "g", "kind": "geocode", "query": "Pike Pl", "countryRegion": "US"}`, code: "ConflictingParameters", field: "countryRegion", wantID: "g", kind: KindGeocode},
		{name: "query and all structured", body: `{"id": "g", "kind": "geocode", "query": "q", "addressLine": "a", "locality": "l", "adminDistrict": "d", "postalCode": "p"}`, code: "ConflictingParameters", field: "postalCode", wantID: "g", kind: KindGeocode},
		{name: "query too long", body: `{"id": "g", "kind": "geocode", "query": "` + strings.Repeat("x", 2049) + `"}`, code: "TooLong", field: "query", wantID: "g", kind: KindGeocode},
		{name: "addressLine too long", body: `{"id": "g", "kind": "geocode", "addressLine": "` + strings.Repeat("x", 3000) + `"}`, code: "TooLong", field: "addressLine", wantID: "g", kind: KindGeocode},
		{name: "query a number", body: `{"id": "g", "kind": "geocode", "query": 42}`, code: "WrongType", field: "query", wantID: "g", kind: KindGeocode},
		{name: "addressLine a boolean", body: `{"id": "g", "kind": "geocode", "addressLine": true}`, code: "WrongType", field: "addressLine", wantID: "g", kind: KindGeocode},
		{name: "view an array", body: `{"id": "g", "kind": "geocode", "query": "x", "view": ["US"]}`, code: "WrongType", field: "view", wantID: "g", kind: KindGeocode},
		{name: "top a string", body: `{"id": "g", "kind": "geocode", "query": "x", "top": "1"}`, code: "WrongType", field: "top", wantID: "g", kind: KindGeocode},
		{name: "top 0", body: `{"id": "g", "kind": "geocode", "query": "x", "top": 0}`, code: "OutOfRange", field: "top", wantID: "g", kind: KindGeocode},
		{name: "top 21", body: `{"id": "g", "kind": "geocode", "query": "x", "top": 21}`, code: "OutOfRange", field: "top", wantID: "g", kind: KindGeocode},
		{name: "top -1", body: `{"id": "g", "kind": "geocode", "query": "x", "top": -1}`, code: "OutOfRange", field: "top", wantID: "g", kind: KindGeocode},
		{name: "top 1.5", body: `{"id": "g", "kind": "geocode", "query": "x", "top": 1.5}`, code: "WrongType", field: "top", wantID: "g", kind: KindGeocode},
		{name: "top overflows", body: `{"id": "g", "kind": "geocode", "query": "x", "top": 1e999}`, code: "OutOfRange", field: "top", wantID: "g", kind: KindGeocode},
		{name: "bbox of 3", body: `{"id": "g", "kind": "geocode", "query": "x", "bbox": [1, 2, 3]}`, code: "InvalidValue", field: "bbox", wantID: "g", kind: KindGeocode},
		{name: "bbox an object", body: `{"id": "g", "kind": "geocode", "query": "x", "bbox": {}}`, code: "WrongType", field: "bbox", wantID: "g", kind: KindGeocode},
		{name: "bbox of strings", body: `{"id": "g", "kind": "geocode", "query": "x", "bbox": ["1", "2", "3", "4"]}`, code: "WrongType", field: "bbox[0]", wantID: "g", kind: KindGeocode},
		{name: "bbox west out of range", body: `{"id": "g", "kind": "geocode", "query": "x", "bbox": [-181, 1, 2, 3]}`, code: "OutOfRange", field: "bbox[0]", wantID: "g", kind: KindGeocode},
		{name: "bbox north out of range", body: `{"id": "g", "kind": "geocode", "query": "x", "bbox": [1, 1, 2, 91]}`, code: "OutOfRange", field: "bbox[3]", wantID: "g", kind: KindGeocode},
		{name: "bbox south above north", body: `{"id": "g", "kind": "geocode", "query": "x", "bbox": [1, 10, 2, 5]}`, code: "InvalidValue", field: "south", wantID: "g", kind: KindGeocode},
		{name: "coordinates an array", body: `{"id": "g", "kind": "geocode", "query": "x", "coordinates": [-122, 47]}`, code: "WrongType", field: "coordinates", wantID: "g", kind: KindGeocode},
		{name: "coordinates lat 91", body: `{"id": "g", "kind": "geocode", "query": "x", "coordinates": {"lat": 91, "lon": 0}}`, code: "OutOfRange", field: "coordinates.lat", wantID: "g", kind: KindGeocode},

		// Reverse-geocode fields.
		{name: "position missing", body: `{"id": "r", "kind": "reverse-geocode"}`, code: "MissingField", field: "position", wantID: "r", kind: KindReverseGeocode},
		{name: "position null", body: `{"id": "r", "kind": "reverse-geocode", "position": null}`, code: "MissingField", field: "position", wantID: "r", kind: KindReverseGeocode},
		{name: "position without lon", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": 1}}`, code: "MissingField", field: "position.lon", wantID: "r", kind: KindReverseGeocode},
		{name: "position an array", body: `{"id": "r", "kind": "reverse-geocode", "position": [47.6, -122.1]}`, code: "WrongType", field: "position", wantID: "r", kind: KindReverseGeocode},
		{name: "lat a string", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": "47.6", "lon": -122.1}}`, code: "WrongType", field: "position.lat", wantID: "r", kind: KindReverseGeocode},
		{name: "lat above 90", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": 90.000001, "lon": 0}}`, code: "OutOfRange", field: "position.lat", wantID: "r", kind: KindReverseGeocode},
		{name: "lat below -90", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": -91, "lon": 0}}`, code: "OutOfRange", field: "position.lat", wantID: "r", kind: KindReverseGeocode},
		{name: "lon above 180", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": 0, "lon": 180.5}}`, code: "OutOfRange", field: "position.lon", wantID: "r", kind: KindReverseGeocode},
		{name: "lon below -180", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": 0, "lon": -1e3}}`, code: "OutOfRange", field: "position.lon", wantID: "r", kind: KindReverseGeocode},
		{name: "lat overflows", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": 1e999, "lon": 0}}`, code: "OutOfRange", field: "too large for a 64-bit float", wantID: "r", kind: KindReverseGeocode},
		{name: "lon overflows negative", body: `{"id": "r", "kind": "reverse-geocode", "position": {"lat": 0, "lon": -1e400}}`, code: "OutOfRange", field: "position.lon", wantID: "r", kind: KindReverseGeocode},

		// Route fields.
		{name: "waypoints missing", body: `{"id": "t", "kind": "route"}`, code: "MissingField", field: "waypoints", wantID: "t", kind: KindRoute},
		{name: "waypoints an object", body: `{"id": "t", "kind": "route", "waypoints": {}}`, code: "WrongType", field: "waypoints", wantID: "t", kind: KindRoute},
		{name: "waypoints a string", body: `{"id": "t", "kind": "route", "waypoints": "47,-122;48,-122"}`, code: "WrongType", field: "waypoints", wantID: "t", kind: KindRoute},
		{name: "no waypoints", body: `{"id": "t", "kind": "route", "waypoints": []}`, code: "TooFewWaypoints", field: "waypoints", wantID: "t", kind: KindRoute},
		{name: "one waypoint", body: `{"id": "t", "kind": "route", "waypoints": ` + waypoints(1) + `}`, code: "TooFewWaypoints", field: "waypoints", wantID: "t", kind: KindRoute},
		{name: "26 driving waypoints", body: `{"id": "t", "kind": "route", "waypoints": ` + waypoints(26) + `}`, code: "TooManyWaypoints", field: "waypoints", wantID: "t", kind: KindRoute},
		{name: "26 walking waypoints", body: `{"id": "t", "kind": "route", "travelMode": "walking", "waypoints": ` + waypoints(26) + `}`, code: "TooManyWaypoints", field: "walking", wantID: "t", kind: KindRoute},
		{name: "151 truck waypoints", body: `{"id": "t", "kind": "route", "travelMode": "truck", "waypoints": ` + waypoints(151) + `}`, code: "TooManyWaypoints", field: "150", wantID: "t", kind: KindRoute},
		{name: "waypoint out of range", body: `{"id": "t", "kind": "route", "waypoints": [{"lat": 1, "lon": 2}, {"lat": 100, "lon": 2}]}`, code: "OutOfRange", field: "waypoints[1].lat", wantID: "t", kind: KindRoute},
		{name: "waypoint a pair", body: `{"id": "t", "kind": "route", "waypoints": [{"lat": 1, "lon": 2}, [2, 1]]}`, code: "WrongType", field: "waypoints[1]", wantID: "t", kind: KindRoute},
		{name: "travelMode unknown", body: `{"id": "t", "kind": "route", "travelMode": "bicycle", "waypoints": ` + waypoints(2) + `}`, code: "InvalidValue", field: "travelMode", wantID: "t", kind: KindRoute},
		{name: "travelMode a number", body: `{"id": "t", "kind": "route", "travelMode": 1, "waypoints": ` + waypoints(2) + `}`, code: "WrongType", field: "travelMode", wantID: "t", kind: KindRoute},
		{name: "optimizeRoute unknown", body: `{"id": "t", "kind": "route", "optimizeRoute": "short", "waypoints": ` + waypoints(2) + `}`, code: "InvalidValue", field: "optimizeRoute", wantID: "t", kind: KindRoute},
		{name: "traffic on foot", body: `{"id": "t", "kind": "route", "travelMode": "walking", "optimizeRoute": "fastestWithTraffic", "waypoints": ` + waypoints(2) + `}`, code: "ConflictingParameters", field: "optimizeRoute", wantID: "t", kind: KindRoute},
		{name: "closures for trucks", body: `{"id": "t", "kind": "route", "travelMode": "truck", "optimizeRoute": "fastestAvoidClosureWithoutTraffic", "waypoints": ` + waypoints(2) + `}`, code: "ConflictingParameters", field: "optimizeRoute", wantID: "t", kind: KindRoute},
		{name: "departAt not a date", body: `{"id": "t", "kind": "route", "departAt": "tomorrow at 8", "waypoints": ` + waypoints(2) + `}`, code: "InvalidValue", field: "departAt", wantID: "t", kind: KindRoute},
		{name: "departAt a date only", body: `{"id": "t", "kind": "route", "departAt": "2026-12-01", "waypoints": ` + waypoints(2) + `}`, code: "InvalidValue", field: "departAt", wantID: "t", kind: KindRoute},
		{name: "departAt a number", body: `{"id": "t", "kind": "route", "departAt": 1764576000, "waypoints": ` + waypoints(2) + `}`, code: "WrongType", field: "departAt", wantID: "t", kind: KindRoute},
	}
	h := NewHandler(nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.msgID
			if id == "" {
				id = msgID
			}
			task, err := h.Decode([]byte(tt.body), id)
			if err == nil {
				t.Fatalf("Decode succeeded, want %s", tt.code)
			}
			if c := worker.ClassOf(err); c != worker.ClassInvalid {
				t.Errorf("class %v, want %v", c, worker.ClassInvalid)
			}
			if c := worker.CodeOf(err); c != tt.code {
				t.Errorf("code %q, want %q (%v)", c, tt.code, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name %q", err, tt.field)
			}
			if len(err.Error()) > 300 {
				t.Errorf("message is %d bytes long: %.100q…", len(err.Error()), err)
			}
			if tt.wantID == "" {
				if task != nil {
					t.Errorf("Decode returned task %s/%s, want none", task.Kind(), task.ID())
				}
				return
			}
			if task == nil {
				t.Fatalf("Decode returned no task, want %s/%s", tt.kind, tt.wantID)
			}
			if task.ID() != tt.wantID || task.Kind() != tt.kind {
				t.Errorf("task is %s/%s, want %s/%s", task.Kind(), task.ID(), tt.kind, tt.wantID)
			}
			if got := task.Request(); string(got) != tt.body || !json.Valid(got) {
				t.Errorf("Request() = %.80q, want the body as received", got)
			}
			// A task that failed validation fails the same way if run,
			// and never reaches Maps (whose nil would panic).
			if _, runErr := task.Run(t.Context()); runErr != err {
				t.Errorf("Run = %v, want the decoding error", runErr)
			}
		})
	}
}

// Messages quote users' values, but only the start of a long one.
func TestDecodeMessagesAreShort(t *testing.T) {
	huge := strings.Repeat("x", 20000)
	bodies := []string{
		`{"id": "` + huge + `", "kind": "geocode", "query": "x"}`,
		`{"id": "k", "kind": "` + huge + `"}`,
		`{"id": "k", "kind": "route", "travelMode": "` + huge + `", "waypoints": []}`,
		`{"id": "k", "kind": "route", "departAt": "` + huge + `", "waypoints": ` + waypoints(2) + `}`,
		`{"id": "k", "kind": "reverse-geocode", "position": {"lat": 1` + strings.Repeat("0", 20000) + `, "lon": 0}}`,
		`{"id": "k", "kind": "geocode", "query": "x", "top": 0.` + strings.Repeat("5", 20000) + `}`,
		`{"id": "k", "kind": "geocode", "query": "` + strings.Repeat("é", 40) + `", "locality": "` + huge + `"}`,
	}
	h := NewHandler(nil, nil)
	for _, body := range bodies {
		_, err := h.Decode([]byte(body), testMessageID)
		if err == nil {
			t.Fatalf("Decode(%.60q…) succeeded", body)
		}
		if len(err.Error()) > 300 || strings.Contains(err.Error(), strings.Repeat("x", 100)) {
			t.Errorf("message of %d bytes: %.120q…", len(err.Error()), err)
		}
	}
	if got, want := quote(strings.Repeat("é", 40)), `"`+strings.Repeat("é", 32)+`"…`; got != want {
		t.Errorf("quote cut a character: %s, want %s", got, want)
	}
}

func TestDecodeBodyLimit(t *testing.T) {
	prefix := `{"id": "big", "kind": "geocode", "query": "x", "pad": "`
	body := prefix + strings.Repeat("a", DefaultMaxBodyBytes-len(prefix)-2) + `"}`
	if len(body) != DefaultMaxBodyBytes {
		t.Fatalf("body is %d bytes", len(body))
	}
	if _, err := NewHandler(nil, nil).Decode([]byte(body), testMessageID); err != nil {
		t.Errorf("a body of exactly the limit: %v", err)
	}
	small := NewHandler(nil, &HandlerOptions{MaxBodyBytes: 100})
	if _, err := small.Decode([]byte(body), testMessageID); worker.CodeOf(err) != "TooLarge" {
		t.Errorf("MaxBodyBytes 100: %v, want TooLarge", err)
	}
}

// Request keeps the body as received, not a view of the engine's buffer.
func TestRequestIsACopy(t *testing.T) {
	body := []byte(`{"id": "c", "kind": "geocode", "query": "x"}`)
	task, err := NewHandler(nil, nil).Decode(body, testMessageID)
	if err != nil {
		t.Fatal(err)
	}
	copy(body, "XXXXXXXX")
	if got := string(task.Request()); got != `{"id": "c", "kind": "geocode", "query": "x"}` {
		t.Errorf("Request() = %s after the buffer changed", got)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"order-42":               true,
		"a":                      true,
		"A.b_C-9":                true,
		"-lead":                  true,
		"x..y":                   true,
		strings.Repeat("z", 128): true,
		"":                       false,
		".":                      false,
		"..":                     false,
		".hidden":                false,
		"../x":                   false,
		"a/b":                    false,
		`a\b`:                    false,
		"a b":                    false,
		"a%2e":                   false,
		"über":                   false,
		"a\x00":                  false,
		strings.Repeat("z", 129): false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%.40q) = %v, want %v", id, got, want)
		}
	}
}

func TestNesting(t *testing.T) {
	for body, want := range map[string]int{
		`{}`:                   1,
		`{"a": [1, {"b": 2}]}`: 3,
		`{"a": "[[[{{{"}`:      1,
		`{"a": "\"[[[\\"}`:     1,
		`{"a": "\\", "b": []}`: 2,
		`[[[]]] [[]]`:          3,
		`"no structure"`:       0,
	} {
		if got := nesting([]byte(body)); got != want {
			t.Errorf("nesting(%s) = %d, want %d", body, got, want)
		}
	}
}
