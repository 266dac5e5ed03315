package mapstest

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// resultTypes are the entity types reverse geocoding takes, most specific
// first.
var resultTypes = map[string]bool{
	"Address": true, "AdminDivision1": true, "AdminDivision2": true, "CountryRegion": true,
	"Neighborhood": true, "PopulatedPlace": true, "Postcode1": true,
}

// reverseIn is one reverse-geocoding request, from a query string or a
// batch item.
type reverseIn struct {
	lon, lat    float64
	resultTypes []string
}

// reverseItem is one item of a /reverseGeocode:batch request: the GET
// parameters as JSON, coordinates as [lon, lat].
type reverseItem struct {
	Coordinates []float64 `json:"coordinates"`
	ResultTypes []string  `json:"resultTypes"`
	View        string    `json:"view"`
	OptionalID  string    `json:"optionalId"`
}

func reverseFromQuery(q url.Values) (reverseIn, string) {
	var c [2]float64
	v := q.Get("coordinates")
	switch {
	case v == "":
		return reverseIn{}, "coordinates is missing or empty"
	case !parseFloats(v, c[:]):
		return reverseIn{}, "coordinates must be 2 comma-separated numbers: longitude,latitude."
	}
	var types []string
	if rt := q.Get("resultTypes"); rt != "" {
		for _, t := range strings.Split(rt, ",") {
			types = append(types, strings.TrimSpace(t))
		}
	}
	return reverseIn{lon: c[0], lat: c[1], resultTypes: types}.check(q.Get("view"))
}

func (it *reverseItem) input() (reverseIn, string) {
	if len(it.Coordinates) != 2 {
		return reverseIn{}, "coordinates must be 2 numbers: [longitude, latitude]."
	}
	return reverseIn{lon: it.Coordinates[0], lat: it.Coordinates[1], resultTypes: it.ResultTypes}.check(it.View)
}

// check validates in and view as the service does, and returns the
// message of the 400 it answers, or "".
func (in reverseIn) check(view string) (reverseIn, string) {
	if !validLonLat(in.lon, in.lat) {
		return in, "coordinates are out of range: longitude must be within [-180, 180] and latitude within [-90, 90]."
	}
	for _, t := range in.resultTypes {
		if !resultTypes[t] {
			return in, "resultTypes has an unknown value '" + t + "'."
		}
	}
	if !validView(view) {
		return in, "view '" + view + "' is not a supported view: use Auto or an ISO 3166-1 alpha-2 code."
	}
	return in, ""
}

// validView reports whether v is a view the service takes: empty (Auto),
// "Auto", or two letters of an ISO 3166-1 code.
func validView(v string) bool {
	if v == "" || strings.EqualFold(v, "Auto") {
		return true
	}
	return len(v) == 2 && isLetter(v[0]) && isLetter(v[1])
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

func (s *Server) reverseGeocode(w http.ResponseWriter, st *counters, q url.Values) {
	in, msg := reverseFromQuery(q)
	if msg != "" {
		s.badRequest(w, st, msg)
		return
	}
	s.replyFeatures(w, st, func(j *jbuf) { writeReverseFeatures(j, &in) })
}

func (s *Server) reverseGeocodeBatch(w http.ResponseWriter, st *counters, body []byte) {
	serveBatch(s, w, st, body, func(it *reverseItem) string { return it.OptionalID },
		func(j *jbuf, it *reverseItem) (code, msg string) {
			in, msg := it.input()
			if msg != "" {
				return codeBadRequest, msg
			}
			j.raw(`"type":"FeatureCollection",`)
			writeReverseFeatures(j, &in)
			return "", ""
		})
}

// writeReverseFeatures writes the features member of the answer for in: the
// address of the nearest known place, made up from the position, typed as
// the most specific of the result types asked for.
func writeReverseFeatures(j *jbuf, in *reverseIn) {
	typ := "Address"
	if len(in.resultTypes) > 0 {
		typ = in.resultTypes[0]
	}
	lon, lat := in.lon, in.lat
	p := nearestPlace(lon, lat)
	h := fnvFloat(fnvFloat(fnvOffset, math.Round(lon*1e6)), math.Round(lat*1e6))
	street := p.streets[h%uint64(len(p.streets))]
	number := strconv.Itoa(1 + int(mix(h, 2)%19999))
	addressLine := number + " " + street

	j.raw(`"features":[{"type":"Feature","properties":{"address":{"countryRegion":{"ISO":`).str(p.iso).
		raw(`,"name":`).str(p.country).
		raw(`},"adminDistricts":[{"name":`).str(p.adminName).raw(`,"shortName":`).str(p.adminShort).
		raw(`},{"name":`).str(p.county).raw(`,"shortName":`).str(p.county).
		raw(`}],"formattedAddress":`).str(addressLine+", "+p.locality+", "+p.adminName+" "+p.postal).
		raw(`,"streetName":`).str(street).raw(`,"streetNumber":"`).raw(number).
		raw(`","locality":`).str(p.locality).raw(`,"postalCode":`).str(p.postal).
		raw(`,"addressLine":`).str(addressLine).
		raw(`},"type":`).str(typ).
		raw(`,"confidence":"Medium","matchCodes":["Good"],"geocodePoints":[{"geometry":{"type":"Point","coordinates":`).lonLat(lon, lat).
		raw(`},"calculationMethod":"Rooftop","usageTypes":["Display"]}]},"geometry":{"type":"Point","coordinates":`).lonLat(lon, lat).
		raw(`},"bbox":[`).coord(lon - 0.0076).raw(",").coord(lat - 0.0039).raw(",").coord(lon + 0.0076).raw(",").coord(lat + 0.0039).
		raw(`]}]`)
}
