package mapstest

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Route Matrix (api-version 2025-01-01): the synchronous POST /route/matrix,
// the asynchronous POST /route/matrix:async (202 and an Operation-Location),
// the operation's status (GET /route/operations/{id}) and its result
// (GET /route/operations/{id}/result). Requests are held to the limits the
// service documents; cells are computed as routes are (straight line times a
// road factor, at the travel mode's speed), so a matrix agrees with the
// routes between its points.

// Limits of a matrix, as documented for 2025-01-01. A request must fit one
// row of its API's table; the rows with a bounding box answer the cells
// outside a 400 km × 400 km box OUT_OF_REGION.
//
//	sync   ≤100 cells                                         any options
//	sync   ≤2,500 cells, ≤1,000 origins and destinations      plain options (see plain)
//	sync   ≤200 cells                                         any options, bounding box
//	async  ≤50,000 cells, ≤10,000 origins and destinations    plain options
//	async  ≤2,500 cells, ≤1,000 origins and destinations      any options, bounding box
const (
	matrixSmall         = 100
	matrixSyncRegion    = 200
	matrixSyncMax       = 2500
	matrixSyncMaxPoints = 1000
	matrixAsyncMax      = 50000
	matrixAsyncPoints   = 10000
	matrixRegionKm      = 400

	// operationRetention is how long the service keeps an operation and its
	// result.
	operationRetention = 24 * time.Hour

	defaultOperationDuration = 2 * time.Second
	defaultOperationPoll     = time.Second
)

var (
	bodyOperationNotFound = errorBody("NotFound", "Not Found: the requested resource could not be found.")
	outOfRegion           = `"error":{"code":"OUT_OF_REGION","message":"Input coordinates out of region"}`
)

// matrixIn is a Route Matrix request body.
type matrixIn struct {
	Type     string `json:"type"`
	Features []struct {
		Type     string `json:"type"`
		Geometry *struct {
			Type        string      `json:"type"`
			Coordinates [][]float64 `json:"coordinates"`
		} `json:"geometry"`
		Properties struct {
			PointType string `json:"pointType"`
		} `json:"properties"`
	} `json:"features"`
	TravelMode    string          `json:"travelMode"`
	DepartAt      string          `json:"departAt"`
	ArriveAt      string          `json:"arriveAt"`
	OptimizeRoute string          `json:"optimizeRoute"`
	Traffic       string          `json:"traffic"`
	Avoid         []string        `json:"avoid"`
	VehicleSpec   json.RawMessage `json:"vehicleSpec"`
}

// matrixPlan is a validated matrix request.
type matrixPlan struct {
	origins, dests [][2]float64 // [lon, lat]
	mode           string
	speed          float64 // m/s
	live           bool    // traffic=live
	depart, arrive time.Time
	now            bool // departAt=now
	region         bool // cells outside one 400 km box are OUT_OF_REGION (see region)
}

// plain reports whether a request uses only what the large rows allow:
// departAt/arriveAt any, traffic historical, optimizeRoute fastest,
// travelMode driving or truck, and no other option.
func (in *matrixIn) plain() bool {
	timeAny := func(s string) bool { return s == "" || s == "any" }
	return timeAny(in.DepartAt) && timeAny(in.ArriveAt) &&
		(in.Traffic == "" || in.Traffic == "historical") &&
		(in.OptimizeRoute == "" || in.OptimizeRoute == "fastest") &&
		(in.TravelMode == "" || in.TravelMode == "driving" || in.TravelMode == "truck") &&
		len(in.Avoid) == 0 && (len(in.VehicleSpec) == 0 || string(in.VehicleSpec) == "null")
}

// plan validates a request for the sync or the async API, returning a
// refusal message ("" if none).
func (in *matrixIn) plan(async bool) (matrixPlan, string) {
	var p matrixPlan
	if in.Type != "FeatureCollection" || len(in.Features) != 2 {
		return p, "The request must be a FeatureCollection of exactly 2 MultiPoint features: the origins and the destinations."
	}
	for i := range in.Features {
		f := &in.Features[i]
		if f.Type != "Feature" || f.Geometry == nil || f.Geometry.Type != "MultiPoint" || len(f.Geometry.Coordinates) == 0 {
			return p, "Feature " + strconv.Itoa(i) + " must be a GeoJSON MultiPoint feature with at least one [longitude, latitude]."
		}
		pts := make([][2]float64, len(f.Geometry.Coordinates))
		for k, c := range f.Geometry.Coordinates {
			if len(c) != 2 || !validLonLat(c[0], c[1]) {
				return p, "Point " + strconv.Itoa(k) + " of feature " + strconv.Itoa(i) + " must be [longitude, latitude] within [-180, 180] and [-90, 90]."
			}
			pts[k] = [2]float64{c[0], c[1]}
		}
		switch f.Properties.PointType {
		case "origins":
			if p.origins != nil {
				return p, "Only one feature may have pointType origins."
			}
			p.origins = pts
		case "destinations":
			if p.dests != nil {
				return p, "Only one feature may have pointType destinations."
			}
			p.dests = pts
		default:
			return p, "The pointType of feature " + strconv.Itoa(i) + " must be origins or destinations."
		}
	}
	switch in.TravelMode {
	case "", "driving":
		p.mode, p.speed = "driving", 13.4
	case "truck":
		p.mode, p.speed = "truck", 11.1
	case "walking":
		p.mode, p.speed = "walking", 1.4
	default:
		return p, "The value '" + in.TravelMode + "' is not valid for travelMode; use driving, truck or walking."
	}
	if in.DepartAt != "" && in.ArriveAt != "" {
		return p, "The departAt parameter cannot be used in conjunction with arriveAt."
	}
	switch in.DepartAt {
	case "", "any":
	case "now":
		p.now = true
	default:
		t, ok := parseDateTime(in.DepartAt)
		if !ok {
			return p, "departAt must be an RFC 3339 date-time, any or now."
		}
		p.depart = t
	}
	switch in.ArriveAt {
	case "", "any":
	default:
		t, ok := parseDateTime(in.ArriveAt)
		if !ok {
			return p, "arriveAt must be an RFC 3339 date-time or any."
		}
		p.arrive = t
	}
	switch in.OptimizeRoute {
	case "", "fastest":
	case "shortest":
		if !async {
			return p, "Only fastest is supported for optimizeRoute by the synchronous Route Matrix API; use the asynchronous API for shortest."
		}
	default:
		return p, "The value '" + in.OptimizeRoute + "' is not valid for optimizeRoute; use fastest or shortest."
	}
	switch in.Traffic {
	case "", "historical":
	case "live":
		if !p.now && p.depart.IsZero() && p.arrive.IsZero() {
			return p, "traffic=live cannot be used with departAt or arriveAt any (the default)."
		}
		p.live = true
	default:
		return p, "The value '" + in.Traffic + "' is not valid for traffic; use historical or live."
	}
	for _, a := range in.Avoid {
		if a != "tollRoads" && a != "unpavedRoads" {
			return p, "The value '" + a + "' is not valid for avoid; use tollRoads or unpavedRoads."
		}
	}
	if len(in.Avoid) > 0 && p.mode == "walking" {
		return p, "avoid is only supported for the driving and truck travelMode."
	}
	if len(in.VehicleSpec) > 0 && string(in.VehicleSpec) != "null" {
		if p.mode != "truck" {
			return p, "vehicleSpec is only supported for the truck travelMode."
		}
		if msg := checkMatrixVehicleSpec(in.VehicleSpec); msg != "" {
			return p, msg
		}
		var v struct {
			MaxSpeed float64 `json:"maxSpeed"`
		}
		if json.Unmarshal(in.VehicleSpec, &v) == nil && v.MaxSpeed > 0 {
			p.speed = math.Min(p.speed, v.MaxSpeed/3.6)
		}
	}

	o, d := len(p.origins), len(p.dests)
	n := o * d
	plain := in.plain()
	switch {
	case !async && n <= matrixSmall:
	case !async && plain && n <= matrixSyncMax && o <= matrixSyncMaxPoints && d <= matrixSyncMaxPoints:
	case !async && n <= matrixSyncRegion:
		p.region = true
	case async && plain && n <= matrixAsyncMax && o <= matrixAsyncPoints && d <= matrixAsyncPoints:
	case async && n <= matrixSyncMax && o <= matrixSyncMaxPoints && d <= matrixSyncMaxPoints:
		p.region = true
	case async:
		return p, "The matrix of " + strconv.Itoa(n) + " cells (" + strconv.Itoa(o) + " origins x " + strconv.Itoa(d) +
			" destinations) exceeds the limits of the asynchronous Route Matrix API: up to 2500 cells (1000 origins, 1000 destinations)," +
			" or up to 50000 cells (10000 origins, 10000 destinations) with departAt or arriveAt any, traffic historical," +
			" optimizeRoute fastest, travelMode driving or truck and no other parameter."
	default:
		return p, "The matrix of " + strconv.Itoa(n) + " cells (" + strconv.Itoa(o) + " origins x " + strconv.Itoa(d) +
			" destinations) exceeds the limits of the synchronous Route Matrix API: up to 100 cells, up to 200 cells" +
			" within a 400 km x 400 km box, or up to 2500 cells (1000 origins, 1000 destinations) with departAt or arriveAt any," +
			" traffic historical, travelMode driving or truck and no other parameter. Use the asynchronous API for larger matrices."
	}
	return p, ""
}

// checkMatrixVehicleSpec checks a vehicleSpec as the matrix API takes it:
// the attributes of VehicleSpec, without axleCount.
func checkMatrixVehicleSpec(raw json.RawMessage) string {
	var spec map[string]json.RawMessage
	if json.Unmarshal(raw, &spec) != nil {
		return "vehicleSpec must be an object."
	}
	for name, v := range spec {
		var msg string
		switch name {
		case "isVehicleCommercial":
			var b bool
			if json.Unmarshal(v, &b) != nil {
				msg = "must be true or false"
			}
		case "length", "width", "height":
			msg = checkNumber(v, 1_000_000, false)
		case "weight", "axleWeight":
			msg = checkNumber(v, 1_000_000, true)
		case "maxSpeed":
			msg = checkNumber(v, 250, true)
		case "loadType":
			var ls []string
			if json.Unmarshal(v, &ls) != nil {
				msg = "must be an array of load types"
			}
			for _, l := range ls {
				if !slices.Contains(hazmatLoadTypes, l) {
					msg = "has an unknown load type '" + l + "'"
				}
			}
		case "adrTunnelRestrictionCode":
			var c string
			if json.Unmarshal(v, &c) != nil || (c != "B" && c != "C" && c != "D" && c != "E") {
				msg = "must be B, C, D or E"
			}
		default:
			return "vehicleSpec." + name + " is not a parameter of the Route Matrix API."
		}
		if msg != "" {
			return "vehicleSpec." + name + " " + msg + "."
		}
	}
	return ""
}

func checkNumber(v json.RawMessage, hi float64, whole bool) string {
	var f float64
	if json.Unmarshal(v, &f) != nil {
		return "must be a number"
	}
	if f < 0 || f > hi || (whole && f != math.Trunc(f)) {
		return "is out of range"
	}
	return ""
}

// unroutable reports whether the emulator has no roads at a point: the
// polar regions (north of 85°, south of 60°). Cells from or to such a point
// are OUT_OF_REGION, as cells outside the service's coverage are.
func unroutable(pt [2]float64) bool { return pt[1] > 85 || pt[1] < -60 }

// region returns which origins and destinations lie in the one 400 km ×
// 400 km box the bounded rows compute in. The service does not say where it
// puts the box; the emulator places it over the origins and takes points in
// order of their distance from the origins' centre while the box still holds
// them all, so the farthest fall out first. (The async example's matrix,
// Milan and Padua to Munich and Prague, comes out as the service answered
// it: Prague is out of region.)
func region(p *matrixPlan) (inO, inD []bool) {
	inO, inD = make([]bool, len(p.origins)), make([]bool, len(p.dests))
	var cLon, cLat float64
	for _, o := range p.origins {
		cLon += o[0]
		cLat += o[1]
	}
	cLon /= float64(len(p.origins))
	cLat /= float64(len(p.origins))
	type pt struct {
		at   [2]float64
		dist float64
		in   *bool
	}
	pts := make([]pt, 0, len(p.origins)+len(p.dests))
	for i, o := range p.origins {
		pts = append(pts, pt{o, haversine(cLon, cLat, o[0], o[1]), &inO[i]})
	}
	for i, d := range p.dests {
		pts = append(pts, pt{d, haversine(cLon, cLat, d[0], d[1]), &inD[i]})
	}
	slices.SortStableFunc(pts, func(a, b pt) int { return cmp.Compare(a.dist, b.dist) })
	const kmPerDegree = 111.195
	minLon, minLat, maxLon, maxLat := 180.0, 90.0, -180.0, -90.0
	for _, q := range pts {
		lo, la, hi, ha := min(minLon, q.at[0]), min(minLat, q.at[1]), max(maxLon, q.at[0]), max(maxLat, q.at[1])
		mid := (la + ha) / 2 * math.Pi / 180
		if (ha-la)*kmPerDegree > matrixRegionKm || (hi-lo)*kmPerDegree*math.Cos(mid) > matrixRegionKm {
			continue
		}
		minLon, minLat, maxLon, maxLat = lo, la, hi, ha
		*q.in = true
	}
	return inO, inD
}

// writeMatrix appends the answer for p: a Feature with a null geometry whose
// properties hold the cells, origin by origin, and their summary. The
// asynchronous result also says its kind. Keys are in the order the
// service's examples have them.
func writeMatrix(j *jbuf, p *matrixPlan, async bool, now time.Time) {
	j.raw(`{"type":"Feature","geometry":null,`)
	if async {
		j.raw(`"kind":"RouteMatrix",`)
	}
	j.raw(`"properties":{"matrix":[`)
	ok := 0
	var inO, inD []bool
	if p.region {
		inO, inD = region(p)
	}
	for oi, o := range p.origins {
		for di, d := range p.dests {
			if oi > 0 || di > 0 {
				j.raw(",")
			}
			j.raw("{")
			if unroutable(o) || unroutable(d) || (p.region && (!inO[oi] || !inD[di])) {
				j.raw(`"destinationIndex":`).int(int64(di)).raw(",").raw(outOfRegion).
					raw(`,"originIndex":`).int(int64(oi)).raw(`,"statusCode":400}`)
				continue
			}
			ok++
			meters := math.Round(roadFactor * haversine(o[0], o[1], d[0], d[1]))
			secs := int64(math.Ceil(meters / p.speed))
			traffic := secs
			if p.live && p.mode != "walking" {
				traffic += secs / 10
			}
			var depart, arrive time.Time
			switch {
			case !p.depart.IsZero():
				depart = p.depart
				arrive = depart.Add(time.Duration(traffic) * time.Second)
			case !p.arrive.IsZero():
				arrive = p.arrive
				depart = arrive.Add(-time.Duration(traffic) * time.Second)
			case p.now:
				depart = now.UTC()
				arrive = depart.Add(time.Duration(traffic) * time.Second)
			}
			if !depart.IsZero() {
				j.raw(`"arrivalAt":"`).raw(arrive.Format(timeLayout)).raw(`","departureAt":"`).raw(depart.Format(timeLayout)).raw(`",`)
			}
			j.raw(`"destinationIndex":`).int(int64(di)).
				raw(`,"distanceInMeters":`).int(int64(meters)).
				raw(`,"durationInSeconds":`).int(secs)
			if p.mode != "walking" {
				j.raw(`,"durationTrafficInSeconds":`).int(traffic)
			}
			j.raw(`,"originIndex":`).int(int64(oi)).raw(`,"statusCode":200}`)
		}
	}
	j.raw(`],"summary":{"successfulCount":`).int(int64(ok)).
		raw(`,"totalCount":`).int(int64(len(p.origins) * len(p.dests))).raw(`}}}`)
}

// parseMatrix reads and validates a matrix request; on a refusal it has
// answered it.
func (s *Server) parseMatrix(w http.ResponseWriter, st *counters, body []byte, async bool) (matrixPlan, bool) {
	var in matrixIn
	if len(body) == 0 || json.Unmarshal(body, &in) != nil {
		s.reply(w, st, http.StatusBadRequest, ctJSON, bodyInvalid)
		return matrixPlan{}, false
	}
	p, msg := in.plan(async)
	if msg != "" {
		s.badRequest(w, st, msg)
		return p, false
	}
	return p, true
}

func (s *Server) routeMatrix(w http.ResponseWriter, st *counters, body []byte) {
	p, ok := s.parseMatrix(w, st, body, false)
	if !ok {
		return
	}
	j := getBuf()
	defer putBuf(j)
	writeMatrix(j, &p, false, time.Now())
	s.reply(w, st, http.StatusOK, ctGeoJSON, j.b)
}

// matrixOps are the emulator's asynchronous operations. The zero value is
// ready to use.
type matrixOps struct {
	mu  sync.Mutex
	ops map[string]*matrixOp

	duration  atomic.Int64 // how long an operation runs; 0: the default
	pollAfter atomic.Int64 // the Retry-After the emulator suggests; 0: the default
	failure   atomic.Pointer[[2]string]
	accepted  atomic.Int64
}

// matrixOp is one submitted matrix.
type matrixOp struct {
	id      string
	created time.Time
	plan    matrixPlan
	result  []byte // the answer, computed when first fetched
}

func (m *matrixOps) timing() (run, poll time.Duration) {
	run, poll = time.Duration(m.duration.Load()), time.Duration(m.pollAfter.Load())
	if run <= 0 {
		run = defaultOperationDuration
	}
	if poll <= 0 {
		poll = defaultOperationPoll
	}
	return run, poll
}

// SetOperationTiming sets how long an asynchronous route matrix takes to
// compute, from its submission, and the interval the emulator asks clients
// to poll its status at (Retry-After, and retry-after-ms when not whole
// seconds). It applies at once to operations under way: a test can make an
// operation slow, then let it complete. Zero values restore the defaults,
// 2 s and 1 s.
func (s *Server) SetOperationTiming(run, poll time.Duration) {
	s.matrix.duration.Store(int64(run))
	s.matrix.pollAfter.Store(int64(poll))
}

// SetOperationFailure makes asynchronous operations that complete while it
// is set end with status Failed and this error; "" ends it.
func (s *Server) SetOperationFailure(code, message string) {
	if code == "" {
		s.matrix.failure.Store(nil)
		return
	}
	s.matrix.failure.Store(&[2]string{code, message})
}

// ExpireOperations forgets every asynchronous operation, as the service does
// 24 hours after a submission: their status and result answer 404.
func (s *Server) ExpireOperations() {
	s.matrix.mu.Lock()
	s.matrix.ops = nil
	s.matrix.mu.Unlock()
}

// OperationsAccepted returns how many asynchronous route matrices the
// emulator accepted (answered 202) since it started: each is billed.
func (s *Server) OperationsAccepted() int64 { return s.matrix.accepted.Load() }

// setPollAfter asks the client to wait poll before it asks again.
func setPollAfter(h http.Header, poll time.Duration) {
	secs := (poll + time.Second - 1) / time.Second
	h["Retry-After"] = []string{strconv.FormatInt(int64(secs), 10)}
	if poll%time.Second != 0 {
		h["Retry-After-Ms"] = []string{strconv.FormatInt(poll.Milliseconds(), 10)}
	}
}

func (s *Server) routeMatrixAsync(w http.ResponseWriter, st *counters, body []byte) {
	p, ok := s.parseMatrix(w, st, body, true)
	if !ok {
		return
	}
	op := &matrixOp{id: newOperationID(), created: time.Now(), plan: p}
	m := &s.matrix
	m.mu.Lock()
	if m.ops == nil {
		m.ops = make(map[string]*matrixOp)
	}
	m.ops[op.id] = op
	m.mu.Unlock()
	m.accepted.Add(1)
	_, poll := m.timing()
	h := w.Header()
	h["Operation-Location"] = []string{s.URL + "/route/operations/" + op.id + "?api-version=" + APIVersion}
	setPollAfter(h, poll)
	s.reply(w, st, http.StatusAccepted, ctJSON, nil)
}

// operation returns the operation a status or result path names, or nil if
// the emulator does not know it (never submitted, or expired).
func (s *Server) operation(path string, now time.Time) *matrixOp {
	rest, ok := strings.CutPrefix(path, "/route/operations/")
	if !ok {
		return nil
	}
	id, _, _ := strings.Cut(rest, "/")
	m := &s.matrix
	m.mu.Lock()
	defer m.mu.Unlock()
	op := m.ops[id]
	if op != nil && now.Sub(op.created) > operationRetention {
		delete(m.ops, id)
		return nil
	}
	return op
}

func (s *Server) routeOperation(w http.ResponseWriter, st *counters, path string) {
	now := time.Now()
	op := s.operation(path, now)
	if op == nil {
		s.reply(w, st, http.StatusNotFound, ctJSON, bodyOperationNotFound)
		return
	}
	run, poll := s.matrix.timing()
	age := now.Sub(op.created)
	status := "Completed"
	switch {
	case age < run/10:
		status = "NotStarted"
	case age < run:
		status = "Running"
	}
	fail := s.matrix.failure.Load()
	if status == "Completed" && fail != nil {
		status = "Failed"
	}
	last := op.created
	if status != "NotStarted" {
		last = now
	}
	j := getBuf()
	defer putBuf(j)
	j.raw(`{"id":"`).raw(op.id).raw(`","status":"`).raw(status).raw(`","kind":"RouteMatrix"`)
	switch status {
	case "Completed":
		j.raw(`,"result":{"resultUrl":`).str(s.URL + "/route/operations/" + op.id + "/result?api-version=" + APIVersion).raw(`}`)
	case "Failed":
		j.raw(`,"error":{"code":`).str(fail[0]).raw(`,"message":`).str(fail[1]).raw(`}`)
	default:
		setPollAfter(w.Header(), poll)
	}
	j.raw(`,"createdAt":"`).raw(op.created.UTC().Format(timeLayout)).
		raw(`","lastActionAt":"`).raw(last.UTC().Format(timeLayout)).raw(`"}`)
	s.reply(w, st, http.StatusOK, ctJSON, j.b)
}

func (s *Server) routeOperationResult(w http.ResponseWriter, st *counters, path string) {
	now := time.Now()
	op := s.operation(path, now)
	run, _ := s.matrix.timing()
	if op == nil || now.Sub(op.created) < run || s.matrix.failure.Load() != nil {
		// No result (yet): the resource does not exist.
		s.reply(w, st, http.StatusNotFound, ctJSON, bodyOperationNotFound)
		return
	}
	s.matrix.mu.Lock()
	if op.result == nil {
		j := &jbuf{}
		writeMatrix(j, &op.plan, true, op.created)
		op.result = j.b
	}
	body := op.result
	s.matrix.mu.Unlock()
	s.reply(w, st, http.StatusOK, ctJSON, body)
}

// newOperationID returns a random GUID, as operation ids are.
func newOperationID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	k := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[k] = '-'
			k++
		}
		out[k], out[k+1] = hexDigits[c>>4], hexDigits[c&0xf]
		k += 2
	}
	return string(out[:])
}
