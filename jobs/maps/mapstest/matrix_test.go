package mapstest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"mapsworker/jobs/maps/catalog"
)

// matrixRequest builds a Route Matrix body of o origins and d destinations
// near Seattle (or spread over the world when far), with extra members.
func matrixRequest(o, d int, far bool, extra map[string]any) map[string]any {
	pts := func(n, seed int) [][]float64 {
		out := make([][]float64, n)
		for i := range out {
			k := float64(i + seed)
			if far {
				out[i] = []float64{-120 + float64((i*37+seed)%240), -50 + float64((i*13+seed)%120)}
			} else {
				out[i] = []float64{-122.3 + 0.001*k, 47.6 + 0.0005*k}
			}
		}
		return out
	}
	body := map[string]any{
		"type": "FeatureCollection",
		"features": []any{
			map[string]any{"type": "Feature", "geometry": map[string]any{"type": "MultiPoint", "coordinates": pts(o, 0)}, "properties": map[string]any{"pointType": "origins"}},
			map[string]any{"type": "Feature", "geometry": map[string]any{"type": "MultiPoint", "coordinates": pts(d, 7)}, "properties": map[string]any{"pointType": "destinations"}},
		},
	}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// The synchronous answer has the example's shape, key for key: a Feature
// with a null geometry, cells with their indexes, distance, durations and
// times, and the summary.
func TestMatrixShape(t *testing.T) {
	s := newServer(t, nil)
	fx := fixture(t, "RouteMatrix_2025-01-01_POST_200.json")
	req := dig(fx, "parameters", "routeMatrixRequest")
	a := call(t, s, "POST", "/route/matrix?api-version=2025-01-01", bearer(s), req)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/geo+json" {
		t.Errorf("Content-Type %q", ct)
	}
	got, want := a.json(t), dig(fx, "responses", "200", "body")
	sameKeys(t, "answer", got, want, true)
	if dig(got, "geometry") != nil || dig(got, "type") != "Feature" {
		t.Errorf("type %v geometry %v", dig(got, "type"), dig(got, "geometry"))
	}
	sameKeys(t, "properties", dig(got, "properties"), dig(want, "properties"), true)
	sameKeys(t, "cell", dig(got, "properties", "matrix", 0), dig(want, "properties", "matrix", 0), true)
	sameKeys(t, "summary", dig(got, "properties", "summary"), dig(want, "properties", "summary"), true)
	cells := dig(got, "properties", "matrix").([]any)
	if len(cells) != 4 || dig(got, "properties", "summary", "totalCount") != 4.0 || dig(got, "properties", "summary", "successfulCount") != 4.0 {
		t.Fatalf("cells %d, summary %v", len(cells), dig(got, "properties", "summary"))
	}
	// Origin by origin, as the example.
	for i, c := range cells {
		if dig(c, "originIndex") != float64(i/2) || dig(c, "destinationIndex") != float64(i%2) {
			t.Errorf("cell %d is %v→%v", i, dig(c, "originIndex"), dig(c, "destinationIndex"))
		}
	}
	// Milan to Munich by truck: about the example's 492 km.
	if d := dig(cells[0], "distanceInMeters").(float64); d < 350_000 || d > 650_000 {
		t.Errorf("Milan→Munich %v m", d)
	}
	if dig(cells[0], "departureAt") != "2022-12-19T16:39:57+01:00" {
		t.Errorf("departureAt %v, want the request's departAt", dig(cells[0], "departureAt"))
	}
	// Same request, same bytes.
	if b := call(t, s, "POST", "/route/matrix?api-version=2025-01-01", bearer(s), req); string(b.body) != string(a.body) {
		t.Error("the same matrix answered twice differently")
	}
}

// The sync and async APIs hold requests to their documented rows of
// limits; the rows with a bounding box answer cells outside it
// OUT_OF_REGION, cell by cell.
func TestMatrixLimits(t *testing.T) {
	s := newServer(t, nil)
	h := bearer(s)
	live := map[string]any{"traffic": "live", "departAt": "2026-12-01T08:00:00Z"}
	tests := []struct {
		name       string
		async      bool
		o, d       int
		far        bool
		extra      map[string]any
		wantStatus int
		wantFailed int // cells OUT_OF_REGION; -1: some
	}{
		{"sync 10x10 far apart", false, 10, 10, true, live, 200, 0},
		{"sync 2500 plain far apart", false, 50, 50, true, nil, 200, 0},
		{"sync 2500 plain truck", false, 50, 50, false, map[string]any{"travelMode": "truck"}, 200, 0},
		{"sync 2501 plain", false, 41, 61, false, nil, 400, 0},
		{"sync 1001 origins", false, 1001, 2, false, nil, 400, 0},
		{"sync 200 live nearby", false, 10, 20, false, live, 200, 0},
		{"sync 200 live far apart", false, 10, 20, true, live, 200, -1},
		{"sync 201 live", false, 3, 67, false, live, 400, 0},
		{"sync 300 walking", false, 10, 30, false, map[string]any{"travelMode": "walking"}, 400, 0},
		{"sync shortest", false, 1, 1, false, map[string]any{"optimizeRoute": "shortest"}, 400, 0},
		{"async shortest", true, 1, 1, false, map[string]any{"optimizeRoute": "shortest"}, 202, 0},
		{"async 50000 plain", true, 250, 200, false, nil, 202, 0},
		{"async 50001 plain", true, 1, 50001, false, nil, 400, 0},
		{"async 10001 destinations", true, 1, 10001, false, nil, 400, 0},
		{"async 2500 avoid", true, 50, 50, false, map[string]any{"avoid": []string{"tollRoads"}}, 202, 0},
		{"async 2501 avoid", true, 41, 61, false, map[string]any{"avoid": []string{"tollRoads"}}, 400, 0},
		{"async 3000 shortest", true, 50, 60, false, map[string]any{"optimizeRoute": "shortest"}, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/route/matrix?api-version=2025-01-01"
			if tt.async {
				path = "/route/matrix:async?api-version=2025-01-01"
			}
			a := call(t, s, "POST", path, h, matrixRequest(tt.o, tt.d, tt.far, tt.extra))
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %.300s", a.status, tt.wantStatus, a.body)
			}
			if a.status != 200 {
				return
			}
			failed := 0
			var m struct {
				Properties struct {
					Matrix []struct {
						StatusCode int
						Error      *struct{ Code string }
					}
					Summary struct{ SuccessfulCount, TotalCount int }
				}
			}
			if err := json.Unmarshal(a.body, &m); err != nil {
				t.Fatal(err)
			}
			for _, c := range m.Properties.Matrix {
				if c.Error != nil {
					failed++
					if c.Error.Code != "OUT_OF_REGION" || c.StatusCode != 400 {
						t.Errorf("failed cell %+v", c)
					}
				}
			}
			if m.Properties.Summary.TotalCount != tt.o*tt.d || m.Properties.Summary.SuccessfulCount != tt.o*tt.d-failed {
				t.Errorf("summary %+v with %d failed", m.Properties.Summary, failed)
			}
			switch {
			case tt.wantFailed < 0 && failed == 0:
				t.Errorf("far apart under the 200-cell row: no cell OUT_OF_REGION")
			case tt.wantFailed >= 0 && failed != tt.wantFailed:
				t.Errorf("%d cells failed, want %d", failed, tt.wantFailed)
			}
		})
	}
}

// Bad requests are refused as the service documents them.
func TestMatrixBadRequests(t *testing.T) {
	s := newServer(t, nil)
	h := bearer(s)
	tests := map[string]map[string]any{
		"departAt and arriveAt":   {"departAt": "2026-12-01T08:00:00Z", "arriveAt": "2026-12-01T09:00:00Z"},
		"live without a time":     {"traffic": "live"},
		"live with any":           {"traffic": "live", "departAt": "any"},
		"arriveAt now":            {"arriveAt": "now"},
		"bad departAt":            {"departAt": "tomorrow"},
		"avoid ferries":           {"avoid": []string{"ferries"}},
		"avoid walking":           {"avoid": []string{"tollRoads"}, "travelMode": "walking"},
		"vehicleSpec driving":     {"vehicleSpec": map[string]any{"height": 4}},
		"vehicleSpec axleCount":   {"travelMode": "truck", "vehicleSpec": map[string]any{"axleCount": 5}},
		"vehicleSpec bad load":    {"travelMode": "truck", "vehicleSpec": map[string]any{"loadType": []string{"plutonium"}}},
		"travelMode bicycle":      {"travelMode": "bicycle"},
		"traffic sometimes":       {"traffic": "sometimes"},
		"optimizeRoute quickest":  {"optimizeRoute": "quickest"},
		"three features":          {"features": []any{1, 2, 3}},
		"two origins":             {"features": matrixRequest(1, 1, false, nil)["features"].([]any)[:1]},
		"point out of range":      {"features": []any{map[string]any{"type": "Feature", "geometry": map[string]any{"type": "MultiPoint", "coordinates": [][]float64{{200, 1}}}, "properties": map[string]any{"pointType": "origins"}}, matrixRequest(1, 1, false, nil)["features"].([]any)[1]}},
		"points of a Point":       {"features": []any{map[string]any{"type": "Feature", "geometry": map[string]any{"type": "Point", "coordinates": []float64{1, 1}}, "properties": map[string]any{"pointType": "origins"}}, matrixRequest(1, 1, false, nil)["features"].([]any)[1]}},
		"empty destinations list": {"features": []any{matrixRequest(1, 1, false, nil)["features"].([]any)[0], map[string]any{"type": "Feature", "geometry": map[string]any{"type": "MultiPoint", "coordinates": [][]float64{}}, "properties": map[string]any{"pointType": "destinations"}}}},
	}
	for name, extra := range tests {
		t.Run(name, func(t *testing.T) {
			a := call(t, s, "POST", "/route/matrix?api-version=2025-01-01", h, matrixRequest(2, 2, false, extra))
			if a.status != 400 {
				t.Fatalf("status %d: %.300s", a.status, a.body)
			}
			if code, msg := a.errorCode(t); code != codeBadRequest || msg == "" {
				t.Errorf("error %q %q", code, msg)
			}
		})
	}
	// What the matrix API does take.
	ok := map[string]any{"travelMode": "truck", "departAt": "now", "traffic": "live", "avoid": []string{"tollRoads", "unpavedRoads"},
		"vehicleSpec": map[string]any{"isVehicleCommercial": true, "height": 4.1, "weight": 30000, "maxSpeed": 80, "loadType": []string{"USHazmatClass3"}, "adrTunnelRestrictionCode": "C"}}
	if a := call(t, s, "POST", "/route/matrix?api-version=2025-01-01", h, matrixRequest(2, 2, false, ok)); a.status != 200 {
		t.Errorf("a truck matrix with every option: %d %.300s", a.status, a.body)
	}
	// Polar points have no roads: their cells fail, the others succeed.
	polar := matrixRequest(1, 2, false, nil)
	polar["features"].([]any)[1].(map[string]any)["geometry"].(map[string]any)["coordinates"] = [][]float64{{-122.2, 47.6}, {0, 89}}
	a := call(t, s, "POST", "/route/matrix?api-version=2025-01-01", h, polar)
	if n := strings.Count(string(a.body), "OUT_OF_REGION"); a.status != 200 || n != 1 {
		t.Errorf("polar destination: %d, %d cells out of region: %s", a.status, n, a.body)
	}
}

// An asynchronous matrix is accepted with 202 and an Operation-Location,
// runs NotStarted → Running → Completed, then its result is the matrix the
// sync API answers, with its kind. The shapes are the examples'.
func TestMatrixAsync(t *testing.T) {
	s := newServer(t, nil)
	s.SetOperationTiming(1500*time.Millisecond, 100*time.Millisecond)
	h := bearer(s)
	fx := fixture(t, "RouteMatrixAsync_2025-01-01_POST_202.json")
	req := dig(fx, "parameters", "routeMatrixAsyncRequest")
	a := call(t, s, "POST", "/route/matrix:async?api-version=2025-01-01", h, req)
	if a.status != 202 || len(a.body) != 0 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	loc := a.header.Get("Operation-Location")
	want := dig(fx, "responses", "202", "headers", "Operation-Location").(string)
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, s.URL+"/route/operations/") || u.Query().Get("api-version") != "2025-01-01" ||
		len(strings.TrimPrefix(u.Path, "/route/operations/")) != len("bc3f9365-3ee0-4564-aa27-825016325557") {
		t.Fatalf("Operation-Location %q, want one like %q", loc, want)
	}
	if a.header.Get("Retry-After") != "1" || a.header.Get("Retry-After-Ms") != "100" {
		t.Errorf("Retry-After %q, retry-after-ms %q", a.header.Get("Retry-After"), a.header.Get("Retry-After-Ms"))
	}
	if s.OperationsAccepted() != 1 {
		t.Errorf("%d operations accepted", s.OperationsAccepted())
	}
	status := strings.TrimPrefix(loc, s.URL)
	if r := call(t, s, "GET", strings.Replace(status, "?", "/result?", 1), h, nil); r.status != 404 {
		t.Errorf("the result before completion: %d", r.status)
	}
	seen := map[string]bool{}
	var st answer
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st = call(t, s, "GET", status, h, nil)
		if st.status != 200 {
			t.Fatalf("status: %d %s", st.status, st.body)
		}
		seen[dig(st.json(t), "status").(string)] = true
		if seen["Completed"] {
			break
		}
	}
	if !seen["NotStarted"] || !seen["Running"] || !seen["Completed"] {
		t.Fatalf("statuses seen %v", seen)
	}
	wantStatus := dig(fixture(t, "RouteOperationStatus_2025-01-01_GET_200.json"), "responses", "200", "body")
	got := st.json(t)
	for _, k := range []string{"kind", "status", "result"} {
		if got[k] == nil {
			t.Errorf("status lacks %q: %s", k, st.body)
		}
	}
	sameKeys(t, "result", got["result"], dig(wantStatus, "result"), true)
	if got["kind"] != "RouteMatrix" || st.header.Get("Retry-After") != "" {
		t.Errorf("completed status %s, Retry-After %q", st.body, st.header.Get("Retry-After"))
	}
	resultURL := dig(got, "result", "resultUrl").(string)
	if resultURL != s.URL+status[:strings.Index(status, "?")]+"/result?api-version=2025-01-01" {
		t.Errorf("resultUrl %s", resultURL)
	}
	r := call(t, s, "GET", strings.TrimPrefix(resultURL, s.URL), h, nil)
	if r.status != 200 {
		t.Fatalf("result: %d %s", r.status, r.body)
	}
	fxr := dig(fixture(t, "RouteMatrixAsyncResult_2025-01-01_GET_200.json"), "responses", "200", "body")
	res := r.json(t)
	sameKeys(t, "result", res, fxr, true)
	if res["kind"] != "RouteMatrix" || dig(res, "properties", "summary", "totalCount") != 4.0 {
		t.Errorf("result %s", r.body)
	}
	// The example's request is bounded by the 400 km box (truck, avoid):
	// as in the example's answer, the cells to Prague are out of region.
	for i := range 4 {
		c, w := dig(res, "properties", "matrix", i), dig(fxr, "properties", "matrix", i)
		sameKeys(t, fmt.Sprint("cell ", i), c, w, true)
		if dig(c, "statusCode") != dig(w, "statusCode") {
			t.Errorf("cell %d: status %v, the example's %v", i, dig(c, "statusCode"), dig(w, "statusCode"))
		}
	}

	// Forgotten after its retention: 404, as the example says.
	s.ExpireOperations()
	for _, p := range []string{status, strings.TrimPrefix(resultURL, s.URL)} {
		a := call(t, s, "GET", p, h, nil)
		if code, _ := a.errorCode(t); a.status != 404 || code != "NotFound" {
			t.Errorf("%s after expiry: %d %s", p, a.status, a.body)
		}
	}
	if a := call(t, s, "GET", "/route/operations/bc3f9365-3ee0-4564-aa27-825016325557?api-version=2025-01-01", h, nil); a.status != 404 {
		t.Errorf("an unknown operation: %d", a.status)
	}
	if st := s.Stats(); st.PerPath[catalog.RouteMatrixAsync] != 1 || st.PerPath[catalog.RouteOperation] < 3 {
		t.Errorf("per path %v", st.PerPath)
	}
}

// A failure set while an operation runs ends it Failed with that error,
// and it has no result.
func TestMatrixAsyncFailure(t *testing.T) {
	s := newServer(t, nil)
	s.SetOperationTiming(time.Millisecond, 0)
	h := bearer(s)
	a := call(t, s, "POST", "/route/matrix:async?api-version=2025-01-01", h, matrixRequest(3, 3, false, nil))
	if a.status != 202 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	status := strings.TrimPrefix(a.header.Get("Operation-Location"), s.URL)
	s.SetOperationFailure("InternalServerError", "The matrix could not be computed.")
	time.Sleep(5 * time.Millisecond)
	st := call(t, s, "GET", status, h, nil)
	if got := st.json(t); got["status"] != "Failed" || dig(got, "error", "code") != "InternalServerError" || got["result"] != nil {
		t.Errorf("failed status: %s", st.body)
	}
	if r := call(t, s, "GET", strings.Replace(status, "?", "/result?", 1), h, nil); r.status != 404 {
		t.Errorf("result of a failed operation: %d", r.status)
	}
	s.SetOperationFailure("", "")
	if got := call(t, s, "GET", status, h, nil).json(t); got["status"] != "Completed" {
		t.Errorf("after the failure ends: %v", got["status"])
	}
}

// The matrix APIs are in the catalog: faults, rate limits and statistics
// reach them like the others (the matrix shares the route limit).
func TestMatrixFaultsAndLimits(t *testing.T) {
	s := newServer(t, nil)
	h := bearer(s)
	s.SetFault(&Fault{Status: 503})
	for _, p := range []string{"/route/matrix", "/route/matrix:async"} {
		if a := call(t, s, "POST", p+"?api-version=2025-01-01", h, matrixRequest(1, 1, false, nil)); a.status != 503 {
			t.Errorf("%s during an outage: %d", p, a.status)
		}
	}
	s.SetFault(&Fault{Status: 503, Paths: []string{catalog.RouteOperation}})
	if a := call(t, s, "GET", "/route/operations/bc3f9365-3ee0-4564-aa27-825016325557?api-version=2025-01-01", h, nil); a.status != 503 {
		t.Errorf("status during its fault: %d", a.status)
	}
	s.SetFault(nil)
	s.SetRateLimit(APIRoute, 1)
	codes := []int{}
	for range 2 {
		codes = append(codes, call(t, s, "POST", "/route/matrix?api-version=2025-01-01", h, matrixRequest(1, 1, false, nil)).status)
	}
	if fmt.Sprint(codes) != "[200 429]" && fmt.Sprint(codes) != "[200 200]" { // a second may turn between the two
		t.Errorf("two matrices under a 1/s route limit: %v", codes)
	}
}
