package mapstest

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// place is a seed for plausible answers: a locality with its districts,
// country and a few street names.
type place struct {
	locality, adminShort, adminName, county, iso, country, postal string
	lat, lon                                                      float64
	streets                                                       []string
}

var places = []place{
	{"Redmond", "WA", "Washington", "King County", "US", "United States", "98052", 47.6740, -122.1215, []string{"NE 24th St", "148th Ave NE", "Redmond Way", "NE 40th St"}},
	{"Seattle", "WA", "Washington", "King County", "US", "United States", "98101", 47.6062, -122.3321, []string{"Pike St", "1st Ave", "Pine St", "4th Ave"}},
	{"Bellevue", "WA", "Washington", "King County", "US", "United States", "98004", 47.6101, -122.2015, []string{"Bellevue Way NE", "NE 8th St", "108th Ave NE"}},
	{"New York", "NY", "New York", "New York County", "US", "United States", "10001", 40.7128, -74.0060, []string{"Broadway", "5th Ave", "W 34th St"}},
	{"London", "ENG", "England", "Greater London", "GB", "United Kingdom", "EC1A 1BB", 51.5072, -0.1276, []string{"Baker Street", "Oxford Street", "Fleet Street"}},
	{"Paris", "IDF", "Île-de-France", "Paris", "FR", "France", "75001", 48.8566, 2.3522, []string{"Rue de Rivoli", "Avenue de l'Opéra", "Boulevard Haussmann"}},
	{"Berlin", "BE", "Berlin", "Berlin", "DE", "Germany", "10115", 52.5200, 13.4050, []string{"Unter den Linden", "Friedrichstraße", "Karl-Marx-Allee"}},
	{"Tokyo", "13", "Tokyo", "Chiyoda", "JP", "Japan", "100-0005", 35.6762, 139.6503, []string{"Chuo-dori", "Harumi-dori", "Yasukuni-dori"}},
	{"Sydney", "NSW", "New South Wales", "City of Sydney", "AU", "Australia", "2000", -33.8688, 151.2093, []string{"George St", "Pitt St", "Macquarie St"}},
	{"São Paulo", "SP", "São Paulo", "São Paulo", "BR", "Brazil", "01310-100", -23.5505, -46.6333, []string{"Avenida Paulista", "Rua Augusta", "Rua Oscar Freire"}},
}

// Hashing: answers are pure functions of the request.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	h ^= 0xff // field separator
	h *= fnvPrime
	return h
}

func fnvFloat(h uint64, f float64) uint64 {
	b := math.Float64bits(f)
	for range 8 {
		h ^= b & 0xff
		h *= fnvPrime
		b >>= 8
	}
	return h
}

// mix is splitmix64's finalizer: one well-spread value per (h, k).
func mix(h, k uint64) uint64 {
	z := h + (k+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps x to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// containsFold reports whether s contains sub, ignoring ASCII case, without
// allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], sub) {
			return true
		}
	}
	return false
}

// ---- geocode ----

// geocodeIn is one forward-geocoding request, from a query string or a
// batch item.
type geocodeIn struct {
	query, addressLine, locality, adminDistrict, postalCode, countryRegion, view string

	top       int
	hasTop    bool
	bbox      [4]float64 // west, south, east, north
	hasBBox   bool
	coords    [2]float64 // lon, lat
	hasCoords bool
}

// geocodeItem is a /geocode:batch item.
type geocodeItem struct {
	Query         string    `json:"query"`
	AddressLine   string    `json:"addressLine"`
	Locality      string    `json:"locality"`
	AdminDistrict string    `json:"adminDistrict"`
	PostalCode    string    `json:"postalCode"`
	CountryRegion string    `json:"countryRegion"`
	View          string    `json:"view"`
	Top           *int      `json:"top"`
	BBox          []float64 `json:"bbox"`
	Coordinates   []float64 `json:"coordinates"`
	OptionalID    string    `json:"optionalId"`
}

func (it *geocodeItem) input() (geocodeIn, string) {
	in := geocodeIn{
		query: it.Query, addressLine: it.AddressLine, locality: it.Locality,
		adminDistrict: it.AdminDistrict, postalCode: it.PostalCode, countryRegion: it.CountryRegion, view: it.View,
	}
	if it.Top != nil {
		in.top, in.hasTop = *it.Top, true
	}
	if it.BBox != nil {
		if len(it.BBox) != 4 {
			return in, "bbox must hold 4 numbers: west, south, east, north."
		}
		copy(in.bbox[:], it.BBox)
		in.hasBBox = true
	}
	if it.Coordinates != nil {
		if len(it.Coordinates) != 2 {
			return in, "coordinates must hold 2 numbers: longitude, latitude."
		}
		copy(in.coords[:], it.Coordinates)
		in.hasCoords = true
	}
	return in, ""
}

func geocodeFromQuery(q url.Values) (geocodeIn, string) {
	in := geocodeIn{
		query: q.Get("query"), addressLine: q.Get("addressLine"), locality: q.Get("locality"),
		adminDistrict: q.Get("adminDistrict"), postalCode: q.Get("postalCode"),
		countryRegion: q.Get("countryRegion"), view: q.Get("view"),
	}
	if v := q.Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return in, "The value of 'top' must be an integer between 1 and 20."
		}
		in.top, in.hasTop = n, true
	}
	if v := q.Get("bbox"); v != "" {
		if !parseFloats(v, in.bbox[:]) {
			return in, "bbox must be 4 comma-separated numbers: west,south,east,north."
		}
		in.hasBBox = true
	}
	if v := q.Get("coordinates"); v != "" {
		if !parseFloats(v, in.coords[:]) {
			return in, "coordinates must be 2 comma-separated numbers: longitude,latitude."
		}
		in.hasCoords = true
	}
	return in, ""
}

// parseFloats parses exactly len(out) comma-separated finite numbers.
func parseFloats(s string, out []float64) bool {
	for i := range out {
		part, rest, found := strings.Cut(s, ",")
		if found == (i == len(out)-1) {
			return false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
		out[i], s = f, rest
	}
	return true
}

func validLonLat(lon, lat float64) bool {
	return lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90 && !math.IsNaN(lon) && !math.IsNaN(lat)
}

// validate checks in as Azure Maps does, returning the error code and
// message of a refusal ("" if none). The code is "Conflicting Parameters"
// for free text mixed with structured fields, as in batch answers, else
// "400 BadRequest".
func (in *geocodeIn) validate() (code, msg string) {
	structured := ""
	for _, f := range [...]struct{ name, v string }{
		{"addressLine", in.addressLine}, {"locality", in.locality}, {"adminDistrict", in.adminDistrict},
		{"postalCode", in.postalCode}, {"countryRegion", in.countryRegion},
	} {
		if f.v != "" {
			structured = f.name
			break
		}
	}
	q := strings.TrimSpace(in.query)
	switch {
	case q == "" && structured == "":
		return codeBadRequest, "query is missing or empty"
	case q != "" && structured != "":
		return "Conflicting Parameters", "When 'query' is present, only the following parameters are valid: 'bbox, location, view, top'. '" + structured + "' was passed"
	case in.hasTop && (in.top < 1 || in.top > 20):
		return codeBadRequest, "The value of 'top' must be between 1 and 20."
	case in.hasCoords && !validLonLat(in.coords[0], in.coords[1]):
		return codeBadRequest, "coordinates are out of range: longitude must be within [-180, 180] and latitude within [-90, 90]."
	case in.hasBBox && (!validLonLat(in.bbox[0], in.bbox[1]) || !validLonLat(in.bbox[2], in.bbox[3]) || in.bbox[1] > in.bbox[3]):
		return codeBadRequest, "bbox is out of range: expected west,south,east,north with valid longitudes and latitudes and south <= north."
	case strings.Contains(in.query, "#reject") || strings.Contains(in.addressLine, "#reject"):
		return codeBadRequest, "The emulator rejects any query containing #reject."
	case strings.Contains(in.query, "#fail") || strings.Contains(in.addressLine, "#fail"):
		return codeUnavailable, "The emulator fails any query containing #fail, every time."
	}
	return "", ""
}

func (in *geocodeIn) hash() uint64 {
	h := uint64(fnvOffset)
	for _, s := range [...]string{in.query, in.addressLine, in.locality, in.adminDistrict, in.postalCode, in.countryRegion} {
		h = fnvAdd(h, s)
	}
	if in.hasBBox {
		for _, f := range in.bbox {
			h = fnvFloat(h, f)
		}
	}
	return h
}

// pickPlace chooses the seed place: the one the request names, else one by
// hash.
func (in *geocodeIn) pickPlace(h uint64) *place {
	for i := range places {
		p := &places[i]
		if in.locality != "" {
			if strings.EqualFold(in.locality, p.locality) {
				return p
			}
			continue
		}
		if in.query != "" && containsFold(in.query, p.locality) {
			return p
		}
	}
	return &places[h%uint64(len(places))]
}

// writeGeocodeFeatures appends the "features" array for in.
func writeGeocodeFeatures(j *jbuf, in *geocodeIn) {
	h := in.hash()
	p := in.pickPlace(h)
	top := 5
	if in.hasTop {
		top = in.top
	}
	n := min(top, 1+int(h%3))
	locality := orDefault(in.locality, p.locality)
	admin := orDefault(in.adminDistrict, p.adminShort)
	postal := orDefault(in.postalCode, p.postal)
	iso, country := p.iso, p.country
	if in.countryRegion != "" && !strings.EqualFold(in.countryRegion, p.iso) {
		iso, country = strings.ToUpper(in.countryRegion), strings.ToUpper(in.countryRegion)
	}

	j.raw(`"features":[`)
	for k := range n {
		hk := mix(h, uint64(k))
		var lat, lon float64
		if in.hasBBox {
			lon = in.bbox[0] + unit(hk)*(in.bbox[2]-in.bbox[0])
			lat = in.bbox[1] + unit(mix(hk, 1))*(in.bbox[3]-in.bbox[1])
		} else {
			lon = p.lon + (unit(hk)-0.5)*0.06
			lat = p.lat + (unit(mix(hk, 1))-0.5)*0.04
		}
		street := p.streets[hk%uint64(len(p.streets))]
		number := strconv.Itoa(1 + int(mix(hk, 2)%19999))
		addressLine := number + " " + street
		if k == 0 {
			if in.addressLine != "" {
				addressLine = in.addressLine
			} else if first, _, _ := strings.Cut(in.query, ","); len(first) > 0 && first[0] >= '0' && first[0] <= '9' {
				addressLine = strings.TrimSpace(first)
			}
		}
		confidence, matchCode := "Low", "Ambiguous"
		switch {
		case k == 0 && h%8 < 6:
			confidence, matchCode = "High", "Good"
		case k == 0:
			confidence, matchCode = "Medium", "Good"
		case k == 1:
			confidence = "Medium"
		}
		if k > 0 {
			j.raw(",")
		}
		j.raw(`{"type":"Feature","properties":{"type":"Address","confidence":"`).raw(confidence).
			raw(`","matchCodes":["`).raw(matchCode).raw(`"],"address":{"addressLine":`).str(addressLine).
			raw(`,"streetName":`).str(street).raw(`,"streetNumber":"`).raw(number).
			raw(`","locality":`).str(locality).
			raw(`,"adminDistricts":[{"shortName":`).str(admin).raw(`},{"shortName":`).str(p.county).
			raw(`}],"postalCode":`).str(postal).
			raw(`,"countryRegion":{"ISO":`).str(iso).raw(`,"name":`).str(country).
			raw(`},"formattedAddress":`).str(addressLine+", "+locality+", "+admin+" "+postal).
			raw(`},"geocodePoints":[{"geometry":{"type":"Point","coordinates":`).lonLat(lon, lat).
			raw(`},"calculationMethod":"Rooftop","usageTypes":["Display","Route"]}]},"geometry":{"type":"Point","coordinates":`).lonLat(lon, lat).
			raw(`},"bbox":[`).coord(lon - 0.0076).raw(",").coord(lat - 0.0039).raw(",").coord(lon + 0.0076).raw(",").coord(lat + 0.0039).raw(`]}`)
	}
	j.raw(`]`)
}

func (s *Server) geocode(w http.ResponseWriter, st *counters, q url.Values) {
	in, msg := geocodeFromQuery(q)
	code := codeBadRequest
	if msg == "" {
		code, msg = in.validate()
	}
	if code == codeUnavailable {
		s.reply(w, st, http.StatusServiceUnavailable, ctJSON, errorBody(code, msg))
		return
	}
	if msg != "" {
		s.badRequest(w, st, msg)
		return
	}
	s.replyFeatures(w, st, func(j *jbuf) { writeGeocodeFeatures(j, &in) })
}

func (s *Server) geocodeBatch(w http.ResponseWriter, st *counters, body []byte) {
	serveBatch(s, w, st, body, func(it *geocodeItem) string { return it.OptionalID },
		func(j *jbuf, it *geocodeItem) (code, msg string) {
			in, msg := it.input()
			code = codeBadRequest
			if msg == "" {
				code, msg = in.validate()
			}
			if msg != "" {
				return code, msg
			}
			j.raw(`"type":"FeatureCollection",`)
			writeGeocodeFeatures(j, &in)
			return "", ""
		})
}

// serveBatch answers a batch request of items of type T: each item is
// answered by answer, which writes a FeatureCollection's members or returns
// the item's error code and message, inline as Azure Maps reports them.
func serveBatch[T any](s *Server, w http.ResponseWriter, st *counters, body []byte,
	optionalID func(*T) string, answer func(j *jbuf, it *T) (code, msg string)) {
	var req struct {
		BatchItems []T `json:"batchItems"`
	}
	if json.Unmarshal(body, &req) != nil {
		s.reply(w, st, http.StatusBadRequest, ctJSON, bodyInvalid)
		return
	}
	if n := len(req.BatchItems); n < 1 || n > maxBatchItems {
		s.badRequest(w, st, "The batch must contain between 1 and 100 items; it has "+strconv.Itoa(n)+".")
		return
	}
	j := getBuf() // the items; the summary that precedes them counts them
	defer putBuf(j)
	ok := 0
	for i := range req.BatchItems {
		it := &req.BatchItems[i]
		if i > 0 {
			j.raw(",")
		}
		j.raw("{")
		if id := optionalID(it); id != "" {
			j.raw(`"optionalId":`).str(id).raw(",")
		}
		if code, msg := answer(j, it); msg != "" {
			j.raw(`"error":{"code":`).str(code).raw(`,"message":`).str(msg).raw(`}}`)
			continue
		}
		ok++
		j.raw(`}`)
	}
	s.replyBatch(w, st, ok, len(req.BatchItems), j.b)
}

// replyBatch answers a batch: the summary, then the items.
func (s *Server) replyBatch(w http.ResponseWriter, st *counters, ok, total int, items []byte) {
	out := getBuf()
	defer putBuf(out)
	out.raw(`{"summary":{"successfulRequests":`).int(int64(ok)).
		raw(`,"totalRequests":`).int(int64(total)).
		raw(`},"batchItems":[`)
	out.b = append(out.b, items...)
	out.raw(`]}`)
	st.batchItems.Add(int64(total))
	s.reply(w, st, http.StatusOK, ctJSON, out.b)
}

func nearestPlace(lon, lat float64) *place {
	best, bestD := &places[0], math.Inf(1)
	for i := range places {
		p := &places[i]
		dLon := math.Abs(lon - p.lon)
		if dLon > 180 {
			dLon = 360 - dLon
		}
		dLon *= math.Cos(lat * math.Pi / 180)
		d := dLon*dLon + (lat-p.lat)*(lat-p.lat)
		if d < bestD {
			best, bestD = p, d
		}
	}
	return best
}
