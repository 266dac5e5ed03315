package jobs

import (
	"context"
	"encoding/json"
	"errors"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// KindReverseGeocode finds the address at a position (GET /reverseGeocode).
const KindReverseGeocode = "reverse-geocode"

type reverseKind struct {
	maps Maps
}

func newReverseGeocode(e *env) kind {
	k := &reverseKind{}
	if e != nil {
		k.maps = e.maps
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

func (k *reverseKind) probe() call { return &reverseCall{k: k, q: probeReverse} }

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

func (*reverseKind) usage() string { return "47.6303,-122.1387" }

type reverseCall struct {
	k *reverseKind
	q maps.ReverseGeocodeQuery
}

func (c *reverseCall) run(ctx context.Context) (*worker.Output, error) {
	resp, err := c.k.maps.ReverseGeocode(ctx, c.q)
	return output(resp, err, summarizeGeocode)
}

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
	if q.View, err = optionalText(f, "view"); err != nil {
		return nil, err
	}
	return q, nil
}
