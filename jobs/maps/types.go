// Package maps is a client for the Azure Maps data-plane REST APIs the worker
// uses (Geocoding and Route Directions, api-version 2025-01-01), built on
// azcore's pipeline.
package maps

import "encoding/json"

// Position is a point in degrees.
type Position struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// GeocodeQuery is one forward-geocoding request: either free text (Query)
// or structured address fields, never both.
type GeocodeQuery struct {
	Query         string
	AddressLine   string
	Locality      string
	AdminDistrict string
	PostalCode    string
	CountryRegion string
	Top           int       // 1..20; 0 leaves the service default (5)
	BBox          []float64 // [west, south, east, north], optional
	Coordinates   *Position // bias point, optional
	View          string    // optional
}

// ReverseGeocodeQuery is one reverse-geocoding request.
type ReverseGeocodeQuery struct {
	Position    Position
	ResultTypes []string // optional
	View        string   // optional
}

// RouteRequest is one Route Directions request.
type RouteRequest struct {
	Waypoints     []Position
	TravelMode    string // driving | truck | walking; "" is driving
	OptimizeRoute string // optional, e.g. fastestWithoutTraffic
	DepartAt      string // optional, RFC 3339
	// RouteOutputOptions selects what the answer holds, e.g. "routeSummary"
	// (the service default) or "routePath"; optional.
	RouteOutputOptions []string
}

// Response is a successful answer: the body verbatim and the service's
// request id (x-ms-request-id), for support cases.
type Response struct {
	StatusCode int
	RequestID  string
	Body       json.RawMessage
}
