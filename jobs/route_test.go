package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// routeFields parses a route request's members (JSON, without braces) after
// its waypoints, n of them unless the members give their own.
func routeFields(t *testing.T, members string, n int) fields {
	t.Helper()
	body := `{"kind": "route"`
	if !strings.Contains(members, `"waypoints"`) {
		body += `, "waypoints": ` + waypoints(n)
	}
	if members != "" {
		body += ", " + members
	}
	f, err := parseObject([]byte(body+"}"), DefaultMaxBodyBytes)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return f
}

func intPtr(v int) *int { return &v }

// wps writes waypoints: "w" a waypoint, "v" a viaWaypoint, "W" a waypoint
// with an explicit pointType.
func wps(kinds string) string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		p := fmt.Sprintf(`{"lat": %d, "lon": %d`, i%90, i%180)
		switch k {
		case 'v':
			p += `, "pointType": "viaWaypoint"`
		case 'W':
			p += `, "pointType": "waypoint"`
		}
		parts[i] = p + "}"
	}
	return `"waypoints": [` + strings.Join(parts, ", ") + `]`
}

func wpPositions(n int) []maps.Position {
	ps := make([]maps.Position, n)
	for i := range ps {
		ps[i] = maps.Position{Lat: float64(i % 90), Lon: float64(i % 180)}
	}
	return ps
}

// Every route option decodes as the 2025-01-01 API takes it.
func TestDecodeRouteOptionsValid(t *testing.T) {
	two := positions(2)
	path := []string{"routePath"}
	tests := []struct {
		name    string
		members string
		n       int // waypoints, if members has none; 2 by default
		want    maps.RouteRequest
	}{
		{name: "no options: routePath asked for the summary",
			want: maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path}},
		{name: "null options are absent",
			members: `"avoid": null, "vehicleSpec": null, "arriveAt": null, "maxRouteCount": null, "heading": null, "optimizeWaypointOrder": null, "language": null, "routeOutputOptions": null`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path}},
		{name: "avoid, driving",
			members: `"avoid": ["tollRoads", "ferries", "limitedAccessHighways", "borderCrossings", "tollRoads"]`,
			want: maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path,
				RouteOptions: maps.RouteOptions{Avoid: []string{"tollRoads", "ferries", "limitedAccessHighways", "borderCrossings"}}}},
		{name: "avoid, truck only values",
			members: `"travelMode": "truck", "avoid": ["tunnels", "lowEmissionZones", "unpavedRoads"]`,
			want: maps.RouteRequest{Waypoints: two, TravelMode: "truck", RouteOutputOptions: path,
				RouteOptions: maps.RouteOptions{Avoid: []string{"tunnels", "lowEmissionZones", "unpavedRoads"}}}},
		{name: "avoid nothing",
			members: `"travelMode": "walking", "avoid": []`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "walking", RouteOutputOptions: path}},
		{name: "vehicleSpec, every attribute at its limits",
			members: `"travelMode": "truck", "vehicleSpec": {"isVehicleCommercial": true, "length": 1000000, "width": 0, "height": 4.15,
				"weight": 1000000, "maxSpeed": 250, "axleWeight": 0, "axleCount": 5,
				"loadType": ["USHazmatClass1", "otherHazmatHarmfulToWater", "USHazmatClass1"], "adrTunnelRestrictionCode": "E"}`,
			want: maps.RouteRequest{Waypoints: two, TravelMode: "truck", RouteOutputOptions: path,
				RouteOptions: maps.RouteOptions{VehicleSpec: &maps.VehicleSpec{IsVehicleCommercial: true, Length: 1000000, Height: 4.15,
					Weight: 1000000, MaxSpeed: 250, AxleCount: 5, LoadType: []string{"USHazmatClass1", "otherHazmatHarmfulToWater"},
					AdrTunnelRestrictionCode: "E"}}}},
		{name: "vehicleSpec empty",
			members: `"travelMode": "truck", "vehicleSpec": {}`,
			want: maps.RouteRequest{Waypoints: two, TravelMode: "truck", RouteOutputOptions: path,
				RouteOptions: maps.RouteOptions{VehicleSpec: &maps.VehicleSpec{}}}},
		{name: "arriveAt, walking",
			members: `"travelMode": "walking", "arriveAt": "2026-12-01T09:30:00.000-07:00"`,
			want: maps.RouteRequest{Waypoints: two, TravelMode: "walking", RouteOutputOptions: path,
				RouteOptions: maps.RouteOptions{ArriveAt: "2026-12-01T09:30:00.000-07:00"}}},
		{name: "maxRouteCount 3, driving with two stops",
			members: `"maxRouteCount": 3`, n: 4,
			want: maps.RouteRequest{Waypoints: positions(4), TravelMode: "driving", RouteOutputOptions: path, MaxRouteCount: 3}},
		{name: "maxRouteCount 1 with avoid, driving",
			members: `"maxRouteCount": 1, "avoid": ["ferries"]`, n: 25,
			want: maps.RouteRequest{Waypoints: positions(25), TravelMode: "driving", RouteOutputOptions: path, MaxRouteCount: 1,
				RouteOptions: maps.RouteOptions{Avoid: []string{"ferries"}}}},
		{name: "maxRouteCount 2, truck with avoid and many stops",
			members: `"travelMode": "truck", "maxRouteCount": 2, "avoid": ["tollRoads"]`, n: 10,
			want: maps.RouteRequest{Waypoints: positions(10), TravelMode: "truck", RouteOutputOptions: path, MaxRouteCount: 2,
				RouteOptions: maps.RouteOptions{Avoid: []string{"tollRoads"}}}},
		{name: "maxRouteCount 2, driving: viaWaypoints are not stops",
			members: `"maxRouteCount": 2, ` + wps("wvwvvwvw"),
			want: maps.RouteRequest{Waypoints: wpPositions(8), Via: []bool{false, true, false, true, true, false, true, false},
				TravelMode: "driving", RouteOutputOptions: path, MaxRouteCount: 2}},
		{name: "routeOutputOptions with routePath",
			members: `"routeOutputOptions": ["itinerary", "routePath"]`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: []string{"itinerary", "routePath"}}},
		{name: "routeOutputOptions itinerary: routeSummary added",
			members: `"routeOutputOptions": ["itinerary"]`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: []string{"itinerary", "routeSummary"}}},
		{name: "routeOutputOptions routeSummary",
			members: `"routeOutputOptions": ["routeSummary"]`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: []string{"routeSummary"}}},
		{name: "routeOutputOptions empty: routeSummary",
			members: `"routeOutputOptions": []`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: []string{"routeSummary"}}},
		{name: "regionTravelSummary, walking",
			members: `"travelMode": "walking", "routeOutputOptions": ["regionTravelSummary"]`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "walking", RouteOutputOptions: []string{"regionTravelSummary", "routeSummary"}}},
		{name: "heading 0",
			members: `"heading": 0`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path, Heading: intPtr(0)}},
		{name: "heading 359",
			members: `"heading": 359`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path, Heading: intPtr(359)}},
		{name: "optimizeWaypointOrder, truck",
			members: `"travelMode": "truck", "optimizeWaypointOrder": true`, n: 5,
			want: maps.RouteRequest{Waypoints: positions(5), TravelMode: "truck", RouteOutputOptions: path, OptimizeWaypointOrder: true}},
		{name: "optimizeWaypointOrder false, driving",
			members: `"optimizeWaypointOrder": false`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path}},
		{name: "viaWaypoints, walking, ten in a row",
			members: `"travelMode": "walking", ` + wps("wvvvvvvvvvvW"),
			want: maps.RouteRequest{Waypoints: wpPositions(12), Via: []bool{false, true, true, true, true, true, true, true, true, true, true, false},
				TravelMode: "walking", RouteOutputOptions: path}},
		{name: "pointType waypoint only",
			members: wps("WW"),
			want:    maps.RouteRequest{Waypoints: wpPositions(2), TravelMode: "driving", RouteOutputOptions: path}},
		{name: "25 waypoints and viaWaypoints between them",
			members: wps("w" + strings.Repeat("vw", 24)),
			want: func() maps.RouteRequest {
				via := make([]bool, 49)
				for i := 1; i < 49; i += 2 {
					via[i] = true
				}
				return maps.RouteRequest{Waypoints: wpPositions(49), Via: via, TravelMode: "driving", RouteOutputOptions: path}
			}()},
		{name: "language",
			members: `"language": "de-DE"`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path, Language: "de-DE"}},
		{name: "language with script",
			members: `"language": "zh-Hant-TW"`,
			want:    maps.RouteRequest{Waypoints: two, TravelMode: "driving", RouteOutputOptions: path, Language: "zh-Hant-TW"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n
			if n == 0 {
				n = 2
			}
			r, err := decodeRoute(routeFields(t, tt.members, n))
			if err != nil {
				t.Fatalf("decode: %v (code %s)", err, worker.CodeOf(err))
			}
			if !reflect.DeepEqual(*r, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *r, tt.want)
			}
		})
	}
}

// Every route option refuses what the service would, before any call,
// with the package's codes.
func TestDecodeRouteOptionsInvalid(t *testing.T) {
	tests := []struct {
		name, members string
		n             int
		code, field   string // field: the message names it
	}{
		{"avoid not an array", `"avoid": "tollRoads"`, 2, codeWrongType, "avoid"},
		{"avoid of numbers", `"avoid": [1]`, 2, codeWrongType, "avoid[0]"},
		{"avoid unknown", `"avoid": ["tolls"]`, 2, codeInvalidValue, "tolls"},
		{"avoid carpools, which only Route Range takes", `"avoid": ["carpools"]`, 2, codeInvalidValue, "carpools"},
		{"avoid in another case", `"avoid": ["TollRoads"]`, 2, codeInvalidValue, "TollRoads"},
		{"avoid, walking", `"travelMode": "walking", "avoid": ["tollRoads"]`, 2, codeConflicting, "walking"},
		{"avoid tunnels, driving", `"avoid": ["tunnels"]`, 2, codeConflicting, "tunnels"},
		{"avoid lowEmissionZones, driving", `"avoid": ["lowEmissionZones"]`, 2, codeConflicting, "lowEmissionZones"},
		{"avoid unpavedRoads, walking", `"travelMode": "walking", "avoid": ["unpavedRoads"]`, 2, codeConflicting, "unpavedRoads"},

		{"vehicleSpec, driving", `"vehicleSpec": {"height": 4}`, 2, codeConflicting, "vehicleSpec"},
		{"vehicleSpec, walking", `"travelMode": "walking", "vehicleSpec": {}`, 2, codeConflicting, "vehicleSpec"},
		{"vehicleSpec an array", `"travelMode": "truck", "vehicleSpec": [4]`, 2, codeWrongType, "vehicleSpec"},
		{"vehicleSpec misspelt", `"travelMode": "truck", "vehicleSpec": {"heigth": 4}`, 2, codeInvalidValue, "heigth"},
		{"vehicleSpec with the SDK's name", `"travelMode": "truck", "vehicleSpec": {"heightInMeters": 4}`, 2, codeInvalidValue, "heightInMeters"},
		{"height negative", `"travelMode": "truck", "vehicleSpec": {"height": -0.1}`, 2, codeOutOfRange, "vehicleSpec.height"},
		{"length too long", `"travelMode": "truck", "vehicleSpec": {"length": 1000000.5}`, 2, codeOutOfRange, "vehicleSpec.length"},
		{"width a string", `"travelMode": "truck", "vehicleSpec": {"width": "2.5"}`, 2, codeWrongType, "vehicleSpec.width"},
		{"width overflowing", `"travelMode": "truck", "vehicleSpec": {"width": 1e999}`, 2, codeOutOfRange, "vehicleSpec.width"},
		{"weight fractional", `"travelMode": "truck", "vehicleSpec": {"weight": 1.5}`, 2, codeWrongType, "vehicleSpec.weight"},
		{"weight too heavy", `"travelMode": "truck", "vehicleSpec": {"weight": 1000001}`, 2, codeOutOfRange, "vehicleSpec.weight"},
		{"maxSpeed 251", `"travelMode": "truck", "vehicleSpec": {"maxSpeed": 251}`, 2, codeOutOfRange, "vehicleSpec.maxSpeed"},
		{"axleWeight negative", `"travelMode": "truck", "vehicleSpec": {"axleWeight": -1}`, 2, codeOutOfRange, "vehicleSpec.axleWeight"},
		{"axleCount negative", `"travelMode": "truck", "vehicleSpec": {"axleCount": -2}`, 2, codeOutOfRange, "vehicleSpec.axleCount"},
		{"isVehicleCommercial a string", `"travelMode": "truck", "vehicleSpec": {"isVehicleCommercial": "yes"}`, 2, codeWrongType, "isVehicleCommercial"},
		{"loadType a string", `"travelMode": "truck", "vehicleSpec": {"loadType": "USHazmatClass3"}`, 2, codeWrongType, "loadType"},
		{"loadType unknown", `"travelMode": "truck", "vehicleSpec": {"loadType": ["USHazmatClass10"]}`, 2, codeInvalidValue, "USHazmatClass10"},
		{"adrTunnelRestrictionCode A", `"travelMode": "truck", "vehicleSpec": {"adrTunnelRestrictionCode": "A"}`, 2, codeInvalidValue, "adrTunnelRestrictionCode"},
		{"adrTunnelRestrictionCode lower case", `"travelMode": "truck", "vehicleSpec": {"adrTunnelRestrictionCode": "b"}`, 2, codeInvalidValue, "adrTunnelRestrictionCode"},

		{"arriveAt and departAt", `"departAt": "2026-12-01T08:00:00Z", "arriveAt": "2026-12-01T09:00:00Z"`, 2, codeConflicting, "arriveAt"},
		{"arriveAt not a date", `"arriveAt": "tomorrow at nine"`, 2, codeInvalidValue, "arriveAt"},
		{"arriveAt a number", `"arriveAt": 1796112000`, 2, codeWrongType, "arriveAt"},

		{"maxRouteCount 0", `"maxRouteCount": 0`, 2, codeOutOfRange, "maxRouteCount"},
		{"maxRouteCount 4", `"maxRouteCount": 4`, 2, codeOutOfRange, "maxRouteCount"},
		{"maxRouteCount 2.5", `"maxRouteCount": 2.5`, 2, codeWrongType, "maxRouteCount"},
		{"maxRouteCount a string", `"maxRouteCount": "2"`, 2, codeWrongType, "maxRouteCount"},
		{"maxRouteCount, walking", `"travelMode": "walking", "maxRouteCount": 2`, 2, codeConflicting, "walking"},
		{"maxRouteCount, driving with three stops", `"maxRouteCount": 2`, 5, codeConflicting, "maxRouteCount"},
		{"maxRouteCount, driving with avoid", `"maxRouteCount": 3, "avoid": ["tollRoads"]`, 2, codeConflicting, "avoid"},

		{"routeOutputOptions a string", `"routeOutputOptions": "routePath"`, 2, codeWrongType, "routeOutputOptions"},
		{"routeOutputOptions unknown", `"routeOutputOptions": ["instructions"]`, 2, codeInvalidValue, "instructions"},
		{"regionTravelSummary, truck", `"travelMode": "truck", "routeOutputOptions": ["regionTravelSummary"]`, 2, codeConflicting, "regionTravelSummary"},

		{"heading 360", `"heading": 360`, 2, codeOutOfRange, "heading"},
		{"heading negative", `"heading": -1`, 2, codeOutOfRange, "heading"},
		{"heading fractional", `"heading": 90.5`, 2, codeWrongType, "heading"},
		{"heading a string", `"heading": "north"`, 2, codeWrongType, "heading"},

		{"optimizeWaypointOrder, driving", `"optimizeWaypointOrder": true`, 4, codeConflicting, "optimizeWaypointOrder"},
		{"optimizeWaypointOrder, walking", `"travelMode": "walking", "optimizeWaypointOrder": true`, 4, codeConflicting, "optimizeWaypointOrder"},
		{"optimizeWaypointOrder a string", `"travelMode": "truck", "optimizeWaypointOrder": "true"`, 4, codeWrongType, "optimizeWaypointOrder"},

		{"viaWaypoint first", wps("vww"), 0, codeInvalidValue, "waypoints[0]"},
		{"viaWaypoint last", wps("wwv"), 0, codeInvalidValue, "waypoints[2]"},
		{"viaWaypoint, truck", `"travelMode": "truck", ` + wps("wvw"), 0, codeConflicting, "truck"},
		{"eleven viaWaypoints in a row", wps("w" + strings.Repeat("v", 11) + "w"), 0, codeTooManyPoints, "waypoints[11]"},
		{"one waypoint and viaWaypoints", wps("wv"), 0, codeInvalidValue, "waypoints[1]"},
		{"pointType unknown", `"waypoints": [{"lat": 1, "lon": 2}, {"lat": 1, "lon": 3, "pointType": "stop"}]`, 0, codeInvalidValue, "stop"},
		{"pointType a number", `"waypoints": [{"lat": 1, "lon": 2}, {"lat": 1, "lon": 3, "pointType": 1}]`, 0, codeWrongType, "waypoints[1].pointType"},
		{"26 waypoints with viaWaypoints", wps("w" + strings.Repeat("vw", 25)), 0, codeTooManyPoints, "26"},

		{"language empty", `"language": ""`, 2, codeInvalidValue, "language"},
		{"language of one letter", `"language": "e"`, 2, codeInvalidValue, "language"},
		{"language with an underscore", `"language": "en_US"`, 2, codeInvalidValue, "language"},
		{"language with an empty subtag", `"language": "en--US"`, 2, codeInvalidValue, "language"},
		{"language a list", `"language": "de-DE,de;q=0.9"`, 2, codeInvalidValue, "language"},
		{"language a number", `"language": 7`, 2, codeWrongType, "language"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRoute(routeFields(t, tt.members, tt.n))
			if err == nil {
				t.Fatal("decoded")
			}
			if code := worker.CodeOf(err); code != tt.code || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q (code %s), want code %s naming %q", err, code, tt.code, tt.field)
			}
		})
	}
}

// decodeRouteOptions is the part the route matrix shares: it takes the
// travel mode decided elsewhere.
func TestDecodeRouteOptionsShared(t *testing.T) {
	f := routeFields(t, `"departAt": "2026-12-01T08:00:00Z", "avoid": ["tollRoads", "unpavedRoads"], "vehicleSpec": {"weight": 12000, "axleCount": 3}`, 2)
	o, err := decodeRouteOptions(f, "truck")
	want := maps.RouteOptions{DepartAt: "2026-12-01T08:00:00Z", Avoid: []string{"tollRoads", "unpavedRoads"},
		VehicleSpec: &maps.VehicleSpec{Weight: 12000, AxleCount: 3}}
	if err != nil || !reflect.DeepEqual(o, want) {
		t.Errorf("truck: %+v, %v; want %+v", o, err, want)
	}
	for mode, code := range map[string]string{"driving": codeConflicting, "walking": codeConflicting} {
		if _, err := decodeRouteOptions(f, mode); worker.CodeOf(err) != code {
			t.Errorf("%s: %v, want %s", mode, err, code)
		}
	}
}

// The summary of an answer with alternatives lists each route, the best
// first and at the top as before.
func TestRouteSummaryAlternatives(t *testing.T) {
	routePath := func(m, s float64, traffic string) string {
		p := fmt.Sprintf(`{"type":"Feature","geometry":{"type":"MultiLineString","coordinates":[]},"properties":{"type":"RoutePath","distanceInMeters":%v,"durationInSeconds":%v`, m, s)
		if traffic != "" {
			p += `,"durationTrafficInSeconds":` + traffic
		}
		return p + `,"departureAt":"2026-12-01T07:40:00+00:00","arrivalAt":"2026-12-01T08:00:00+00:00"}}`
	}
	body := `{"type":"FeatureCollection","features":[` + routePath(6500, 487, "535") + `],"alternativeRoutes":[` +
		`{"type":"FeatureCollection","features":[` + routePath(7100, 542, "") + `]},` +
		`{"type":"FeatureCollection","features":[` + routePath(8000.5, 600, "610") + `]}]}`
	s, err := summarizeRoute([]byte(body), false)
	if err != nil {
		t.Fatal(err)
	}
	want := &RouteSummary{DistanceInMeters: 6500, DurationInSeconds: 487, DurationTrafficInSeconds: ptr(535), Routes: []RouteTotals{
		{DistanceInMeters: 6500, DurationInSeconds: 487, DurationTrafficInSeconds: ptr(535)},
		{DistanceInMeters: 7100, DurationInSeconds: 542},
		{DistanceInMeters: 8000.5, DurationInSeconds: 600, DurationTrafficInSeconds: ptr(610)},
	}}
	if !reflect.DeepEqual(s, want) {
		got, _ := json.Marshal(s)
		t.Fatalf("summary %s", got)
	}
	got, _ := json.Marshal(s)
	const wantJSON = `{"distanceInMeters":6500,"durationInSeconds":487,"durationTrafficInSeconds":535,"routes":[` +
		`{"distanceInMeters":6500,"durationInSeconds":487,"durationTrafficInSeconds":535},` +
		`{"distanceInMeters":7100,"durationInSeconds":542},` +
		`{"distanceInMeters":8000.5,"durationInSeconds":600,"durationTrafficInSeconds":610}]}`
	if string(got) != wantJSON {
		t.Errorf("JSON %s\nwant %s", got, wantJSON)
	}
	line := DescribeSummary(KindRoute, got)
	if want := "6.5 km, 8m7s (8m55s with traffic); 2 alternatives: 7.1 km, 9m2s; 8.0 km, 10m0s (10m10s with traffic)"; line != want {
		t.Errorf("describe %q\nwant     %q", line, want)
	}

	// With arriveAt the summary says when to leave.
	s, err = summarizeRoute([]byte(`{"type":"FeatureCollection","features":[`+routePath(6500, 487, "")+`]}`), true)
	if err != nil || s.DepartureAt != "2026-12-01T07:40:00+00:00" || s.ArrivalAt != "2026-12-01T08:00:00+00:00" || s.Routes != nil {
		t.Errorf("arriveAt summary %+v, %v", s, err)
	}
	got, _ = json.Marshal(s)
	if line, want := DescribeSummary(KindRoute, got), "6.5 km, 8m7s, leave at 2026-12-01T07:40:00+00:00"; line != want {
		t.Errorf("describe %q, want %q", line, want)
	}

	// An answer whose alternatives are not what they claim is unreadable.
	for _, bad := range []string{
		`{"type":"FeatureCollection","features":[` + routePath(1, 1, "") + `],"alternativeRoutes":[{"type":"Feature"}]}`,
		`{"type":"FeatureCollection","features":[],"alternativeRoutes":[]}`,
		`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"type":"RoutePath"}}]}`,
	} {
		if s, err := summarizeRoute([]byte(bad), false); err == nil {
			t.Errorf("%s: summary %+v", bad, s)
		}
	}
}

// emulatorHandler returns a handler whose Maps client calls the emulator s,
// batching when batch is set; record, if not nil, gets each Maps request's
// Accept-Language and body.
func emulatorHandler(t *testing.T, s *mapstest.Server, batch bool, limits map[string]int) *Handler {
	t.Helper()
	return NewHandler(emulatorClient(t, s, limits), &HandlerOptions{Batch: batch})
}

type mapsCall struct {
	path, language string
	body           []byte
}

// recordCalls records every Maps request the emulator s receives.
func recordCalls(t *testing.T, s *mapstest.Server) func() []mapsCall {
	var mu sync.Mutex
	var calls []mapsCall
	s.SetHandlerHook(func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		mu.Lock()
		calls = append(calls, mapsCall{r.URL.Path, r.Header.Get("Accept-Language"), b})
		mu.Unlock()
	})
	t.Cleanup(func() { s.SetHandlerHook(nil) })
	return func() []mapsCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]mapsCall(nil), calls...)
	}
}

func runRoute(t *testing.T, h *Handler, request string) (*RouteSummary, []byte) {
	t.Helper()
	task, err := h.Decode([]byte(request), testMessageID)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	out, err := task.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out.Summary.(*RouteSummary), out.Response
}

// A truck route with its vehicleSpec and avoid reaches the emulator as
// the service takes it, and succeeds.
func TestTruckRouteEndToEnd(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	calls := recordCalls(t, s)
	h := emulatorHandler(t, s, false, nil)
	sum, resp := runRoute(t, h, `{"id": "truck-3", "kind": "route", "travelMode": "truck", "optimizeRoute": "fastestWithTraffic",
		"waypoints": [{"lat": 47.6303, "lon": -122.1387}, {"lat": 47.2529, "lon": -122.4443}, {"lat": 47.6101, "lon": -122.2015}, {"lat": 45.5152, "lon": -122.6784}],
		"avoid": ["tollRoads", "tunnels", "unpavedRoads"], "optimizeWaypointOrder": true, "heading": 90,
		"vehicleSpec": {"isVehicleCommercial": true, "length": 16.5, "width": 2.55, "height": 4.1, "weight": 36000,
			"axleWeight": 9000, "axleCount": 5, "maxSpeed": 88, "loadType": ["USHazmatClass3"], "adrTunnelRestrictionCode": "D"},
		"routeOutputOptions": ["itinerary"], "language": "fr-FR", "departAt": "2026-12-01T06:00:00-08:00"}`)
	if sum.DistanceInMeters < 200000 || sum.DurationInSeconds <= 0 || sum.Routes != nil {
		t.Errorf("summary %+v", sum)
	}
	c := calls()
	if len(c) != 1 || c[0].path != "/route/directions" || c[0].language != "fr-FR" {
		t.Fatalf("calls %+v", c)
	}
	var sent struct {
		TravelMode            string
		Avoid                 []string
		VehicleSpec           map[string]any
		RouteOutputOptions    []string
		OptimizeWaypointOrder bool
		Heading               *int
	}
	if err := json.Unmarshal(c[0].body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent.TravelMode != "truck" || len(sent.Avoid) != 3 || sent.VehicleSpec["height"] != 4.1 || sent.VehicleSpec["adrTunnelRestrictionCode"] != "D" ||
		!sent.OptimizeWaypointOrder || sent.Heading == nil || *sent.Heading != 90 || fmt.Sprint(sent.RouteOutputOptions) != "[itinerary routeSummary]" {
		t.Errorf("sent %s", c[0].body)
	}
	// The answer has the French itinerary and the optimized order.
	if !strings.Contains(string(resp), "Prendre la direction") || !strings.Contains(string(resp), `"optimizedWaypoints"`) {
		t.Errorf("answer %.300s", resp)
	}
}

// A driving route with alternatives: the summary lists each, and
// DescribeSummary shows them; as a batch item too.
func TestRouteAlternativesEndToEnd(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := emulatorHandler(t, s, false, nil)
	const req = `{"id": "trip-9", "kind": "route", "maxRouteCount": 3, "optimizeRoute": "fastestWithTraffic",
		"waypoints": [{"lat": 47.6303, "lon": -122.1387}, {"lat": 47.6101, "lon": -122.2015}], "routeOutputOptions": ["routeSummary"]}`
	sum, _ := runRoute(t, h, req)
	if len(sum.Routes) != 3 || sum.Routes[0].DistanceInMeters != sum.DistanceInMeters ||
		!(sum.Routes[0].DistanceInMeters < sum.Routes[1].DistanceInMeters && sum.Routes[1].DistanceInMeters < sum.Routes[2].DistanceInMeters) {
		t.Fatalf("summary %+v", sum)
	}
	js, _ := json.Marshal(sum)
	if line := DescribeSummary(KindRoute, js); !strings.Contains(line, "; 2 alternatives: ") || strings.Count(line, " km, ") != 3 {
		t.Errorf("describe %q", line)
	}

	// The batch endpoint's items carry their alternatives the same way.
	c := emulatorClient(t, s, nil)
	r, err := decodeRoute(routeFields(t, `"maxRouteCount": 2`, 2))
	if err != nil {
		t.Fatal(err)
	}
	br, err := c.RouteDirectionsBatch(context.Background(), []maps.RouteRequest{*r, *r})
	if err != nil || len(br.Items) != 2 || br.Items[1].Err != nil {
		t.Fatalf("batch %+v, %v", br, err)
	}
	bs, err := summarizeRoute(br.Items[1].Body, false)
	if err != nil || len(bs.Routes) != 2 {
		t.Errorf("batch item summary %+v, %v", bs, err)
	}
}

// Whatever routeOutputOptions asks for, the summary is there.
func TestRouteSummaryWhateverIsAsked(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := emulatorHandler(t, s, false, nil)
	for _, outputs := range []string{`null`, `[]`, `["itinerary"]`, `["routePath"]`, `["routeSummary"]`, `["regionTravelSummary"]`, `["itinerary", "regionTravelSummary", "routePath"]`} {
		sum, _ := runRoute(t, h, `{"kind": "route", "routeOutputOptions": `+outputs+`, "waypoints": [{"lat": 47.6303, "lon": -122.1387}, {"lat": 47.6101, "lon": -122.2015}]}`)
		if sum.DistanceInMeters < 5000 || sum.DurationInSeconds <= 0 {
			t.Errorf("%s: summary %+v", outputs, sum)
		}
	}
	// arriveAt: the summary says when to leave.
	sum, _ := runRoute(t, h, `{"kind": "route", "arriveAt": "2026-12-01T09:00:00Z", "waypoints": [{"lat": 47.6303, "lon": -122.1387}, {"lat": 47.6101, "lon": -122.2015}]}`)
	if sum.ArrivalAt != "2026-12-01T09:00:00+00:00" || sum.DepartureAt == "" || sum.DepartureAt >= sum.ArrivalAt {
		t.Errorf("arriveAt summary %+v", sum)
	}
}

// Under backlog, route requests in different languages gather into batches
// of their own language: a batch call has one Accept-Language.
func TestRouteBatchesKeepLanguagesApart(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetRateLimit(mapstest.APIRoute, 2)
	calls := recordCalls(t, s)
	h := emulatorHandler(t, s, true, map[string]int{maps.APIRoute: 2, maps.APIRouteBatch: 10})
	langs := []string{"", "de-DE", "fr-FR"}
	const n = 30
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		lang := langs[i%len(langs)]
		req := fmt.Sprintf(`{"id": "r%d", "kind": "route", "routeOutputOptions": ["itinerary"], "waypoints": [{"lat": 47.6, "lon": %v}, {"lat": 47.7, "lon": -122.2}]`, i, -122.0-float64(i)/1000)
		if lang != "" {
			req += `, "language": "` + lang + `"`
		}
		task, err := h.Decode([]byte(req+"}"), "m")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			out, err := task.Run(context.Background())
			if err == nil {
				want := map[string]string{"": "Arrive at your destination", "de-DE": "Sie haben Ihr Ziel erreicht", "fr-FR": "Vous êtes arrivé à destination"}[lang]
				if !strings.Contains(string(out.Response), want) {
					err = fmt.Errorf("answer not in %q: %.200s", lang, out.Response)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("r%d: %v", i, err)
		}
	}
	batches := 0
	for _, c := range calls() {
		if c.path != "/route/directions:batch" {
			continue
		}
		batches++
		var b struct{ BatchItems []json.RawMessage }
		if err := json.Unmarshal(c.body, &b); err != nil {
			t.Fatal(err)
		}
		t.Logf("batch of %d in %q", len(b.BatchItems), c.language)
	}
	if batches == 0 {
		t.Errorf("no batch call: %d calls", len(calls()))
	}
}
