// Package catalog lists the Azure Maps APIs the worker calls, the paths
// that address them and the rate limit each counts against. The client, its
// rate limiter, the telemetry labels and the emulator all read this one list.
package catalog

import (
	"net/http"
	"strings"
)

// An API is one Azure Maps REST operation the client calls.
type API struct {
	// Name names the API in metrics, the emulator's statistics and logs.
	Name string
	// Method and Path (after the account's endpoint) address it.
	Method, Path string
	// Limit is the name of the rate limit it counts against, a key of
	// DefaultRateLimits (and of maps.ClientOptions.RateLimits). Azure Maps limits
	// a service category, not an operation: APIs of one category share one.
	Limit string
}

// Names of the Azure Maps APIs, and of the rate limits (the first of a
// category's APIs names its limit).
const (
	Geocode        = "geocode"
	ReverseGeocode = "reverseGeocode"
	Route          = "route"
	GeocodeBatch   = "geocodeBatch"
	RouteBatch     = "routeBatch"
	// ReverseGeocodeBatch counts against the Search batch limit, as
	// GeocodeBatch does.
	ReverseGeocodeBatch = "reverseGeocodeBatch"
	// The Route Matrix APIs count against the Route non-batch limit: the
	// Gen2 table names no category of their own, and a matrix is one
	// request (billed by its cells, not counted by them).
	RouteMatrix          = "routeMatrix"
	RouteMatrixAsync     = "routeMatrixAsync"
	RouteOperation       = "routeOperation"
	RouteOperationResult = "routeOperationResult"
)

// APIs lists every Azure Maps API the client calls, and the rate limit each
// counts against: the one place they are named. A request path belongs to
// the API whose Path it ends with, segment by segment; a segment written
// "{name}" in Path matches any one segment ("/route/operations/{id}").
var APIs = []API{
	{Geocode, http.MethodGet, "/geocode", Geocode},
	{ReverseGeocode, http.MethodGet, "/reverseGeocode", ReverseGeocode},
	{Route, http.MethodPost, "/route/directions", Route},
	{GeocodeBatch, http.MethodPost, "/geocode:batch", GeocodeBatch},
	{RouteBatch, http.MethodPost, "/route/directions:batch", RouteBatch},
	{ReverseGeocodeBatch, http.MethodPost, "/reverseGeocode:batch", GeocodeBatch},
	{RouteMatrix, http.MethodPost, "/route/matrix", Route},
	{RouteMatrixAsync, http.MethodPost, "/route/matrix:async", Route},
	{RouteOperation, http.MethodGet, "/route/operations/{id}", Route},
	{RouteOperationResult, http.MethodGet, "/route/operations/{id}/result", Route},
}

// defaultLimits are the per-account QPS limits of Azure Maps Gen2 by
// service category (learn.microsoft.com/azure/azure-maps/azure-maps-qps-rate-limits):
// Search non-batch 500, Search reverse 250, Route non-batch 50, Search and
// Route batch 10 each.
var defaultLimits = map[string]int{
	Geocode: 500, ReverseGeocode: 250, Route: 50,
	GeocodeBatch: 10, RouteBatch: 10,
}

// DefaultRateLimits returns the per-account QPS limits of Azure Maps Gen2,
// keyed by the limits' names.
func DefaultRateLimits() map[string]int {
	m := make(map[string]int, len(defaultLimits))
	for k, v := range defaultLimits {
		m[k] = v
	}
	return m
}

// patterns are the segments of each API's Path, split once: Of runs for
// every Maps request (the rate limiter, telemetry).
var patterns = func() [][]string {
	p := make([][]string, len(APIs))
	for i, a := range APIs {
		p[i] = strings.Split(strings.TrimPrefix(a.Path, "/"), "/")
	}
	return p
}()

// Of returns the API a request path belongs to, or nil.
func Of(path string) *API {
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	for i := range APIs {
		if endsWith(segs, patterns[i]) {
			return &APIs[i]
		}
	}
	return nil
}

// endsWith reports whether the path segments segs end with pattern's.
func endsWith(segs, pattern []string) bool {
	if len(pattern) > len(segs) {
		return false
	}
	tail := segs[len(segs)-len(pattern):]
	for i, p := range pattern {
		if tail[i] != p && !(strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") && tail[i] != "") {
			return false
		}
	}
	return true
}

// NameOf names the API of a request path, as metrics label it, or
// "other".
func NameOf(path string) string {
	if a := Of(path); a != nil {
		return a.Name
	}
	return "other"
}
