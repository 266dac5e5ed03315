package mapstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const routePath = "/route/directions?api-version=2025-01-01"

// routeBody is a Route Directions body through points ("lon,lat" or
// "via:lon,lat"), with extra members (JSON, without braces) after them.
func routeBody(extra string, points ...string) string {
	fs := make([]string, len(points))
	for i, p := range points {
		typ := "waypoint"
		if c, ok := strings.CutPrefix(p, "via:"); ok {
			typ, p = "viaWaypoint", c
		}
		fs[i] = fmt.Sprintf(`{"type":"Feature","geometry":{"type":"Point","coordinates":[%s]},"properties":{"pointIndex":%d,"pointType":%q}}`, p, i, typ)
	}
	b := `{"type":"FeatureCollection","features":[` + strings.Join(fs, ",") + `]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

var (
	two  = []string{"-122.14,47.63", "-122.20,47.61"}
	five = []string{"-122.14,47.63", "-122.16,47.62", "-122.17,47.62", "-122.18,47.61", "-122.20,47.61"}
)

// Every option is checked as the 2025-01-01 spec states it, and refused
// with the service's 400 error shape.
func TestRouteOptionChecks(t *testing.T) {
	s := newServer(t, nil)
	truckSpec := func(spec string) string { return `"travelMode":"truck","vehicleSpec":{` + spec + `}` }
	tests := []struct {
		name, body, msg string
	}{
		{"avoid unknown", routeBody(`"avoid":["carpools"]`, two...), "'carpools' is not valid for avoid"},
		{"avoid walking", routeBody(`"travelMode":"walking","avoid":["tollRoads"]`, two...), "only supported for driving and truck"},
		{"avoid tunnels driving", routeBody(`"avoid":["tunnels"]`, two...), "only supported for truck"},
		{"avoid lowEmissionZones driving", routeBody(`"avoid":["lowEmissionZones"]`, two...), "only supported for truck"},
		{"avoid unpavedRoads driving", routeBody(`"avoid":["unpavedRoads"]`, two...), "only supported for truck"},
		{"avoid not an array", routeBody(`"avoid":"tollRoads"`, two...), "invalid"},
		{"vehicleSpec driving", routeBody(`"vehicleSpec":{"height":4}`, two...), "only supported for truck"},
		{"vehicleSpec walking", routeBody(`"travelMode":"walking","vehicleSpec":{}`, two...), "only supported for truck"},
		{"height negative", routeBody(truckSpec(`"height":-1`), two...), "vehicleSpec.height"},
		{"length too long", routeBody(truckSpec(`"length":1000001`), two...), "vehicleSpec.length"},
		{"width too wide", routeBody(truckSpec(`"width":1e7`), two...), "vehicleSpec.width"},
		{"weight too heavy", routeBody(truckSpec(`"weight":1000001`), two...), "vehicleSpec.weight"},
		{"weight fractional", routeBody(truckSpec(`"weight":1.5`), two...), "invalid"},
		{"maxSpeed 251", routeBody(truckSpec(`"maxSpeed":251`), two...), "vehicleSpec.maxSpeed"},
		{"axleWeight negative", routeBody(truckSpec(`"axleWeight":-5`), two...), "vehicleSpec.axleWeight"},
		{"axleCount negative", routeBody(truckSpec(`"axleCount":-1`), two...), "vehicleSpec.axleCount"},
		{"loadType unknown", routeBody(truckSpec(`"loadType":["USHazmatClass10"]`), two...), "vehicleSpec.loadType"},
		{"adr code A", routeBody(truckSpec(`"adrTunnelRestrictionCode":"A"`), two...), "adrTunnelRestrictionCode"},
		{"departAt and arriveAt", routeBody(`"departAt":"2026-12-01T08:00:00Z","arriveAt":"2026-12-01T09:00:00Z"`, two...), "departAt and arriveAt"},
		{"arriveAt not a time", routeBody(`"arriveAt":"soon"`, two...), "arriveAt must be"},
		{"maxRouteCount 0", routeBody(`"maxRouteCount":0`, two...), "between 1 and 3"},
		{"maxRouteCount 4", routeBody(`"maxRouteCount":4`, two...), "between 1 and 3"},
		{"maxRouteCount walking", routeBody(`"travelMode":"walking","maxRouteCount":2`, two...), "driving and truck"},
		{"maxRouteCount driving, 5 waypoints", routeBody(`"maxRouteCount":2`, five...), "at most 2 waypoints besides"},
		{"maxRouteCount driving with avoid", routeBody(`"maxRouteCount":2,"avoid":["ferries"]`, two...), "cannot be used with avoid"},
		{"routeOutputOptions unknown", routeBody(`"routeOutputOptions":["instructions"]`, two...), "routeOutputOptions"},
		{"regionTravelSummary truck", routeBody(`"travelMode":"truck","routeOutputOptions":["regionTravelSummary"]`, two...), "regionTravelSummary"},
		{"heading 360", routeBody(`"heading":360`, two...), "between 0 and 359"},
		{"heading negative", routeBody(`"heading":-1`, two...), "between 0 and 359"},
		{"optimizeWaypointOrder driving", routeBody(`"optimizeWaypointOrder":true`, five...), "only supported for truck"},
		{"optimizeRoute unknown", routeBody(`"optimizeRoute":"fastest"`, two...), "optimizeRoute"},
		{"fastestWithTraffic walking", routeBody(`"travelMode":"walking","optimizeRoute":"fastestWithTraffic"`, two...), "driving and truck"},
		{"fastestAvoidClosureWithoutTraffic truck", routeBody(`"travelMode":"truck","optimizeRoute":"fastestAvoidClosureWithoutTraffic"`, two...), "driving"},
		{"via first", routeBody("", "via:-122.1,47.6", two[0], two[1]), "first and last"},
		{"via last", routeBody("", two[0], two[1], "via:-122.1,47.6"), "first and last"},
		{"via truck", routeBody(`"travelMode":"truck"`, two[0], "via:-122.1,47.6", two[1]), "not supported for truck"},
		{"11 vias in a row", routeBody("", append(append([]string{two[0]}, strings.Split(strings.Repeat("via:-122.1,47.6 ", 11), " ")[:11]...), two[1])...), "At most 10 viaWaypoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, s, "POST", routePath, bearer(s), tt.body)
			if a.status != 400 {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			code, msg := a.errorCode(t)
			if code != "400 BadRequest" || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q %q, want 400 BadRequest and %q", code, msg, tt.msg)
			}
		})
	}
	// The edges that are not errors.
	vias := strings.Split(strings.Repeat("via:-122.1,47.6 ", 10), " ")[:10]
	for _, ok := range []struct{ name, body string }{
		{"every option of a truck", routeBody(`"travelMode":"truck","optimizeRoute":"fastestWithTraffic","arriveAt":"2026-12-01T08:00:00-08:00",
			"avoid":["limitedAccessHighways","tollRoads","ferries","tunnels","borderCrossings","lowEmissionZones","unpavedRoads"],
			"vehicleSpec":{"isVehicleCommercial":true,"length":1000000,"width":0,"height":4.1,"weight":1000000,"maxSpeed":250,"axleWeight":0,"axleCount":5,
				"loadType":["USHazmatClass1","USHazmatClass9","otherHazmatExplosive","otherHazmatGeneral","otherHazmatHarmfulToWater"],"adrTunnelRestrictionCode":"E"},
			"routeOutputOptions":["routeSummary","routePath","itinerary"],"maxRouteCount":3,"heading":359,"optimizeWaypointOrder":true`, five...)},
		{"driving alternatives with 2 stops", routeBody(`"maxRouteCount":3`, five[:4]...)},
		{"driving avoid without alternatives", routeBody(`"maxRouteCount":1,"avoid":["tollRoads","ferries","limitedAccessHighways","borderCrossings"]`, five...)},
		{"10 vias in a row, walking", routeBody(`"travelMode":"walking","routeOutputOptions":["regionTravelSummary"]`, append(append([]string{two[0]}, vias...), two[1])...)},
		{"heading 0", routeBody(`"heading":0`, two...)},
	} {
		if a := call(t, s, "POST", routePath, bearer(s), ok.body); a.status != 200 {
			t.Errorf("%s: %d %s", ok.name, a.status, a.body)
		}
	}
}

func routeFeatures(t *testing.T, doc any) (types []string) {
	t.Helper()
	for _, f := range dig(doc, "features").([]any) {
		typ, _ := dig(f, "properties", "type").(string)
		types = append(types, typ)
	}
	return types
}

// The answers have the service's shape for what routeOutputOptions asks.
func TestRouteOutputs(t *testing.T) {
	s := newServer(t, nil)
	ask := func(t *testing.T, h http.Header, body string) map[string]any {
		t.Helper()
		a := call(t, s, "POST", routePath, h, body)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		return a.json(t)
	}
	t.Run("routeSummary alone: the totals, an empty line", func(t *testing.T) {
		doc := ask(t, bearer(s), routeBody(`"routeOutputOptions":["routeSummary"]`, two...))
		want := dig(fixture(t, "RouteDirectionsBatch_2025-01-01_POST_200.json"), "responses", "200", "body", "batchItems", 0)
		if got := routeFeatures(t, doc); fmt.Sprint(got) != "[RoutePath]" {
			t.Fatalf("features %v", got)
		}
		gp := featureOfType(doc, "RoutePath")
		sameShape(t, gp, featureOfType(want, "RoutePath"), [][]any{
			{"geometry", "type"}, {"properties", "distanceInMeters"}, {"properties", "durationInSeconds"}, {"properties", "durationTrafficInSeconds"},
		})
		if n := len(dig(gp, "geometry", "coordinates").([]any)); n != 0 {
			t.Errorf("%d lines", n)
		}
		if dig(gp, "properties", "legs") != nil {
			t.Errorf("legs in a summary-only answer")
		}
	})
	t.Run("itinerary by default, with instructions", func(t *testing.T) {
		doc := ask(t, bearer(s), routeBody("", five[0], five[2], five[4]))
		if got := routeFeatures(t, doc); fmt.Sprint(got) != "[Waypoint ManeuverPoint Waypoint ManeuverPoint Waypoint RoutePath]" {
			t.Fatalf("features %v", got)
		}
		want := fixture(t, "RouteDirections_2025-01-01_POST_200.json")
		wb := dig(want, "responses", "200", "body")
		sameShape(t, featureOfType(doc, "Waypoint"), featureOfType(wb, "Waypoint"), [][]any{
			{"properties", "compassDirection"}, {"properties", "instruction", "text"}, {"properties", "instruction", "formattedText"},
			{"properties", "instruction", "maneuverType"}, {"properties", "sideOfStreet"}, {"properties", "towardsRoadName"},
			{"properties", "steps", 0, "routePathRange", "range", 1}, {"properties", "steps", 0, "names", 0},
		})
		sameShape(t, featureOfType(doc, "ManeuverPoint"), featureOfType(wb, "ManeuverPoint"), [][]any{
			{"geometry", "coordinates", 1}, {"properties", "instruction", "text"}, {"properties", "instruction", "maneuverType"},
			{"properties", "distanceInMeters"}, {"properties", "durationInSeconds"}, {"properties", "routePathPoint", "pointIndex"},
		})
		if m := dig(doc, "features", 0, "properties", "instruction", "maneuverType"); m != "DepartStart" {
			t.Errorf("first maneuver %v", m)
		}
		if m := dig(doc, "features", 4, "properties", "instruction", "maneuverType"); m != "ArriveFinish" {
			t.Errorf("last maneuver %v", m)
		}
		if n := len(dig(featureOfType(doc, "RoutePath"), "geometry", "coordinates").([]any)); n != 0 {
			t.Errorf("a line without routePath")
		}
	})
	t.Run("Accept-Language", func(t *testing.T) {
		h := bearer(s)
		h.Set("Accept-Language", "de-DE")
		doc := ask(t, h, routeBody(`"routeOutputOptions":["itinerary"]`, two...))
		if text := dig(doc, "features", 2, "properties", "instruction", "text"); text != "Sie haben Ihr Ziel erreicht" {
			t.Errorf("German arrival %q", text)
		}
		h.Set("Accept-Language", "xx-YY")
		doc = ask(t, h, routeBody(`"routeOutputOptions":["itinerary"]`, two...))
		if text := dig(doc, "features", 2, "properties", "instruction", "text"); text != "Arrive at your destination" {
			t.Errorf("fallback arrival %q", text)
		}
	})
	t.Run("alternatives", func(t *testing.T) {
		doc := ask(t, bearer(s), routeBody(`"maxRouteCount":3,"routeOutputOptions":["routePath"]`, two...))
		alts, _ := doc["alternativeRoutes"].([]any)
		if len(alts) != 2 {
			t.Fatalf("%d alternative routes, want 2", len(alts))
		}
		best := dig(featureOfType(doc, "RoutePath"), "properties", "distanceInMeters").(float64)
		prev := best
		for i, alt := range alts {
			if dig(alt, "type") != "FeatureCollection" {
				t.Errorf("alternative %d type %v", i, dig(alt, "type"))
			}
			d := dig(featureOfType(alt, "RoutePath"), "properties", "distanceInMeters").(float64)
			if d <= prev {
				t.Errorf("alternative %d is %v m, not longer than %v m", i, d, prev)
			}
			prev = d
		}
		// One route asked for, one given.
		doc = ask(t, bearer(s), routeBody(`"maxRouteCount":1`, two...))
		if _, ok := doc["alternativeRoutes"]; ok {
			t.Errorf("alternativeRoutes without maxRouteCount above 1")
		}
	})
	t.Run("arriveAt", func(t *testing.T) {
		doc := ask(t, bearer(s), routeBody(`"arriveAt":"2026-12-01T09:00:00+01:00","routeOutputOptions":["routeSummary"]`, two...))
		p := dig(featureOfType(doc, "RoutePath"), "properties").(map[string]any)
		if p["arrivalAt"] != "2026-12-01T09:00:00+01:00" || p["departureAt"] == nil || p["departureAt"].(string) >= "2026-12-01T09:00:00+01:00" {
			t.Errorf("departure %v, arrival %v", p["departureAt"], p["arrivalAt"])
		}
	})
	t.Run("regionTravelSummary", func(t *testing.T) {
		doc := ask(t, bearer(s), routeBody(`"routeOutputOptions":["regionTravelSummary"]`, two...))
		r := dig(featureOfType(doc, "RoutePath"), "properties", "legs", 0, "regionTravelSummary")
		if dig(r, "countryRegion", "name") != "United States" || dig(r, "adminDistricts", 0, "longName") != "Washington" || dig(r, "distanceInMeters") == nil {
			t.Errorf("regionTravelSummary %v", r)
		}
	})
	t.Run("optimizeWaypointOrder", func(t *testing.T) {
		// The stops given out of order come back in the order of the road.
		doc := ask(t, bearer(s), routeBody(`"travelMode":"truck","optimizeWaypointOrder":true,"routeOutputOptions":["routePath"]`,
			five[0], five[3], five[1], five[2], five[4]))
		var inputs []string
		for _, w := range dig(featureOfType(doc, "RoutePath"), "properties", "optimizedWaypoints").([]any) {
			inputs = append(inputs, fmt.Sprint(dig(w, "inputIndex")))
		}
		if got := strings.Join(inputs, ","); got != "0,2,3,1,4" {
			t.Errorf("optimized order %s, want 0,2,3,1,4", got)
		}
	})
	t.Run("vehicle maxSpeed slows the truck", func(t *testing.T) {
		dur := func(spec string) float64 {
			doc := ask(t, bearer(s), routeBody(`"travelMode":"truck","routeOutputOptions":["routeSummary"]`+spec, two...))
			return dig(featureOfType(doc, "RoutePath"), "properties", "durationInSeconds").(float64)
		}
		if fast, slow := dur(""), dur(`,"vehicleSpec":{"maxSpeed":20}`); slow <= fast {
			t.Errorf("%v s at 20 km/h, %v s unbounded", slow, fast)
		}
	})
}

// A batch answers each item on its own: a bad option or a body that does
// not parse fails its item inline, the others succeed; one Accept-Language
// serves every item.
func TestRouteBatchItems(t *testing.T) {
	s := newServer(t, nil)
	items := []string{
		strings.TrimSuffix(routeBody(`"maxRouteCount":2,"routeOutputOptions":["itinerary"]`, two...), "}") + `,"optionalId":"alt"}`,
		strings.TrimSuffix(routeBody(`"travelMode":"walking","avoid":["ferries"]`, two...), "}") + `,"optionalId":"walk"}`,
		`{"type":"FeatureCollection","heading":"north","optionalId":"typo"}`,
		strings.TrimSuffix(routeBody(`"travelMode":"truck","vehicleSpec":{"height":4.2,"loadType":["USHazmatClass2"]},"avoid":["tunnels"]`, two...), "}") + `,"optionalId":"truck"}`,
	}
	h := bearer(s)
	h.Set("Accept-Language", "fr-FR")
	a := call(t, s, "POST", "/route/directions:batch?api-version=2025-01-01", h, `{"batchItems":[`+strings.Join(items, ",")+`]}`)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var got struct {
		Summary    struct{ SuccessfulRequests, TotalRequests int }
		BatchItems []struct {
			OptionalID        string `json:"optionalId"`
			Error             *struct{ Code string }
			Features          []json.RawMessage `json:"features"`
			AlternativeRoutes []json.RawMessage `json:"alternativeRoutes"`
		}
	}
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Summary.SuccessfulRequests != 2 || got.Summary.TotalRequests != 4 || len(got.BatchItems) != 4 {
		t.Fatalf("summary %+v, %d items", got.Summary, len(got.BatchItems))
	}
	for i, want := range []struct {
		id   string
		fail bool
	}{{"alt", false}, {"walk", true}, {"typo", true}, {"truck", false}} {
		it := got.BatchItems[i]
		if it.OptionalID != want.id || (it.Error != nil) != want.fail {
			t.Errorf("item %d: id %q, error %+v; want %q, failed %v", i, it.OptionalID, it.Error, want.id, want.fail)
		}
		if it.Error != nil && it.Error.Code != "400 BadRequest" {
			t.Errorf("item %d code %q", i, it.Error.Code)
		}
	}
	if n := len(got.BatchItems[0].AlternativeRoutes); n != 1 {
		t.Errorf("%d alternatives in the batch item", n)
	}
	if !strings.Contains(string(got.BatchItems[0].Features[0]), "Prendre la direction") {
		t.Errorf("French instruction: %s", got.BatchItems[0].Features[0])
	}
}
