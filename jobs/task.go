package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

const codeBadResponse = "BadResponse"

// task is one decoded request. Exactly one of geocode, reverse and route is
// set, unless invalid is: then the task only names a failed result.
type task struct {
	id, kind string
	request  json.RawMessage
	maps     Maps
	// geocodes and routes batch the calls; nil unless the handler batches.
	geocodes *batcher[maps.GeocodeQuery]
	routes   *batcher[maps.RouteRequest]

	geocode *maps.GeocodeQuery
	reverse *maps.ReverseGeocodeQuery
	route   *maps.RouteRequest

	invalid error
}

var _ worker.Prober = (*task)(nil)

func (t *task) ID() string               { return t.id }
func (t *task) Kind() string             { return t.kind }
func (t *task) Request() json.RawMessage { return t.request }

// Run calls Azure Maps once and leaves retrying to the engine, which decides
// by the class of the error. It keeps no state between calls and so can run
// again after a transient error.
func (t *task) Run(ctx context.Context) (*worker.Output, error) {
	if t.invalid != nil {
		// The engine never runs an invalid task; should it, the task
		// fails the way its decoding did rather than calling Maps.
		return nil, t.invalid
	}
	var (
		resp *maps.Response
		err  error
	)
	switch {
	case t.geocode != nil && t.geocodes != nil:
		resp, err = t.geocodes.do(ctx, *t.geocode)
	case t.route != nil && t.routes != nil:
		resp, err = t.routes.do(ctx, *t.route)
	case t.geocode != nil:
		resp, err = t.maps.Geocode(ctx, *t.geocode)
	case t.reverse != nil:
		resp, err = t.maps.ReverseGeocode(ctx, *t.reverse)
	case t.route != nil:
		resp, err = t.maps.RouteDirections(ctx, *t.route)
	default:
		return nil, fmt.Errorf("jobs: %s task %s has no request", t.kind, t.id)
	}
	if err != nil {
		return nil, classify(err)
	}
	if resp == nil || !json.Valid(resp.Body) {
		return nil, badResponse(resp, errors.New("the body is not JSON"))
	}
	var summary any
	if t.route != nil {
		summary, err = summarizeRoute(resp.Body)
	} else {
		summary, err = summarizeGeocode(resp.Body)
	}
	if err != nil {
		return nil, badResponse(resp, err)
	}
	return &worker.Output{Summary: summary, Response: resp.Body}, nil
}

// The probes' requests: known-good requests that every Azure Maps account
// can answer. A probe that succeeds is billed as one transaction; the engine
// probes only when requests of a kind fail and nothing of the kind has
// succeeded since, at most one probe of a kind at a time.
var (
	probeGeocode = maps.GeocodeQuery{Query: "1 Microsoft Way, Redmond, WA 98052", Top: 1}
	probeReverse = maps.ReverseGeocodeQuery{Position: maps.Position{Lat: 47.6396, Lon: -122.1283}}
	probeRoute   = maps.RouteRequest{Waypoints: []maps.Position{{Lat: 47.6396, Lon: -122.1283}, {Lat: 47.6101, Lon: -122.2015}}}
)

// Probe implements [worker.Prober]: it asks Azure Maps a known-good request
// of the task's kind, so that the engine can tell an outage (the probe fails
// too) from requests that fail on their own (it succeeds).
func (t *task) Probe(ctx context.Context) error {
	var err error
	switch {
	case t.geocode != nil:
		_, err = t.maps.Geocode(ctx, probeGeocode)
	case t.reverse != nil:
		_, err = t.maps.ReverseGeocode(ctx, probeReverse)
	case t.route != nil:
		_, err = t.maps.RouteDirections(ctx, probeRoute)
	}
	return classify(err)
}

// badResponse is a 2xx answer the worker cannot read. It is transient:
// a truncated or garbled body is usually a passing fault, and one that is
// not poisons after the usual number of deliveries.
func badResponse(resp *maps.Response, err error) error {
	if resp == nil {
		return worker.Transient(codeBadResponse, fmt.Errorf("Azure Maps answered with no response: %w", err))
	}
	return worker.Transient(codeBadResponse, fmt.Errorf("Azure Maps answered %d with an unreadable body: %w%s", resp.StatusCode, err, requestIDSuffix(resp.RequestID)))
}

// GeocodeSummary is the summary of a geocode or reverse-geocode result: how
// many places matched and, if any did, the first and best of them.
//
// No match is a success with Matches 0 and no position ({"matches": 0}):
// asking again would not find one, and the request was not wrong.
type GeocodeSummary struct {
	Matches          int      `json:"matches"`
	Lat              *float64 `json:"lat,omitempty"` // a pointer: 0 is a latitude
	Lon              *float64 `json:"lon,omitempty"`
	FormattedAddress string   `json:"formattedAddress,omitempty"`
	Confidence       string   `json:"confidence,omitempty"` // High, Medium or Low
}

// RouteSummary is the summary of a route result, from its route path.
type RouteSummary struct {
	DistanceInMeters  float64 `json:"distanceInMeters"`
	DurationInSeconds float64 `json:"durationInSeconds"`
	// DurationTrafficInSeconds is absent unless the route was optimized
	// with traffic.
	DurationTrafficInSeconds *float64 `json:"durationTrafficInSeconds,omitempty"`
}

// featureCollection is the part of a GeoJSON answer the summaries read.
type featureCollection[P any] struct {
	Type     string `json:"type"`
	Features []struct {
		Geometry struct {
			Coordinates json.RawMessage `json:"coordinates"`
		} `json:"geometry"`
		Properties P `json:"properties"`
	} `json:"features"`
}

func summarizeGeocode(body []byte) (*GeocodeSummary, error) {
	var fc featureCollection[struct {
		Confidence string `json:"confidence"`
		Address    struct {
			FormattedAddress string `json:"formattedAddress"`
		} `json:"address"`
	}]
	if err := json.Unmarshal(body, &fc); err != nil {
		return nil, err
	}
	if fc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("type is %q, not FeatureCollection", fc.Type)
	}
	s := &GeocodeSummary{Matches: len(fc.Features)}
	if len(fc.Features) == 0 {
		return s, nil
	}
	first := fc.Features[0]
	// GeoJSON positions are [longitude, latitude].
	var pos []float64
	if err := json.Unmarshal(first.Geometry.Coordinates, &pos); err != nil || len(pos) < 2 {
		return nil, errors.New("the first feature has no point coordinates")
	}
	s.Lon, s.Lat = &pos[0], &pos[1]
	s.FormattedAddress = first.Properties.Address.FormattedAddress
	s.Confidence = first.Properties.Confidence
	return s, nil
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
