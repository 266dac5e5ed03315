package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	maps  Maps
	batch *batcher[maps.RouteRequest] // nil unless batching
}

func newRoute(e *env) kind {
	k := &routeKind{}
	if e == nil {
		return k
	}
	k.maps = e.maps
	if bm, ok := e.maps.(routeBatcher); ok && e.batch {
		k.batch = newBatcher(e.maps.RouteDirections, bm.RouteDirectionsBatch, e.batchMax)
	}
	return k
}

func (*routeKind) name() string { return KindRoute }

func (k *routeKind) decode(f fields) (call, error) {
	r, err := decodeRoute(f)
	if err != nil {
		return nil, err
	}
	return &routeCall{k: k, r: *r}, nil
}

// probeRoute is the probe's request, a short drive every account can route.
var probeRoute = maps.RouteRequest{Waypoints: []maps.Position{{Lat: 47.6396, Lon: -122.1283}, {Lat: 47.6101, Lon: -122.2015}}}

func (k *routeKind) probe() call { return &routeCall{k: k, r: probeRoute, alone: true} }

func (*routeKind) describe(summary json.RawMessage) (string, error) {
	var s RouteSummary
	if err := json.Unmarshal(summary, &s); err != nil {
		return "", err
	}
	line := fmt.Sprintf("%.1f km, %s", s.DistanceInMeters/1000, seconds(s.DurationInSeconds))
	if s.DurationTrafficInSeconds != nil {
		line += fmt.Sprintf(" (%s with traffic)", seconds(*s.DurationTrafficInSeconds))
	}
	return line, nil
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

func (*routeKind) usage() string { return "47.6303,-122.1387 47.6101,-122.2015 --mode truck" }

type routeCall struct {
	k     *routeKind
	r     maps.RouteRequest
	alone bool // never batched (probes)
}

func (c *routeCall) run(ctx context.Context) (*worker.Output, error) {
	var resp *maps.Response
	var err error
	if c.k.batch != nil && !c.alone {
		resp, err = c.k.batch.do(ctx, c.r)
	} else {
		resp, err = c.k.maps.RouteDirections(ctx, c.r)
	}
	return output(resp, err, summarizeRoute)
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
)

func decodeRoute(f fields) (*maps.RouteRequest, error) {
	// The RoutePath feature carries the distance and durations of the
	// summary, and its path is what most users of a route want drawn.
	r := &maps.RouteRequest{TravelMode: "driving", RouteOutputOptions: []string{"routePath"}}
	var err error
	if raw, ok := f.get("travelMode"); ok {
		if r.TravelMode, err = decodeString("travelMode", raw); err != nil {
			return nil, err
		}
		if !slices.Contains(travelModes, r.TravelMode) {
			return nil, worker.Invalidf(codeInvalidValue, "travelMode %s is not one of %s", quote(r.TravelMode), strings.Join(travelModes, ", "))
		}
	}

	raw, ok := f.get("waypoints")
	if !ok {
		return nil, worker.Invalidf(codeMissingField, "waypoints are required: 2 or more {\"lat\": …, \"lon\": …}")
	}
	var points []json.RawMessage
	if raw[0] != '[' {
		return nil, wrongType("waypoints", "an array", raw)
	}
	if err := json.Unmarshal(raw, &points); err != nil {
		return nil, worker.Invalidf(codeWrongType, "waypoints: %v", err)
	}
	limit := maxWaypoints
	if r.TravelMode == "truck" {
		limit = maxTruckWaypoints
	}
	switch {
	case len(points) < minWaypoints:
		return nil, worker.Invalidf(codeTooFewPoints, "a route needs at least %d waypoints, got %d", minWaypoints, len(points))
	case len(points) > limit:
		return nil, worker.Invalidf(codeTooManyPoints, "a %s route takes at most %d waypoints, got %d", r.TravelMode, limit, len(points))
	}
	r.Waypoints = make([]maps.Position, len(points))
	for i, raw := range points {
		if r.Waypoints[i], err = decodePosition(fmt.Sprintf("waypoints[%d]", i), raw); err != nil {
			return nil, err
		}
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
	if raw, ok := f.get("departAt"); ok {
		if r.DepartAt, err = decodeString("departAt", raw); err != nil {
			return nil, err
		}
		if !validDateTime(r.DepartAt) {
			return nil, worker.Invalidf(codeInvalidValue, "departAt %s is not an RFC 3339 date-time such as 2026-12-01T08:00:00Z", quote(r.DepartAt))
		}
	}
	return r, nil
}

// RouteSummary is the summary of a route result, from its route path.
type RouteSummary struct {
	DistanceInMeters  float64 `json:"distanceInMeters"`
	DurationInSeconds float64 `json:"durationInSeconds"`
	// DurationTrafficInSeconds is absent unless the route was optimized
	// with traffic.
	DurationTrafficInSeconds *float64 `json:"durationTrafficInSeconds,omitempty"`
}

func summarizeRoute(body []byte) (*RouteSummary, error) {
	var fc featureCollection[struct {
		Type                     string   `json:"type"`
		DistanceInMeters         *float64 `json:"distanceInMeters"`
		DurationInSeconds        *float64 `json:"durationInSeconds"`
		DurationTrafficInSeconds *float64 `json:"durationTrafficInSeconds"`
	}]
	if err := json.Unmarshal(body, &fc); err != nil {
		return nil, err
	}
	if fc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("type is %q, not FeatureCollection", fc.Type)
	}
	// Waypoints and maneuver points carry distances too, of their legs;
	// the whole route's are on the RoutePath feature.
	for _, f := range fc.Features {
		p := f.Properties
		if p.Type != "RoutePath" {
			continue
		}
		if p.DistanceInMeters == nil || p.DurationInSeconds == nil {
			return nil, errors.New("the RoutePath feature has no distanceInMeters or durationInSeconds")
		}
		return &RouteSummary{
			DistanceInMeters:         *p.DistanceInMeters,
			DurationInSeconds:        *p.DurationInSeconds,
			DurationTrafficInSeconds: p.DurationTrafficInSeconds,
		}, nil
	}
	return nil, errors.New("no RoutePath feature")
}
