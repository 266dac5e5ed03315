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

// RouteRequest is one Route Directions request (api-version 2025-01-01).
// Zero values leave the service's defaults.
type RouteRequest struct {
	Waypoints []Position
	// Via marks the viaWaypoints among Waypoints (pointType "viaWaypoint":
	// points the route passes through without ending a leg). Nil, or
	// shorter than Waypoints, means waypoints.
	Via           []bool
	TravelMode    string // driving | truck | walking; "" is driving
	OptimizeRoute string // optional, e.g. fastestWithoutTraffic
	RouteOptions         // the options Route Directions shares with Route Matrix
	// RouteOutputOptions selects what the answer holds: "routeSummary",
	// "routePath", "itinerary" (the service default), "regionTravelSummary".
	RouteOutputOptions []string
	// MaxRouteCount is the most routes to return, 1..3 (driving, truck);
	// 0 leaves the default, 1. Alternatives come in alternativeRoutes.
	MaxRouteCount int
	// Heading is the vehicle's initial heading, 0..359 degrees clockwise
	// from north; nil leaves it unset.
	Heading *int
	// OptimizeWaypointOrder reorders the waypoints between the first and
	// the last (truck only).
	OptimizeWaypointOrder bool
	// Language is sent as Accept-Language: the language of instructions.
	// A batch call has one header, so its items must share one language.
	Language string
}

// RouteOptions are the route options that Route Directions and Route Matrix
// (POST /route/matrix, /route/matrix:async) both take, under the same JSON
// names; a request body embeds them as they are.
type RouteOptions struct {
	// DepartAt and ArriveAt are RFC 3339 date-times; at most one is set.
	DepartAt string `json:"departAt,omitempty"`
	ArriveAt string `json:"arriveAt,omitempty"`
	// Avoid lists what the route avoids: limitedAccessHighways, tollRoads,
	// ferries, tunnels, borderCrossings, lowEmissionZones, unpavedRoads
	// (driving and truck; tunnels, lowEmissionZones and unpavedRoads are
	// for trucks only).
	Avoid []string `json:"avoid,omitempty"`
	// VehicleSpec describes a truck (truck only).
	VehicleSpec *VehicleSpec `json:"vehicleSpec,omitempty"`
}

// VehicleSpec is a truck's dimensions, weights and load, as the 2025-01-01
// API names them. A zero number means "not considered", the service's
// default, and is not sent.
type VehicleSpec struct {
	IsVehicleCommercial bool    `json:"isVehicleCommercial,omitempty"`
	Length              float64 `json:"length,omitempty"`     // meters, 0..1000000
	Width               float64 `json:"width,omitempty"`      // meters, 0..1000000
	Height              float64 `json:"height,omitempty"`     // meters, 0..1000000
	Weight              int     `json:"weight,omitempty"`     // kilograms, 0..1000000
	MaxSpeed            int     `json:"maxSpeed,omitempty"`   // km/h, 0..250
	AxleWeight          int     `json:"axleWeight,omitempty"` // kilograms per axle, 0..1000000
	// AxleCount is the number of axles. Route Directions and Route Range
	// take it; Route Matrix does not.
	AxleCount int `json:"axleCount,omitempty"`
	// LoadType lists hazardous load classes: USHazmatClass1..9 (US) or
	// otherHazmatExplosive, otherHazmatGeneral, otherHazmatHarmfulToWater.
	LoadType []string `json:"loadType,omitempty"`
	// AdrTunnelRestrictionCode is B, C, D or E (ADR, Europe).
	AdrTunnelRestrictionCode string `json:"adrTunnelRestrictionCode,omitempty"`
}

// Response is a successful answer: the body verbatim and the service's
// request id (x-ms-request-id), for support cases.
type Response struct {
	StatusCode int
	RequestID  string
	Body       json.RawMessage
}
