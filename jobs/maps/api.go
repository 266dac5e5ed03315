package maps

import (
	"context"
	"errors"
	"mapsworker/jobs/maps/catalog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Geocode finds the positions of an address (GET /geocode). The answer is a
// GeoJSON FeatureCollection, best match first.
func (c *Client) Geocode(ctx context.Context, q GeocodeQuery) (*Response, error) {
	req, err := c.get(ctx, c.url(catalog.Geocode), q.values())
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

// ReverseGeocode finds the address at a position (GET /reverseGeocode).
func (c *Client) ReverseGeocode(ctx context.Context, q ReverseGeocodeQuery) (*Response, error) {
	v := url.Values{"api-version": {APIVersion}, "coordinates": {lonLat(q.Position)}}
	if len(q.ResultTypes) > 0 {
		v.Set("resultTypes", strings.Join(q.ResultTypes, ","))
	}
	if q.View != "" {
		v.Set("view", q.View)
	}
	req, err := c.get(ctx, c.url(catalog.ReverseGeocode), v)
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

// RouteDirections computes a route through the waypoints in order
// (POST /route/directions). The answer is a GeoJSON FeatureCollection whose
// RoutePath feature holds the distance and durations.
func (c *Client) RouteDirections(ctx context.Context, r RouteRequest) (*Response, error) {
	req, err := c.post(ctx, c.url(catalog.Route), r.body(""))
	if err != nil {
		return nil, err
	}
	setLanguage(req, r.Language)
	return c.do(req)
}

// setLanguage asks for instructions in lang (Accept-Language); "" leaves
// the service's default.
func setLanguage(req *policy.Request, lang string) {
	if lang != "" {
		req.Raw().Header.Set("Accept-Language", lang)
	}
}

// ErrMixedLanguages is RouteDirectionsBatch's refusal of items that ask for
// different languages: a batch call has one Accept-Language header.
var ErrMixedLanguages = errors.New("maps: the items of a route batch must share one language")

// GeocodeBatch geocodes up to 100 queries in one call (POST /geocode:batch).
// Azure Maps answers 400 to an empty batch or one over 100 items; an item
// that fails on its own is reported in its BatchItem, not as an error.
func (c *Client) GeocodeBatch(ctx context.Context, qs []GeocodeQuery) (*BatchResponse, error) {
	items := make([]geocodeBatchItem, len(qs))
	for i := range qs {
		items[i] = qs[i].batchItem(strconv.Itoa(i))
	}
	req, err := c.post(ctx, c.url(catalog.GeocodeBatch), struct {
		BatchItems []geocodeBatchItem `json:"batchItems"`
	}{items})
	if err != nil {
		return nil, err
	}
	return c.doBatch(req, len(qs))
}

// RouteDirectionsBatch computes up to 100 routes in one call
// (POST /route/directions:batch), with item errors as for GeocodeBatch.
// The items must share one Language (ErrMixedLanguages otherwise).
func (c *Client) RouteDirectionsBatch(ctx context.Context, rs []RouteRequest) (*BatchResponse, error) {
	items := make([]routeBody, len(rs))
	for i := range rs {
		if rs[i].Language != rs[0].Language {
			return nil, ErrMixedLanguages
		}
		items[i] = rs[i].body(strconv.Itoa(i))
	}
	req, err := c.post(ctx, c.url(catalog.RouteBatch), struct {
		BatchItems []routeBody `json:"batchItems"`
	}{items})
	if err != nil {
		return nil, err
	}
	if len(rs) > 0 {
		setLanguage(req, rs[0].Language)
	}
	return c.doBatch(req, len(rs))
}

func (c *Client) get(ctx context.Context, u string, v url.Values) (*policy.Request, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, u)
	if err != nil {
		return nil, err
	}
	req.Raw().URL.RawQuery = v.Encode()
	req.Raw().Header.Set("Accept", "application/geo+json, application/json")
	return req, nil
}

func (c *Client) post(ctx context.Context, u string, body any) (*policy.Request, error) {
	req, err := runtime.NewRequest(ctx, http.MethodPost, u)
	if err != nil {
		return nil, err
	}
	req.Raw().URL.RawQuery = "api-version=" + APIVersion
	req.Raw().Header.Set("Accept", "application/geo+json, application/json")
	if err := runtime.MarshalAsJSON(req, body); err != nil {
		return nil, err
	}
	return req, nil
}

// do sends req and returns the body of a 2xx answer verbatim.
func (c *Client) do(req *policy.Request) (*Response, error) {
	resp, err := c.pl.Do(req)
	if err != nil {
		return nil, pipelineError(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newResponseError(resp)
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return nil, err
	}
	return &Response{StatusCode: resp.StatusCode, RequestID: resp.Header.Get(headerRequestID), Body: body}, nil
}

// pipelineError returns a *TokenError as itself, whatever azcore wrapped
// around it, so that its message is the one callers see.
func pipelineError(err error) error {
	var te *TokenError
	if errors.As(err, &te) {
		return te
	}
	return err
}

// values returns the query string parameters of q.
func (q *GeocodeQuery) values() url.Values {
	v := url.Values{"api-version": {APIVersion}}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("query", q.Query)
	set("addressLine", q.AddressLine)
	set("locality", q.Locality)
	set("adminDistrict", q.AdminDistrict)
	set("postalCode", q.PostalCode)
	set("countryRegion", q.CountryRegion)
	if q.Top != 0 {
		v.Set("top", strconv.Itoa(q.Top))
	}
	if len(q.BBox) > 0 {
		parts := make([]string, len(q.BBox))
		for i, f := range q.BBox {
			parts[i] = formatFloat(f)
		}
		v.Set("bbox", strings.Join(parts, ","))
	}
	if q.Coordinates != nil {
		v.Set("coordinates", lonLat(*q.Coordinates))
	}
	set("view", q.View)
	return v
}

// geocodeBatchItem is one item of a /geocode:batch request: the GET
// parameters as JSON, with bbox and coordinates as arrays.
type geocodeBatchItem struct {
	Query         string    `json:"query,omitempty"`
	AddressLine   string    `json:"addressLine,omitempty"`
	Locality      string    `json:"locality,omitempty"`
	AdminDistrict string    `json:"adminDistrict,omitempty"`
	PostalCode    string    `json:"postalCode,omitempty"`
	CountryRegion string    `json:"countryRegion,omitempty"`
	Top           int       `json:"top,omitempty"`
	BBox          []float64 `json:"bbox,omitempty"`
	Coordinates   []float64 `json:"coordinates,omitempty"`
	View          string    `json:"view,omitempty"`
	OptionalID    string    `json:"optionalId,omitempty"`
}

func (q *GeocodeQuery) batchItem(id string) geocodeBatchItem {
	it := geocodeBatchItem{
		Query: q.Query, AddressLine: q.AddressLine, Locality: q.Locality,
		AdminDistrict: q.AdminDistrict, PostalCode: q.PostalCode, CountryRegion: q.CountryRegion,
		Top: q.Top, BBox: q.BBox, View: q.View, OptionalID: id,
	}
	if q.Coordinates != nil {
		it.Coordinates = []float64{q.Coordinates.Lon, q.Coordinates.Lat}
	}
	return it
}

// routeBody is the Route Directions request: a GeoJSON FeatureCollection of
// the waypoints plus the options, as in the 2025-01-01 API.
type routeBody struct {
	Type          string         `json:"type"`
	Features      []routeFeature `json:"features"`
	TravelMode    string         `json:"travelMode,omitempty"`
	OptimizeRoute string         `json:"optimizeRoute,omitempty"`
	RouteOptions
	RouteOutputOptions    []string `json:"routeOutputOptions,omitempty"`
	MaxRouteCount         int      `json:"maxRouteCount,omitempty"`
	Heading               *int     `json:"heading,omitempty"`
	OptimizeWaypointOrder bool     `json:"optimizeWaypointOrder,omitempty"`
	OptionalID            string   `json:"optionalId,omitempty"`
}

type routeFeature struct {
	Type       string          `json:"type"`
	Geometry   pointGeometry   `json:"geometry"`
	Properties routeProperties `json:"properties"`
}

type pointGeometry struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"` // [lon, lat]
}

type routeProperties struct {
	PointIndex int    `json:"pointIndex"`
	PointType  string `json:"pointType"`
}

func (r *RouteRequest) body(id string) routeBody {
	b := routeBody{
		Type:                  "FeatureCollection",
		Features:              make([]routeFeature, len(r.Waypoints)),
		TravelMode:            r.TravelMode,
		OptimizeRoute:         r.OptimizeRoute,
		RouteOptions:          r.RouteOptions,
		RouteOutputOptions:    r.RouteOutputOptions,
		MaxRouteCount:         r.MaxRouteCount,
		Heading:               r.Heading,
		OptimizeWaypointOrder: r.OptimizeWaypointOrder,
		OptionalID:            id,
	}
	for i, p := range r.Waypoints {
		pointType := "waypoint"
		if i < len(r.Via) && r.Via[i] {
			pointType = "viaWaypoint"
		}
		b.Features[i] = routeFeature{
			Type:       "Feature",
			Geometry:   pointGeometry{Type: "Point", Coordinates: [2]float64{p.Lon, p.Lat}},
			Properties: routeProperties{PointIndex: i, PointType: pointType},
		}
	}
	return b
}

// lonLat formats p in the order Azure Maps wants: longitude first.
func lonLat(p Position) string {
	return formatFloat(p.Lon) + "," + formatFloat(p.Lat)
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}
