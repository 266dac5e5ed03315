package jobs

import (
	"context"
	"encoding/json"
	"errors"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// KindReverseGeocode finds the address at a position (GET /reverseGeocode,
// POST /reverseGeocode:batch).
const KindReverseGeocode = "reverse-geocode"

// reverseBatcher is the batch call of the reverse geocoding API.
type reverseBatcher interface {
	ReverseGeocodeBatch(ctx context.Context, qs []maps.ReverseGeocodeQuery) (*maps.BatchResponse, error)
}

type reverseKind struct {
	maps  Maps
	batch *batcher[maps.ReverseGeocodeQuery] // nil unless batching
}

func newReverseGeocode(e *env) kind {
	k := &reverseKind{}
	if e == nil {
		return k
	}
	k.maps = e.maps
	if bm, ok := e.maps.(reverseBatcher); ok && e.batch {
		k.batch = newBatcher(e.maps.ReverseGeocode, bm.ReverseGeocodeBatch, e.batchMax)
	}
	return k
}

func (*reverseKind) name() string { return KindReverseGeocode }

func (k *reverseKind) decode(f fields) (call, error) {
	q, err := decodeReverseGeocode(f)
	if err != nil {
		return nil, err
	}
	return &reverseCall{k: k, q: *q}, nil
}

// probeReverse is the probe's request, a position every account can name.
var probeReverse = maps.ReverseGeocodeQuery{Position: maps.Position{Lat: 47.6396, Lon: -122.1283}}

func (k *reverseKind) probe() call { return &reverseCall{k: k, q: probeReverse, alone: true} }

func (*reverseKind) describe(summary json.RawMessage) (string, error) {
	return describeGeocode(summary)
}

func (*reverseKind) fromArgs(args []string, _ ArgOptions) (map[string]any, error) {
	if len(args) != 1 {
		return nil, errors.New("reverse-geocode takes one position: enqueue reverse-geocode 47.63,-122.14")
	}
	p, err := parseLatLon(args[0])
	if err != nil {
		return nil, err
	}
	return map[string]any{"position": p}, nil
}

func (*reverseKind) example() []string { return []string{"47.6303,-122.1387"} }

type reverseCall struct {
	k     *reverseKind
	q     maps.ReverseGeocodeQuery
	alone bool // never batched (probes)
}

func (c *reverseCall) run(ctx context.Context) (*worker.Output, error) {
	var resp *maps.Response
	var err error
	if c.k.batch != nil && !c.alone {
		resp, err = c.k.batch.do(ctx, c.q)
	} else {
		resp, err = c.k.maps.ReverseGeocode(ctx, c.q)
	}
	return output(resp, err, summarizeGeocode)
}

// reverseResultTypes are the entity types reverse geocoding can be asked
// for, most specific first, as Azure Maps spells them.
var reverseResultTypes = []string{"Address", "Neighborhood", "PopulatedPlace", "Postcode1", "AdminDivision1", "AdminDivision2", "CountryRegion"}

func decodeReverseGeocode(f fields) (*maps.ReverseGeocodeQuery, error) {
	raw, ok := f.get("position")
	if !ok {
		return nil, worker.Invalidf(codeMissingField, "position is required: {\"lat\": …, \"lon\": …}")
	}
	p, err := decodePosition("position", raw)
	if err != nil {
		return nil, err
	}
	q := &maps.ReverseGeocodeQuery{Position: p}
	if raw, ok := f.get("resultTypes"); ok {
		if q.ResultTypes, err = decodeEnumList("resultTypes", raw, reverseResultTypes); err != nil {
			return nil, err
		}
	}
	if q.View, err = decodeView(f); err != nil {
		return nil, err
	}
	return q, nil
}
