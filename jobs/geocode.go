package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// KindGeocode finds the positions of an address: free text ("query") or
// structured address fields (GET /geocode, POST /geocode:batch).
const KindGeocode = "geocode"

// geocodeBatcher is the batch call of the geocode API.
type geocodeBatcher interface {
	GeocodeBatch(ctx context.Context, qs []maps.GeocodeQuery) (*maps.BatchResponse, error)
}

type geocodeKind struct {
	maps  Maps
	batch *batcher[maps.GeocodeQuery] // nil unless batching
}

func newGeocode(e *env) kind {
	k := &geocodeKind{}
	if e == nil {
		return k
	}
	k.maps = e.maps
	if bm, ok := e.maps.(geocodeBatcher); ok && e.batch {
		k.batch = newBatcher(e.maps.Geocode, bm.GeocodeBatch, e.batchMax)
	}
	return k
}

func (*geocodeKind) name() string { return KindGeocode }

func (k *geocodeKind) decode(f fields) (call, error) {
	q, err := decodeGeocode(f)
	if err != nil {
		return nil, err
	}
	return &geocodeCall{k: k, q: *q}, nil
}

// probeGeocode is the probe's request, an address every account can find.
var probeGeocode = maps.GeocodeQuery{Query: "1 Microsoft Way, Redmond, WA 98052", Top: 1}

func (k *geocodeKind) probe() call { return &geocodeCall{k: k, q: probeGeocode, alone: true} }

func (*geocodeKind) describe(summary json.RawMessage) (string, error) {
	return describeGeocode(summary)
}

func (*geocodeKind) fromArgs(args []string, o ArgOptions) (map[string]any, error) {
	if len(args) != 1 {
		return nil, errors.New(`geocode takes one address: enqueue geocode "1 Main St, Springfield"`)
	}
	f := map[string]any{"query": args[0]}
	if o.Top != 0 {
		f["top"] = o.Top
	}
	return f, nil
}

func (*geocodeKind) example() []string { return []string{"15127 NE 24th Street, Redmond, WA"} }

type geocodeCall struct {
	k     *geocodeKind
	q     maps.GeocodeQuery
	alone bool // never batched (probes)
}

func (c *geocodeCall) run(ctx context.Context) (*worker.Output, error) {
	var resp *maps.Response
	var err error
	if c.k.batch != nil && !c.alone {
		resp, err = c.k.batch.do(ctx, c.q)
	} else {
		resp, err = c.k.maps.Geocode(ctx, c.q)
	}
	return output(resp, err, summarizeGeocode)
}

// structuredFields are the structured address fields of a geocode request.
//
// countryRegion is one of them, as DESIGN.md says, although the issue that
// asked for free-text geocoding mentions "query with optional countryRegion":
// Azure Maps allows only bbox, coordinates, view and top next to a query and
// answers any other field with "Conflicting Parameters" (see the batch
// example in testdata), so a query with countryRegion could never succeed.
// The worker says so before calling Maps, with a message that explains it.
var structuredFields = []string{"addressLine", "locality", "adminDistrict", "postalCode", "countryRegion"}

func decodeGeocode(f fields) (*maps.GeocodeQuery, error) {
	var q maps.GeocodeQuery
	var err error
	// Blank text counts as absent, as producers that serialize every
	// property write "" for the ones not set.
	if q.Query, err = optionalText(f, "query"); err != nil {
		return nil, err
	}
	structured := []*string{&q.AddressLine, &q.Locality, &q.AdminDistrict, &q.PostalCode, &q.CountryRegion}
	var given []string
	for i, name := range structuredFields {
		if *structured[i], err = optionalText(f, name); err != nil {
			return nil, err
		}
		if *structured[i] != "" {
			given = append(given, name)
		}
	}
	switch {
	case q.Query != "" && len(given) > 0:
		return nil, worker.Invalidf(codeConflicting, "query cannot be combined with %s: Azure Maps takes either free text or structured address fields (put the country in the query text, or use addressLine with countryRegion)", strings.Join(given, ", "))
	case q.Query == "" && len(given) == 0:
		return nil, worker.Invalidf(codeMissingField, "geocode needs a query or at least one of %s", strings.Join(structuredFields, ", "))
	}

	if raw, ok := f.get("top"); ok {
		if q.Top, err = decodeInt("top", raw, 1, maxTop); err != nil {
			return nil, err
		}
	}
	if raw, ok := f.get("bbox"); ok {
		if q.BBox, err = decodeBBox("bbox", raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := f.get("coordinates"); ok {
		p, err := decodePosition("coordinates", raw)
		if err != nil {
			return nil, err
		}
		q.Coordinates = &p
	}
	if q.View, err = decodeView(f); err != nil {
		return nil, err
	}
	return &q, nil
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

// describeGeocode shows a geocode summary: the position with its address and
// confidence, or "no match".
func describeGeocode(summary json.RawMessage) (string, error) {
	var s GeocodeSummary
	if err := json.Unmarshal(summary, &s); err != nil {
		return "", err
	}
	if s.Lat == nil || s.Lon == nil {
		return "no match", nil
	}
	line := fmt.Sprintf("%.6f, %.6f", *s.Lat, *s.Lon)
	if s.FormattedAddress != "" {
		line += "  " + s.FormattedAddress
	}
	if s.Confidence != "" {
		line += "  [" + s.Confidence + "]"
	}
	return line, nil
}
