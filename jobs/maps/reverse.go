package maps

import (
	"context"
	"strconv"

	"mapsworker/jobs/maps/catalog"
)

// reverseBatchItem is one item of a /reverseGeocode:batch request: the GET
// parameters as JSON, with coordinates as [lon, lat].
type reverseBatchItem struct {
	Coordinates [2]float64 `json:"coordinates"`
	ResultTypes []string   `json:"resultTypes,omitempty"`
	View        string     `json:"view,omitempty"`
	OptionalID  string     `json:"optionalId,omitempty"`
}

// ReverseGeocodeBatch reverse-geocodes up to 100 positions in one call
// (POST /reverseGeocode:batch), with item errors as for GeocodeBatch. It
// counts against the Search batch rate limit, shared with GeocodeBatch.
func (c *Client) ReverseGeocodeBatch(ctx context.Context, qs []ReverseGeocodeQuery) (*BatchResponse, error) {
	items := make([]reverseBatchItem, len(qs))
	for i, q := range qs {
		items[i] = reverseBatchItem{
			Coordinates: [2]float64{q.Position.Lon, q.Position.Lat},
			ResultTypes: q.ResultTypes,
			View:        q.View,
			OptionalID:  strconv.Itoa(i),
		}
	}
	req, err := c.post(ctx, c.url(catalog.ReverseGeocodeBatch), struct {
		BatchItems []reverseBatchItem `json:"batchItems"`
	}{items})
	if err != nil {
		return nil, err
	}
	return c.doBatch(req, len(qs))
}
