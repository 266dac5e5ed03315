package maps

import "mapsworker/jobs/maps/catalog"

// Names of the rate limits in ClientOptions.RateLimits, which are also the
// names of the APIs that set them (see package catalog for the list of APIs).
const (
	APIGeocode        = catalog.Geocode
	APIReverseGeocode = catalog.ReverseGeocode
	APIRoute          = catalog.Route
	APIGeocodeBatch   = catalog.GeocodeBatch
	APIRouteBatch     = catalog.RouteBatch
)

// DefaultRateLimits returns the per-account QPS limits of Azure Maps Gen2,
// keyed by the limits' names.
func DefaultRateLimits() map[string]int { return catalog.DefaultRateLimits() }

// limitOf names the rate limit of a request path, or "".
func limitOf(path string) string {
	if a := catalog.Of(path); a != nil {
		return a.Limit
	}
	return ""
}
