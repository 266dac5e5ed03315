package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// KindRoute computes a route through waypoints in order
// (POST /route/directions, POST /route/directions:batch).
const KindRoute = "route"

// routeBatcher is the batch call of the route directions API.
type routeBatcher interface {
	RouteDirectionsBatch(ctx context.Context, rs []maps.RouteRequest) (*maps.BatchResponse, error)
}

type routeKind struct {
	maps     Maps
	batchAPI routeBatcher // nil unless batching
	batchMax int

	mu sync.Mutex
	// batches holds a batcher per language: a batch call has one
	// Accept-Language header, so requests for different languages never
	// share one.
	batches map[string]*batcher[maps.RouteRequest]
}

// maxLanguageBatchers bounds the languages batched at once; requests in
// further languages go as single calls.
const maxLanguageBatchers = 32

func newRoute(e *env) kind {
	k := &routeKind{}
	if e == nil {
		return k
	}
	k.maps = e.maps
	if bm, ok := e.maps.(routeBatcher); ok && e.batch {
		k.batchAPI, k.batchMax = bm, e.batchMax
		k.batches = make(map[string]*batcher[maps.RouteRequest])
	}
	return k
}

// batcher returns the batcher of requests in lang, or nil when requests go
// as single calls.
func (k *routeKind) batcher(lang string) *batcher[maps.RouteRequest] {
	if k.batchAPI == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.batches[lang]
	if b == nil && len(k.batches) < maxLanguageBatchers {
		b = newBatcher(k.maps.RouteDirections, k.batchAPI.RouteDirectionsBatch, k.batchMax)
		k.batches[lang] = b
	}
	return b
}

func (*routeKind) name() string { return KindRoute }

func (k *routeKind) decode(f fields) (call, error) {
	r, err := decodeRoute(f)
	if err != nil {
		return nil, err
	}
	return &routeCall{k: k, r: *r}, nil
}

// probeRoute is the probe's request, a short drive every account can route;
// it asks for the totals alone, the smallest answer with a summary.
var probeRoute = maps.RouteRequest{
	Waypoints:          []maps.Position{{Lat: 47.6396, Lon: -122.1283}, {Lat: 47.6101, Lon: -122.2015}},
	RouteOutputOptions: []string{routeSummaryOutput},
}

func (k *routeKind) probe() call { return &routeCall{k: k, r: probeRoute, alone: true} }

func (*routeKind) describe(summary json.RawMessage) (string, error) {
	var s RouteSummary
	if err := json.Unmarshal(summary, &s); err != nil {
		return "", err
	}
	line := describeRoute(RouteTotals{
		DistanceInMeters: s.DistanceInMeters, DurationInSeconds: s.DurationInSeconds,
		DurationTrafficInSeconds: s.DurationTrafficInSeconds, DepartureAt: s.DepartureAt,
	})
	if len(s.Routes) > 1 {
		alts := make([]string, len(s.Routes)-1)
		for i, r := range s.Routes[1:] {
			alts[i] = describeRoute(r)
		}
		noun := "alternatives"
		if len(alts) == 1 {
			noun = "alternative"
		}
		line += fmt.Sprintf("; %d %s: %s", len(alts), noun, strings.Join(alts, "; "))
	}
	return line, nil
}

// describeRoute renders one route: "6.5 km, 8m7s (8m55s with traffic)",
// with "leave at …" when the route was planned to arrive at a time.
func describeRoute(r RouteTotals) string {
	line := fmt.Sprintf("%.1f km, %s", r.DistanceInMeters/1000, seconds(r.DurationInSeconds))
	if r.DurationTrafficInSeconds != nil {
		line += fmt.Sprintf(" (%s with traffic)", seconds(*r.DurationTrafficInSeconds))
	}
	if r.DepartureAt != "" {
		line += ", leave at " + r.DepartureAt
	}
	return line
}

func seconds(s float64) time.Duration { return time.Duration(s) * time.Second }

func (*routeKind) fromArgs(args []string, o ArgOptions) (map[string]any, error) {
	if len(args) < 2 {
		return nil, errors.New("route takes two or more positions: enqueue route 47.63,-122.14 47.61,-122.20")
	}
	wps := make([]map[string]float64, len(args))
	for i, a := range args {
		p, err := parseLatLon(a)
		if err != nil {
			return nil, err
		}
		wps[i] = p
	}
	f := map[string]any{"waypoints": wps}
	if o.TravelMode != "" {
		f["travelMode"] = o.TravelMode
	}
	return f, nil
}

func (*routeKind) example() []string { return []string{"47.6303,-122.1387", "47.6101,-122.2015"} }

type routeCall struct {
	k     *routeKind
	r     maps.RouteRequest
	alone bool // never batched (probes)
}

func (c *routeCall) run(ctx context.Context) (*worker.Output, error) {
	var resp *maps.Response
	var err error
	if b := c.k.batcher(c.r.Language); b != nil && !c.alone {
		resp, err = b.do(ctx, c.r)
	} else {
		resp, err = c.k.maps.RouteDirections(ctx, c.r)
	}
	times := c.r.ArriveAt != ""
	return output(resp, err, func(body []byte) (*RouteSummary, error) { return summarizeRoute(body, times) })
}

// Route options as Route Directions 2025-01-01 names them.
var (
	travelModes = []string{"driving", "truck", "walking"}

	// optimizeRoutes maps each value to the travel modes the service
	// supports it for; nil means all.
	optimizeRoutes = map[string][]string{
		"shortest":                          nil,
		"fastestWithoutTraffic":             nil,
		"fastestAvoidClosureWithoutTraffic": {"driving"},
		"fastestWithTraffic":                {"driving", "truck"},
	}

	// avoidValues lists what a route may avoid (driving and truck only),
	// each with the travel modes that take it.
	avoidValues = []modeValue{
		{"limitedAccessHighways", nil},
		{"tollRoads", nil},
		{"ferries", nil},
		{"tunnels", []string{"truck"}},
		{"borderCrossings", nil},
		{"lowEmissionZones", []string{"truck"}},
		{"unpavedRoads", []string{"truck"}},
	}
	avoidModes = []string{"driving", "truck"}

	// routeOutputs lists the parts of an answer routeOutputOptions asks for.
	routeOutputs = []modeValue{
		{"routeSummary", nil},
		{"routePath", nil},
		{"itinerary", nil},
		{"regionTravelSummary", []string{"driving", "walking"}},
	}

	loadTypes = []string{
		"USHazmatClass1", "USHazmatClass2", "USHazmatClass3", "USHazmatClass4", "USHazmatClass5",
		"USHazmatClass6", "USHazmatClass7", "USHazmatClass8", "USHazmatClass9",
		"otherHazmatExplosive", "otherHazmatGeneral", "otherHazmatHarmfulToWater",
	}
	adrTunnelRestrictionCodes = []string{"B", "C", "D", "E"}
)

// modeValue is a value of an enumerated option and the travel modes that
// take it (nil: all those that take the option).
type modeValue struct {
	value string
	modes []string
}

// Limits of route options (2025-01-01).
const (
	maxRouteCount        = 3
	maxAlternativeStops  = 2  // driving alternatives: waypoints besides origin and destination
	maxViaPerLeg         = 10 // viaWaypoints between two waypoints
	maxVehicleMeasure    = 1_000_000
	maxVehicleSpeed      = 250 // km/h
	maxHeading           = 359
	maxLanguageTagLength = 35
)

// routeOutputOptions values with the totals the summary reads.
const (
	routeSummaryOutput = "routeSummary"
	routePathOutput    = "routePath"
)

func decodeRoute(f fields) (*maps.RouteRequest, error) {
	r := &maps.RouteRequest{TravelMode: "driving"}
	var err error
	if raw, ok := f.get("travelMode"); ok {
		if r.TravelMode, err = decodeString("travelMode", raw); err != nil {
			return nil, err
		}
		if !slices.Contains(travelModes, r.TravelMode) {
			return nil, worker.Invalidf(codeInvalidValue, "travelMode %s is not one of %s", quote(r.TravelMode), strings.Join(travelModes, ", "))
		}
	}
	if err := decodeWaypoints(f, r); err != nil {
		return nil, err
	}

	if raw, ok := f.get("optimizeRoute"); ok {
		if r.OptimizeRoute, err = decodeString("optimizeRoute", raw); err != nil {
			return nil, err
		}
		modes, known := optimizeRoutes[r.OptimizeRoute]
		switch {
		case !known:
			return nil, worker.Invalidf(codeInvalidValue, "optimizeRoute %s is not one of shortest, fastestWithoutTraffic, fastestAvoidClosureWithoutTraffic, fastestWithTraffic", quote(r.OptimizeRoute))
		case modes != nil && !slices.Contains(modes, r.TravelMode):
			return nil, worker.Invalidf(codeConflicting, "optimizeRoute %s is only for %s routes, not %s", r.OptimizeRoute, strings.Join(modes, " and "), r.TravelMode)
		}
	}
	if r.RouteOptions, err = decodeRouteOptions(f, r.TravelMode); err != nil {
		return nil, err
	}
	if r.RouteOutputOptions, err = decodeRouteOutputOptions(f, r.TravelMode); err != nil {
		return nil, err
	}
	if raw, ok := f.get("maxRouteCount"); ok {
		if r.MaxRouteCount, err = decodeInt("maxRouteCount", raw, 1, maxRouteCount); err != nil {
			return nil, err
		}
		if err := checkAlternatives(r); err != nil {
			return nil, err
		}
	}
	if raw, ok := f.get("heading"); ok {
		h, err := decodeInt("heading", raw, 0, maxHeading)
		if err != nil {
			return nil, err
		}
		r.Heading = &h
	}
	if raw, ok := f.get("optimizeWaypointOrder"); ok {
		if r.OptimizeWaypointOrder, err = decodeBool("optimizeWaypointOrder", raw); err != nil {
			return nil, err
		}
		if r.OptimizeWaypointOrder && r.TravelMode != "truck" {
			return nil, worker.Invalidf(codeConflicting, "optimizeWaypointOrder is only for truck routes, not %s", r.TravelMode)
		}
	}
	if raw, ok := f.get("language"); ok {
		if r.Language, err = decodeString("language", raw); err != nil {
			return nil, err
		}
		if !validLanguageTag(r.Language) {
			return nil, worker.Invalidf(codeInvalidValue, "language %s is not a language tag such as en-US or de-DE", quote(r.Language))
		}
	}
	return r, nil
}

// decodeWaypoints decodes the waypoints, each {"lat", "lon"} with an
// optional "pointType": "waypoint" (the default) or "viaWaypoint".
func decodeWaypoints(f fields, r *maps.RouteRequest) error {
	raw, ok := f.get("waypoints")
	if !ok {
		return worker.Invalidf(codeMissingField, "waypoints are required: 2 or more {\"lat\": …, \"lon\": …}")
	}
	points, err := decodeArray("waypoints", "an array", raw)
	if err != nil {
		return err
	}
	limit := maxWaypoints
	if r.TravelMode == "truck" {
		limit = maxTruckWaypoints
	}
	// The limits count waypoints; viaWaypoints have their own. A list
	// far longer than any valid one is refused before it is decoded.
	if len(points) > limit*(maxViaPerLeg+1) {
		return worker.Invalidf(codeTooManyPoints, "a %s route takes at most %d waypoints, got a list of %d points", r.TravelMode, limit, len(points))
	}
	r.Waypoints = make([]maps.Position, len(points))
	var via []bool
	stops, run := 0, 0 // waypoints; viaWaypoints since the last waypoint
	for i, raw := range points {
		path := fmt.Sprintf("waypoints[%d]", i)
		var err error
		if r.Waypoints[i], err = decodePosition(path, raw); err != nil {
			return err
		}
		isVia, err := decodePointType(path, raw)
		if err != nil {
			return err
		}
		if !isVia {
			stops++
			run = 0
			continue
		}
		switch {
		case r.TravelMode == "truck":
			return worker.Invalidf(codeConflicting, "%s is a viaWaypoint: truck routes take none", path)
		case i == 0 || i == len(points)-1:
			return worker.Invalidf(codeInvalidValue, "%s is a viaWaypoint: the first and last points of a route must be waypoints", path)
		}
		if run++; run > maxViaPerLeg {
			return worker.Invalidf(codeTooManyPoints, "%s: at most %d viaWaypoints may follow one another between two waypoints", path, maxViaPerLeg)
		}
		if via == nil {
			via = make([]bool, len(points))
		}
		via[i] = true
	}
	r.Via = via
	switch {
	case stops < minWaypoints:
		return worker.Invalidf(codeTooFewPoints, "a route needs at least %d waypoints, got %d", minWaypoints, stops)
	case stops > limit:
		return worker.Invalidf(codeTooManyPoints, "a %s route takes at most %d waypoints, got %d", r.TravelMode, limit, stops)
	}
	return nil
}

// decodePointType reports whether the waypoint object raw (already decoded
// as a position) is a viaWaypoint.
func decodePointType(path string, raw json.RawMessage) (bool, error) {
	var p struct {
		PointType json.RawMessage `json:"pointType"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || len(p.PointType) == 0 || string(p.PointType) == "null" {
		return false, nil
	}
	s, err := decodeString(path+".pointType", p.PointType)
	if err != nil {
		return false, err
	}
	switch s {
	case "waypoint":
		return false, nil
	case "viaWaypoint":
		return true, nil
	}
	return false, worker.Invalidf(codeInvalidValue, "%s.pointType %s is not waypoint or viaWaypoint", path, quote(s))
}

// decodeRouteOptions decodes the options that Route Directions and Route
// Matrix share (departAt, arriveAt, avoid, vehicleSpec) and checks them
// against travelMode (driving, truck or walking, already validated), as the
// 2025-01-01 API defines them. Its errors are [worker.Invalidf] errors with
// the package's codes. A kind whose API takes fewer values (Route Matrix
// avoids only tollRoads and unpavedRoads, and takes no axleCount) checks the
// result further.
func decodeRouteOptions(f fields, travelMode string) (maps.RouteOptions, error) {
	var o maps.RouteOptions
	var err error
	if o.DepartAt, err = decodeDateTime(f, "departAt"); err != nil {
		return o, err
	}
	if o.ArriveAt, err = decodeDateTime(f, "arriveAt"); err != nil {
		return o, err
	}
	if o.DepartAt != "" && o.ArriveAt != "" {
		return o, worker.Invalidf(codeConflicting, "departAt and arriveAt cannot be used together: give one")
	}
	if raw, ok := f.get("avoid"); ok {
		if o.Avoid, err = decodeModeValues("avoid", raw, avoidValues, travelMode); err != nil {
			return o, err
		}
		if len(o.Avoid) > 0 && !slices.Contains(avoidModes, travelMode) {
			return o, worker.Invalidf(codeConflicting, "avoid is only for driving and truck routes, not %s", travelMode)
		}
	}
	if raw, ok := f.get("vehicleSpec"); ok {
		if travelMode != "truck" {
			return o, worker.Invalidf(codeConflicting, "vehicleSpec is only for truck routes, not %s", travelMode)
		}
		if o.VehicleSpec, err = decodeVehicleSpec(raw); err != nil {
			return o, err
		}
	}
	return o, nil
}

// decodeDateTime decodes the optional RFC 3339 date-time name.
func decodeDateTime(f fields, name string) (string, error) {
	raw, ok := f.get(name)
	if !ok {
		return "", nil
	}
	s, err := decodeString(name, raw)
	if err != nil {
		return "", err
	}
	if !validDateTime(s) {
		return "", worker.Invalidf(codeInvalidValue, "%s %s is not an RFC 3339 date-time such as 2026-12-01T08:00:00Z", name, quote(s))
	}
	return s, nil
}

// decodeModeValues decodes an array of strings, each one of values and
// allowed for travelMode. Repeated values are sent once.
func decodeModeValues(name string, raw json.RawMessage, values []modeValue, travelMode string) ([]string, error) {
	items, err := decodeStrings(name, raw)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, s := range items {
		j := slices.IndexFunc(values, func(v modeValue) bool { return v.value == s })
		if j < 0 {
			names := make([]string, len(values))
			for k, v := range values {
				names[k] = v.value
			}
			return nil, worker.Invalidf(codeInvalidValue, "%s[%d] %s is not one of %s", name, i, quote(s), strings.Join(names, ", "))
		}
		if m := values[j].modes; m != nil && !slices.Contains(m, travelMode) {
			return nil, worker.Invalidf(codeConflicting, "%s %s is only for %s routes, not %s", name, s, strings.Join(m, " and "), travelMode)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func decodeBool(path string, raw json.RawMessage) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, wrongType(path, "true or false", raw)
}

// decodeVehicleSpec decodes a truck's vehicleSpec. Unlike the request's own
// fields, an unknown member is refused: a misspelt height would otherwise
// route a truck under a bridge it does not fit.
func decodeVehicleSpec(raw json.RawMessage) (*maps.VehicleSpec, error) {
	if raw[0] != '{' {
		return nil, wrongType("vehicleSpec", "an object", raw)
	}
	var f fields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, worker.Invalidf(codeWrongType, "vehicleSpec: %v", err)
	}
	v := &maps.VehicleSpec{}
	measures := []struct {
		name string
		v    *float64
	}{{"length", &v.Length}, {"width", &v.Width}, {"height", &v.Height}}
	counts := []struct {
		name string
		hi   int
		v    *int
	}{
		{"weight", maxVehicleMeasure, &v.Weight},
		{"maxSpeed", maxVehicleSpeed, &v.MaxSpeed},
		{"axleWeight", maxVehicleMeasure, &v.AxleWeight},
		{"axleCount", math.MaxInt32, &v.AxleCount},
	}
	names := []string{"isVehicleCommercial", "loadType", "adrTunnelRestrictionCode"}
	for _, m := range measures {
		names = append(names, m.name)
	}
	for _, c := range counts {
		names = append(names, c.name)
	}
	given := make([]string, 0, len(f))
	for name := range f {
		given = append(given, name)
	}
	slices.Sort(given)
	for _, name := range given {
		if !slices.Contains(names, name) {
			return nil, worker.Invalidf(codeInvalidValue, "vehicleSpec member %s is not a vehicle attribute: use %s", quote(name), strings.Join(names, ", "))
		}
	}
	var err error
	if raw, ok := f.get("isVehicleCommercial"); ok {
		if v.IsVehicleCommercial, err = decodeBool("vehicleSpec.isVehicleCommercial", raw); err != nil {
			return nil, err
		}
	}
	for _, m := range measures {
		raw, ok := f.get(m.name)
		if !ok {
			continue
		}
		path := "vehicleSpec." + m.name
		x, err := decodeNumber(path, raw)
		if err != nil {
			return nil, err
		}
		if x < 0 || x > maxVehicleMeasure {
			return nil, worker.Invalidf(codeOutOfRange, "%s: %s is out of range [0, %d] (meters)", path, quoteRaw(raw), maxVehicleMeasure)
		}
		*m.v = x
	}
	for _, c := range counts {
		if raw, ok := f.get(c.name); ok {
			if *c.v, err = decodeInt("vehicleSpec."+c.name, raw, 0, c.hi); err != nil {
				return nil, err
			}
		}
	}
	if raw, ok := f.get("loadType"); ok {
		items, err := decodeStrings("vehicleSpec.loadType", raw)
		if err != nil {
			return nil, err
		}
		for i, s := range items {
			if !slices.Contains(loadTypes, s) {
				return nil, worker.Invalidf(codeInvalidValue, "vehicleSpec.loadType[%d] %s is not one of %s", i, quote(s), strings.Join(loadTypes, ", "))
			}
			if !slices.Contains(v.LoadType, s) {
				v.LoadType = append(v.LoadType, s)
			}
		}
	}
	if raw, ok := f.get("adrTunnelRestrictionCode"); ok {
		if v.AdrTunnelRestrictionCode, err = decodeString("vehicleSpec.adrTunnelRestrictionCode", raw); err != nil {
			return nil, err
		}
		if !slices.Contains(adrTunnelRestrictionCodes, v.AdrTunnelRestrictionCode) {
			return nil, worker.Invalidf(codeInvalidValue, "vehicleSpec.adrTunnelRestrictionCode %s is not one of B, C, D, E", quote(v.AdrTunnelRestrictionCode))
		}
	}
	return v, nil
}

// decodeRouteOutputOptions decodes routeOutputOptions. The summary needs
// the RoutePath feature's distance and durations, which routePath and
// routeSummary both give: without the field the worker asks for routePath
// (the path most users of a route want drawn), and a list with neither gets
// routeSummary added.
func decodeRouteOutputOptions(f fields, travelMode string) ([]string, error) {
	raw, ok := f.get("routeOutputOptions")
	if !ok {
		return []string{routePathOutput}, nil
	}
	out, err := decodeModeValues("routeOutputOptions", raw, routeOutputs, travelMode)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(out, routePathOutput) && !slices.Contains(out, routeSummaryOutput) {
		out = append(out, routeSummaryOutput)
	}
	return out, nil
}

// checkAlternatives checks maxRouteCount against the rest of r, as the
// service does: alternatives are for driving and truck routes, and a driving
// route with alternatives has at most two stops besides its origin and
// destination, and no avoid.
func checkAlternatives(r *maps.RouteRequest) error {
	if r.MaxRouteCount <= 1 {
		return nil
	}
	switch r.TravelMode {
	case "walking":
		return worker.Invalidf(codeConflicting, "maxRouteCount above 1 (alternative routes) is only for driving and truck routes, not walking")
	case "driving":
		stops := 0
		for i := range r.Waypoints {
			if i >= len(r.Via) || !r.Via[i] {
				stops++
			}
		}
		if stops > maxAlternativeStops+2 {
			return worker.Invalidf(codeConflicting, "a driving route with maxRouteCount above 1 takes at most %d waypoints (origin, destination and %d stops), got %d", maxAlternativeStops+2, maxAlternativeStops, stops)
		}
		if len(r.Avoid) > 0 {
			return worker.Invalidf(codeConflicting, "a driving route with maxRouteCount above 1 cannot use avoid")
		}
	}
	return nil
}

// validLanguageTag reports whether s looks like a BCP 47 language tag
// ("en", "en-US", "zh-Hant-TW"): letters, digits and single hyphens, the
// first subtag 2 to 8 letters. Which languages the service has is its own
// list; an unknown one is answered in its default language.
func validLanguageTag(s string) bool {
	if len(s) == 0 || len(s) > maxLanguageTagLength {
		return false
	}
	for i, sub := range strings.Split(s, "-") {
		if len(sub) == 0 || len(sub) > 8 || (i == 0 && len(sub) < 2) {
			return false
		}
		for _, c := range sub {
			letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !letter && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

// RouteSummary is the summary of a route result, from its RoutePath
// features. The top-level figures are the first (best) route's; Routes lists
// every route when the answer has alternatives (maxRouteCount above 1).
type RouteSummary struct {
	DistanceInMeters  float64 `json:"distanceInMeters"`
	DurationInSeconds float64 `json:"durationInSeconds"`
	// DurationTrafficInSeconds is absent unless the route was optimized
	// with traffic.
	DurationTrafficInSeconds *float64 `json:"durationTrafficInSeconds,omitempty"`
	// DepartureAt and ArrivalAt are the service's, when the request gave
	// arriveAt: then the departure is the answer a dispatcher wants.
	DepartureAt string `json:"departureAt,omitempty"`
	ArrivalAt   string `json:"arrivalAt,omitempty"`
	// Routes are all the routes, the best first, when there are two or
	// more.
	Routes []RouteTotals `json:"routes,omitempty"`
}

// RouteTotals are one route's distance and durations.
type RouteTotals struct {
	DistanceInMeters         float64  `json:"distanceInMeters"`
	DurationInSeconds        float64  `json:"durationInSeconds"`
	DurationTrafficInSeconds *float64 `json:"durationTrafficInSeconds,omitempty"`
	DepartureAt              string   `json:"departureAt,omitempty"`
	ArrivalAt                string   `json:"arrivalAt,omitempty"`
}

// routePathProperties are the RoutePath feature's properties a summary reads.
type routePathProperties struct {
	Type                     string   `json:"type"`
	DistanceInMeters         *float64 `json:"distanceInMeters"`
	DurationInSeconds        *float64 `json:"durationInSeconds"`
	DurationTrafficInSeconds *float64 `json:"durationTrafficInSeconds"`
	DepartureAt              string   `json:"departureAt"`
	ArrivalAt                string   `json:"arrivalAt"`
}

// routeAnswer is a Route Directions answer: the best route's features and,
// with maxRouteCount above 1, the alternatives, each a FeatureCollection.
type routeAnswer struct {
	featureCollection[routePathProperties]
	AlternativeRoutes []featureCollection[routePathProperties] `json:"alternativeRoutes"`
}

// summarizeRoute summarizes a route answer, with the departure and
// arrival times when times is set.
func summarizeRoute(body []byte, times bool) (*RouteSummary, error) {
	var a routeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, err
	}
	if a.Type != "FeatureCollection" {
		return nil, fmt.Errorf("type is %q, not FeatureCollection", a.Type)
	}
	// Waypoints and maneuver points carry distances too, of their legs;
	// a whole route's are on its RoutePath feature. The best route's is in
	// the answer's features, each alternative's in its own collection.
	var routes []RouteTotals
	for i, fc := range append([]featureCollection[routePathProperties]{a.featureCollection}, a.AlternativeRoutes...) {
		if i > 0 && fc.Type != "" && fc.Type != "FeatureCollection" {
			return nil, fmt.Errorf("alternativeRoutes[%d] type is %q, not FeatureCollection", i-1, fc.Type)
		}
		for _, f := range fc.Features {
			p := f.Properties
			if p.Type != "RoutePath" {
				continue
			}
			if p.DistanceInMeters == nil || p.DurationInSeconds == nil {
				return nil, errors.New("a RoutePath feature has no distanceInMeters or durationInSeconds")
			}
			t := RouteTotals{
				DistanceInMeters:         *p.DistanceInMeters,
				DurationInSeconds:        *p.DurationInSeconds,
				DurationTrafficInSeconds: p.DurationTrafficInSeconds,
			}
			if times {
				t.DepartureAt, t.ArrivalAt = p.DepartureAt, p.ArrivalAt
			}
			routes = append(routes, t)
		}
	}
	if len(routes) == 0 {
		return nil, errors.New("no RoutePath feature")
	}
	best := routes[0]
	s := &RouteSummary{
		DistanceInMeters:         best.DistanceInMeters,
		DurationInSeconds:        best.DurationInSeconds,
		DurationTrafficInSeconds: best.DurationTrafficInSeconds,
		DepartureAt:              best.DepartureAt,
		ArrivalAt:                best.ArrivalAt,
	}
	if len(routes) > 1 {
		s.Routes = routes
	}
	return s, nil
}
