package maps

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A route request with every 2025-01-01 option reaches the service as the
// spec names them, in single and batch calls, and language as the
// Accept-Language header.
func TestRouteOptionsBody(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		if strings.HasSuffix(r.path, ":batch") {
			io.WriteString(w, `{"summary":{"successfulRequests":2,"totalRequests":2},"batchItems":[{"optionalId":"0","type":"FeatureCollection","features":[]},{"optionalId":"1","type":"FeatureCollection","features":[]}]}`)
			return
		}
		io.WriteString(w, `{"type":"FeatureCollection","features":[]}`)
	})
	c := rec.bearerClient(t)
	ctx := context.Background()
	heading := 0
	truck := RouteRequest{
		Waypoints:     []Position{{Lat: 47.6, Lon: -122.1}, {Lat: 47.65, Lon: -122.15}, {Lat: 47.7, Lon: -122.2}},
		TravelMode:    "truck",
		OptimizeRoute: "fastestWithTraffic",
		RouteOptions: RouteOptions{
			ArriveAt: "2026-12-01T08:00:00Z",
			Avoid:    []string{"tollRoads", "tunnels"},
			VehicleSpec: &VehicleSpec{
				IsVehicleCommercial: true, Length: 16.5, Width: 2.55, Height: 4.1, Weight: 40000,
				MaxSpeed: 90, AxleWeight: 10000, AxleCount: 5,
				LoadType: []string{"USHazmatClass3"}, AdrTunnelRestrictionCode: "D",
			},
		},
		RouteOutputOptions:    []string{"routePath", "itinerary"},
		MaxRouteCount:         2,
		Heading:               &heading,
		OptimizeWaypointOrder: true,
		Language:              "de-DE",
	}
	const truckJSON = `{"type":"FeatureCollection","features":[
		{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.1,47.6]},"properties":{"pointIndex":0,"pointType":"waypoint"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.15,47.65]},"properties":{"pointIndex":1,"pointType":"waypoint"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[-122.2,47.7]},"properties":{"pointIndex":2,"pointType":"waypoint"}}],
		"travelMode":"truck","optimizeRoute":"fastestWithTraffic","arriveAt":"2026-12-01T08:00:00Z",
		"avoid":["tollRoads","tunnels"],
		"vehicleSpec":{"isVehicleCommercial":true,"length":16.5,"width":2.55,"height":4.1,"weight":40000,
			"maxSpeed":90,"axleWeight":10000,"axleCount":5,"loadType":["USHazmatClass3"],"adrTunnelRestrictionCode":"D"},
		"routeOutputOptions":["routePath","itinerary"],"maxRouteCount":2,"heading":0,"optimizeWaypointOrder":true`
	via := RouteRequest{
		Waypoints: []Position{{Lat: 1, Lon: 2}, {Lat: 3, Lon: 4}, {Lat: 5, Lon: 6}},
		Via:       []bool{false, true},
		Language:  "de-DE",
	}
	const viaJSON = `{"type":"FeatureCollection","features":[
		{"type":"Feature","geometry":{"type":"Point","coordinates":[2,1]},"properties":{"pointIndex":0,"pointType":"waypoint"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[4,3]},"properties":{"pointIndex":1,"pointType":"viaWaypoint"}},
		{"type":"Feature","geometry":{"type":"Point","coordinates":[6,5]},"properties":{"pointIndex":2,"pointType":"waypoint"}}]`

	if _, err := c.RouteDirections(ctx, truck); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RouteDirections(ctx, via); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RouteDirectionsBatch(ctx, []RouteRequest{truck, via}); err != nil {
		t.Fatal(err)
	}
	// Unset options are not sent: the service's defaults apply.
	if _, err := c.RouteDirections(ctx, RouteRequest{Waypoints: via.Waypoints}); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	jsonEqual(t, reqs[0].body, truckJSON+`}`)
	jsonEqual(t, reqs[1].body, viaJSON+`}`)
	jsonEqual(t, reqs[2].body, `{"batchItems":[`+truckJSON+`,"optionalId":"0"},`+viaJSON+`,"optionalId":"1"}]}`)
	jsonEqual(t, reqs[3].body, strings.ReplaceAll(viaJSON, `"viaWaypoint"`, `"waypoint"`)+`}`)
	for i, want := range []string{"de-DE", "de-DE", "de-DE", ""} {
		if got := reqs[i].header.Get("Accept-Language"); got != want {
			t.Errorf("request %d: Accept-Language %q, want %q", i, got, want)
		}
	}
}

// A batch call has one Accept-Language: items asking for different
// languages are refused before anything is sent.
func TestRouteBatchMixedLanguages(t *testing.T) {
	rec := newRecorder(t, nil)
	c := rec.bearerClient(t)
	wps := []Position{{Lat: 1, Lon: 2}, {Lat: 3, Lon: 4}}
	_, err := c.RouteDirectionsBatch(context.Background(), []RouteRequest{
		{Waypoints: wps, Language: "de-DE"}, {Waypoints: wps, Language: "fr-FR"},
	})
	if !errors.Is(err, ErrMixedLanguages) {
		t.Errorf("error %v, want ErrMixedLanguages", err)
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}
