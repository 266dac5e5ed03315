package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// KindRouteMatrix computes the travel time and distance from each of a set
// of origins to each of a set of destinations: POST /route/matrix up to the
// synchronous API's limits, POST /route/matrix:async (submit, poll, fetch)
// beyond them, up to 50,000 cells. The name says what it is to a dispatcher
// (a route matrix) and sorts beside "route", whose options it shares.
const KindRouteMatrix = "route-matrix"

// codeTooManyCells is the code of a matrix beyond every row of the API's
// limits: too many cells, origins or destinations for its options.
const codeTooManyCells = "TooManyCells"

// Limits of Route Matrix 2025-01-01. A matrix must fit a row of its API's
// table; the worker picks the first that fits, in this order:
//
//	sync   ≤100 cells                                           any options
//	sync   ≤2,500 cells, ≤1,000 origins and destinations        plain options (see plainMatrix)
//	sync   ≤200 cells                                           any options; one 400 km box
//	async  ≤50,000 cells, ≤10,000 origins and destinations      plain options, optimizeRoute fastest
//	async  ≤2,500 cells, ≤1,000 origins and destinations        any options; one 400 km box
//
// In the rows with a box, cells whose points lie outside one 400 km × 400 km
// box are answered OUT_OF_REGION (failed cells of a matrix that succeeds);
// the others have no such bound. Only the async API takes "shortest".
const (
	matrixSmall          = 100
	matrixSyncRegion     = 200
	matrixSyncMax        = 2500
	matrixSyncMaxPoints  = 1000
	matrixAsyncMax       = 50000
	matrixAsyncMaxPoints = 10000
)

// Bounds of a matrix task's try. A synchronous matrix of thousands of cells
// takes longer than the engine's 30 s; an asynchronous one is polled for up
// to 15 minutes per try, and a later try resumes the same operation.
const (
	matrixSyncTry  = 2 * time.Minute
	matrixAsyncTry = 15 * time.Minute
)

// Polling an operation: at the interval the service asks for (Retry-After),
// within these bounds; every 5 s when it does not say.
const (
	matrixPollDefault = 5 * time.Second
	matrixPollMin     = 50 * time.Millisecond
	matrixPollMax     = time.Minute
	// operationRetention is how long the service keeps an operation and
	// its result: an older checkpoint is not worth a poll.
	operationRetention = 24 * time.Hour
)

// matrixMaps are the Route Matrix calls of the Azure Maps client;
// *maps.Client has them.
type matrixMaps interface {
	RouteMatrix(ctx context.Context, r maps.MatrixRequest) (*maps.Response, error)
	RouteMatrixSubmit(ctx context.Context, r maps.MatrixRequest) (*maps.Operation, error)
	RouteOperation(ctx context.Context, location string) (*maps.OperationStatus, error)
	RouteOperationResult(ctx context.Context, resultURL string) (*maps.Response, error)
}

// Checkpoints keep a little state of a long-running request across
// deliveries of its message and across processes: an asynchronous route
// matrix keeps its operation there between the submission and the result,
// so that a crash or a stop resumes polling instead of paying for the matrix
// again. Names are "<kind>/<id>" (ids as ValidID has them). worker.Storage's
// Checkpoints keeps them as blobs in the results container.
type Checkpoints interface {
	// Get returns the checkpoint name, or nil and no error if there is none.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put writes the checkpoint name, replacing any.
	Put(ctx context.Context, name string, b []byte) error
	// Delete removes the checkpoint name; one that does not exist is no error.
	Delete(ctx context.Context, name string) error
}

type matrixKind struct {
	maps matrixMaps // nil if the client has no matrix calls
	// checkpoints is the durable store, nil without one; mem always holds
	// this process's operations, so that a retry in process resumes too.
	checkpoints Checkpoints
	mem         memCheckpoints
}

func newRouteMatrix(e *env) kind {
	k := &matrixKind{}
	if e != nil {
		k.maps, _ = e.maps.(matrixMaps)
		k.checkpoints = e.checkpoints
	}
	return k
}

func (*matrixKind) name() string { return KindRouteMatrix }

func (k *matrixKind) decode(f fields) (call, error) {
	r, err := decodeMatrix(f)
	if err != nil {
		return nil, err
	}
	async, err := matrixAPI(r)
	if err != nil {
		return nil, err
	}
	c := &matrixCall{k: k, r: *r, async: async}
	if async {
		body, err := r.Body()
		if err != nil {
			return nil, fmt.Errorf("jobs: encoding a route matrix: %w", err)
		}
		sum := sha256.Sum256(body)
		c.fingerprint = hex.EncodeToString(sum[:])
		// The checkpoint is the request's: named by its id, or when it has
		// none (the queue's message id names its result, which decode
		// does not see) by its content.
		name := "sha256-" + c.fingerprint[:32]
		if raw, ok := f.get("id"); ok {
			if id, err := decodeString("id", raw); err == nil && ValidID(id) {
				name = id
			}
		}
		c.checkpoint = KindRouteMatrix + "/" + name
	}
	return c, nil
}

// probeMatrix is the probe's request: one cell, Redmond to Bellevue, a
// synchronous call (a transaction: a matrix is billed a transaction per four
// cells, rounded up).
var probeMatrix = maps.MatrixRequest{
	Origins:      []maps.Position{{Lat: 47.6396, Lon: -122.1283}},
	Destinations: []maps.Position{{Lat: 47.6101, Lon: -122.2015}},
}

func (k *matrixKind) probe() call { return &matrixCall{k: k, r: probeMatrix} }

func (*matrixKind) describe(summary json.RawMessage) (string, error) {
	var s MatrixSummary
	if err := json.Unmarshal(summary, &s); err != nil {
		return "", err
	}
	if s.Cells == 0 {
		return "", errors.New("not a matrix summary")
	}
	line := fmt.Sprintf("%d×%d matrix: %d cells", s.Origins, s.Destinations, s.Cells)
	switch {
	case s.FailedCells == s.Cells:
		line += ", all failed"
	case s.FailedCells > 0:
		line += fmt.Sprintf(", %d failed", s.FailedCells)
	}
	if s.MinDurationInSeconds != nil && s.MaxDurationInSeconds != nil {
		line += fmt.Sprintf("; %s–%s", seconds(*s.MinDurationInSeconds), seconds(*s.MaxDurationInSeconds))
	}
	if s.MinDistanceInMeters != nil && s.MaxDistanceInMeters != nil {
		line += fmt.Sprintf(", %.1f–%.1f km", *s.MinDistanceInMeters/1000, *s.MaxDistanceInMeters/1000)
	}
	if s.OperationID != "" {
		line += " (async " + s.OperationID + ")"
	}
	return line, nil
}

// matrixArgSeparators part the origins from the destinations on the command
// line: `enqueue route-matrix A B to C D`. "--" is taken too, where a shell
// or a flag parser passes it on.
var matrixArgSeparators = []string{"to", "--"}

func (*matrixKind) fromArgs(args []string, o ArgOptions) (map[string]any, error) {
	usage := errors.New(`route-matrix takes origins, "to", destinations: enqueue route-matrix 47.63,-122.14 47.61,-122.20 to 47.67,-122.12 (without "to", every position is both)`)
	var origins, dests []map[string]float64
	cur := &origins
	for _, a := range args {
		if slices.Contains(matrixArgSeparators, strings.ToLower(a)) {
			if cur == &dests {
				return nil, usage
			}
			cur = &dests
			continue
		}
		p, err := parseLatLon(a)
		if err != nil {
			return nil, err
		}
		*cur = append(*cur, p)
	}
	if cur == &origins {
		dests = origins // no separator: a square matrix between the positions
	}
	if len(origins) == 0 || len(dests) == 0 {
		return nil, usage
	}
	f := map[string]any{"origins": origins, "destinations": dests}
	if o.TravelMode != "" {
		f["travelMode"] = o.TravelMode
	}
	return f, nil
}

func (*matrixKind) example() []string {
	return []string{"47.6303,-122.1387", "47.6101,-122.2015", "to", "47.6740,-122.1215", "47.6062,-122.3321"}
}

// Route Matrix options, as the 2025-01-01 API names them. travelMode takes
// the same values as a route's.
var (
	matrixAvoidValues = []modeValue{{"tollRoads", nil}, {"unpavedRoads", nil}}
	matrixOptimize    = []string{"fastest", "shortest"}
	matrixTraffic     = []string{"historical", "live"}
	// matrixAnyTime is the departAt or arriveAt of a matrix whose time does
	// not matter (the service's default); "now" departs as each cell is
	// computed.
	matrixAnyTime = "any"
	matrixNow     = "now"
)

// decodeMatrix decodes and validates a route-matrix request.
func decodeMatrix(f fields) (*maps.MatrixRequest, error) {
	r := &maps.MatrixRequest{}
	mode := "driving"
	var err error
	if raw, ok := f.get("travelMode"); ok {
		if mode, err = decodeString("travelMode", raw); err != nil {
			return nil, err
		}
		if !slices.Contains(travelModes, mode) {
			return nil, worker.Invalidf(codeInvalidValue, "travelMode %s is not one of %s", quote(mode), strings.Join(travelModes, ", "))
		}
		r.TravelMode = mode
	}
	if r.Origins, err = decodeMatrixPoints(f, "origins"); err != nil {
		return nil, err
	}
	if r.Destinations, err = decodeMatrixPoints(f, "destinations"); err != nil {
		return nil, err
	}
	if r.RouteOptions, err = decodeMatrixOptions(f, mode); err != nil {
		return nil, err
	}
	if r.OptimizeRoute, err = optionalEnum(f, "optimizeRoute", matrixOptimize); err != nil {
		return nil, err
	}
	if r.Traffic, err = optionalEnum(f, "traffic", matrixTraffic); err != nil {
		return nil, err
	}
	if r.Traffic == "live" && matrixTimeAny(r.DepartAt) && matrixTimeAny(r.ArriveAt) {
		return nil, worker.Invalidf(codeConflicting, `traffic live needs a time: departAt (a date-time or "now") or arriveAt (a date-time); without one the time is "any"`)
	}
	return r, nil
}

// decodeMatrixPoints decodes the origins or destinations: 1 to 10,000
// positions {"lat", "lon"}.
func decodeMatrixPoints(f fields, name string) ([]maps.Position, error) {
	raw, ok := f.get(name)
	if !ok {
		return nil, worker.Invalidf(codeMissingField, "%s are required: 1 or more {\"lat\": …, \"lon\": …}", name)
	}
	items, err := decodeArray(name, "an array", raw)
	if err != nil {
		return nil, err
	}
	switch {
	case len(items) == 0:
		return nil, worker.Invalidf(codeMissingField, "%s are required: 1 or more {\"lat\": …, \"lon\": …}, not an empty array", name)
	case len(items) > matrixAsyncMaxPoints:
		return nil, worker.Invalidf(codeTooManyCells, "a route matrix takes at most %d %s, got %d", matrixAsyncMaxPoints, name, len(items))
	}
	ps := make([]maps.Position, len(items))
	for i, item := range items {
		var err error
		if ps[i], err = decodePosition(fmt.Sprintf("%s[%d]", name, i), item); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// decodeMatrixOptions decodes the options the matrix shares with routes
// (decodeRouteOptions) with the matrix's own values: departAt also "any" or
// "now", arriveAt also "any"; avoid only tollRoads and unpavedRoads (driving
// and truck); a vehicleSpec without axleCount.
func decodeMatrixOptions(f fields, mode string) (maps.RouteOptions, error) {
	shared := make(fields, len(f))
	for k, v := range f {
		shared[k] = v
	}
	delete(shared, "avoid")
	special := map[string]string{}
	for name, words := range map[string][]string{"departAt": {matrixAnyTime, matrixNow}, "arriveAt": {matrixAnyTime}} {
		raw, ok := f.get(name)
		if !ok {
			continue
		}
		s, err := decodeString(name, raw)
		if err != nil {
			return maps.RouteOptions{}, err
		}
		if slices.Contains(words, s) {
			special[name] = s
			delete(shared, name)
		} else if s == matrixNow || s == matrixAnyTime {
			return maps.RouteOptions{}, worker.Invalidf(codeInvalidValue, "%s %s is not a date-time or %s", name, quote(s), strings.Join(words, " or "))
		}
	}
	if _, d := f.get("departAt"); d {
		if _, a := f.get("arriveAt"); a {
			return maps.RouteOptions{}, worker.Invalidf(codeConflicting, "departAt and arriveAt cannot be used together: give one")
		}
	}
	o, err := decodeRouteOptions(shared, mode)
	if err != nil {
		return o, err
	}
	if s, ok := special["departAt"]; ok {
		o.DepartAt = s
	}
	if s, ok := special["arriveAt"]; ok {
		o.ArriveAt = s
	}
	if raw, ok := f.get("avoid"); ok {
		if o.Avoid, err = decodeModeValues("avoid", raw, matrixAvoidValues, mode); err != nil {
			return o, err
		}
		if len(o.Avoid) > 0 && !slices.Contains(avoidModes, mode) {
			return o, worker.Invalidf(codeConflicting, "avoid is only for driving and truck matrices, not %s", mode)
		}
	}
	if o.VehicleSpec != nil && o.VehicleSpec.AxleCount != 0 {
		return o, worker.Invalidf(codeInvalidValue, "vehicleSpec.axleCount is not taken by the route matrix API (route takes it)")
	}
	return o, nil
}

// optionalEnum decodes the optional string name, one of values.
func optionalEnum(f fields, name string, values []string) (string, error) {
	raw, ok := f.get(name)
	if !ok {
		return "", nil
	}
	s, err := decodeString(name, raw)
	if err != nil {
		return "", err
	}
	if !slices.Contains(values, s) {
		return "", worker.Invalidf(codeInvalidValue, "%s %s is not one of %s", name, quote(s), strings.Join(values, ", "))
	}
	return s, nil
}

func matrixTimeAny(s string) bool { return s == "" || s == matrixAnyTime }

// plainMatrix reports whether a matrix uses only what the large rows of
// the limits allow: departAt and arriveAt any, traffic historical,
// optimizeRoute fastest, travelMode driving or truck, no avoid and no
// vehicleSpec.
func plainMatrix(r *maps.MatrixRequest) bool {
	return matrixTimeAny(r.DepartAt) && matrixTimeAny(r.ArriveAt) &&
		(r.Traffic == "" || r.Traffic == "historical") &&
		(r.OptimizeRoute == "" || r.OptimizeRoute == "fastest") &&
		r.TravelMode != "walking" && len(r.Avoid) == 0 && r.VehicleSpec == nil
}

// matrixAPI picks the API for r from the rows of the limits (see the
// constants), or says why no row takes it.
func matrixAPI(r *maps.MatrixRequest) (async bool, err error) {
	o, d, n := len(r.Origins), len(r.Destinations), r.Cells()
	plain := plainMatrix(r)
	syncable := r.OptimizeRoute != "shortest"
	switch {
	case syncable && n <= matrixSmall:
		return false, nil
	case syncable && plain && n <= matrixSyncMax && o <= matrixSyncMaxPoints && d <= matrixSyncMaxPoints:
		return false, nil
	case syncable && n <= matrixSyncRegion:
		return false, nil
	case plain && n <= matrixAsyncMax && o <= matrixAsyncMaxPoints && d <= matrixAsyncMaxPoints:
		return true, nil
	case n <= matrixSyncMax && o <= matrixSyncMaxPoints && d <= matrixSyncMaxPoints:
		return true, nil
	case plain:
		return false, worker.Invalidf(codeTooManyCells, "a route matrix takes at most %d cells, with at most %d origins and %d destinations; this one has %d×%d = %d",
			matrixAsyncMax, matrixAsyncMaxPoints, matrixAsyncMaxPoints, o, d, n)
	}
	return false, worker.Invalidf(codeTooManyCells, "a route matrix of %d×%d = %d cells with %s is over Azure Maps' limits: beyond %d cells or %d origins or destinations it takes no option but travelMode driving or truck (departAt any, traffic historical, optimizeRoute fastest)",
		o, d, n, strings.Join(matrixExtras(r), ", "), matrixSyncMax, matrixSyncMaxPoints)
}

// matrixExtras names what keeps r from the large rows of the limits.
func matrixExtras(r *maps.MatrixRequest) []string {
	var out []string
	if r.TravelMode == "walking" {
		out = append(out, "travelMode walking")
	}
	if !matrixTimeAny(r.DepartAt) {
		out = append(out, "departAt")
	}
	if !matrixTimeAny(r.ArriveAt) {
		out = append(out, "arriveAt")
	}
	if r.Traffic == "live" {
		out = append(out, "traffic live")
	}
	if r.OptimizeRoute == "shortest" {
		out = append(out, "optimizeRoute shortest")
	}
	if len(r.Avoid) > 0 {
		out = append(out, "avoid")
	}
	if r.VehicleSpec != nil {
		out = append(out, "vehicleSpec")
	}
	return out
}

type matrixCall struct {
	k     *matrixKind
	r     maps.MatrixRequest
	async bool
	// Async only: the checkpoint's name, and the SHA-256 of the request
	// body, which a checkpoint must match to be resumed.
	checkpoint, fingerprint string
}

// tryTimeout implements longCall.
func (c *matrixCall) tryTimeout() time.Duration {
	if c.async {
		return matrixAsyncTry
	}
	return matrixSyncTry
}

func (c *matrixCall) run(ctx context.Context) (*worker.Output, error) {
	if c.k.maps == nil {
		return nil, worker.Transient(codeMapsCall, errors.New("jobs: the Azure Maps client has no route matrix calls"))
	}
	if !c.async {
		resp, err := c.k.maps.RouteMatrix(ctx, c.r)
		return output(resp, err, c.summarize(""))
	}
	return c.runAsync(ctx)
}

// matrixCheckpoint is the checkpoint of an asynchronous matrix: the
// operation to poll, for the request it was submitted for.
type matrixCheckpoint struct {
	Operation   string    `json:"operation"` // the status URL (Operation-Location)
	OperationID string    `json:"operationId"`
	SubmittedAt time.Time `json:"submittedAt"`
	Request     string    `json:"request"` // SHA-256 of the request body sent
	Cells       int       `json:"cells"`
}

// runAsync submits the matrix, or resumes the operation its checkpoint
// names, polls it at the interval the service asks for, and fetches the
// result. The checkpoint is written as soon as the service accepts the
// matrix, so that whatever ends this try (a crash, a stop, the try bound, a
// failed poll) the next one polls the same operation instead of paying for
// the matrix again; it is deleted once the result is in hand. An operation
// the service no longer knows (404: older than 24 hours) is submitted again.
func (c *matrixCall) runAsync(ctx context.Context) (*worker.Output, error) {
	cp, err := c.k.load(ctx, c.checkpoint)
	if err != nil {
		return nil, worker.Transient(codeCheckpoint, fmt.Errorf("reading the route matrix checkpoint %s: %w", c.checkpoint, err))
	}
	var loc, opID string
	wait := time.Duration(-1) // < 0: poll at once; 0: the service did not say
	if cp != nil && cp.Request == c.fingerprint && cp.Operation != "" && time.Since(cp.SubmittedAt) < operationRetention {
		loc, opID = cp.Operation, cp.OperationID // resume
	}
	submits := 0
	for {
		if loc == "" {
			if submits++; submits > 2 {
				return nil, worker.Transient(codeOperationLost, fmt.Errorf("Azure Maps lost the route matrix operation %s just after accepting it", opID))
			}
			op, err := c.k.maps.RouteMatrixSubmit(ctx, c.r)
			if err != nil {
				return nil, classify(err)
			}
			loc, opID, wait = op.Location, op.ID, op.RetryAfter
			c.k.save(ctx, c.checkpoint, matrixCheckpoint{
				Operation: loc, OperationID: opID, SubmittedAt: time.Now().UTC(), Request: c.fingerprint, Cells: c.r.Cells(),
			})
		}
		if wait >= 0 {
			if err := sleep(ctx, pollInterval(wait)); err != nil {
				return nil, classify(err)
			}
		}
		st, err := c.k.maps.RouteOperation(ctx, loc)
		switch {
		case maps.IsNotFound(err):
			c.k.forget(ctx, c.checkpoint)
			loc = ""
			continue
		case err != nil:
			return nil, classify(err)
		case st.Failed():
			c.k.forget(ctx, c.checkpoint)
			return nil, operationFailed(opID, st)
		case !st.Done():
			wait = st.RetryAfter
			continue
		}
		resp, err := c.k.maps.RouteOperationResult(ctx, st.ResultURL())
		if maps.IsNotFound(err) {
			c.k.forget(ctx, c.checkpoint)
			loc = ""
			continue
		}
		out, err := output(resp, err, c.summarize(opID))
		if err == nil {
			c.k.forget(ctx, c.checkpoint)
		}
		return out, err
	}
}

// Codes of failures of an asynchronous matrix that are not answers of
// Azure Maps.
const (
	codeCheckpoint    = "CheckpointUnavailable"
	codeOperationLost = "OperationLost"
	codeOperationFail = "OperationFailed"
)

// operationFailed is the error of an operation that ended Failed: the
// service's own fault (its code says a server error or a timeout) is
// transient, and the next try submits again; anything else is the
// request's, rejected.
func operationFailed(id string, st *maps.OperationStatus) error {
	code, msg := codeOperationFail, ""
	if st.Error != nil {
		code, msg = clean(st.Error.Code, 64), clean(st.Error.Message, maxMessageLen)
		if code == "" {
			code = codeOperationFail
		}
	}
	err := &cleanError{msg: strings.TrimSuffix(fmt.Sprintf("Azure Maps route matrix operation %s failed (%s): %s", id, code, msg), ": ") + requestIDSuffix(st.RequestID)}
	lc := strings.ToLower(code)
	if strings.HasPrefix(code, "5") || strings.Contains(lc, "internal") || strings.Contains(lc, "unavailable") || strings.Contains(lc, "timeout") {
		return worker.Transient(code, err)
	}
	return worker.Rejected(code, err)
}

// pollInterval bounds the wait the service asked for; 0 means it did not say.
func pollInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return matrixPollDefault
	}
	return min(max(d, matrixPollMin), matrixPollMax)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// load returns the checkpoint name: this process's, else the durable
// store's; nil if there is none or it cannot be read as one.
func (k *matrixKind) load(ctx context.Context, name string) (*matrixCheckpoint, error) {
	b := k.mem.get(name)
	if b == nil && k.checkpoints != nil {
		var err error
		if b, err = k.checkpoints.Get(ctx, name); err != nil {
			return nil, err
		}
	}
	if b == nil {
		return nil, nil
	}
	var cp matrixCheckpoint
	if json.Unmarshal(b, &cp) != nil {
		return nil, nil // not ours to read: submit, and write ours over it
	}
	return &cp, nil
}

// save writes the checkpoint to this process's store and the durable one.
// The operation is accepted and paid for by now: a durable write that fails
// (twice) does not fail the request, which keeps polling; only a crash
// before the result would then submit it again.
func (k *matrixKind) save(ctx context.Context, name string, cp matrixCheckpoint) {
	b, _ := json.Marshal(cp) // strings, a time and an int
	k.mem.put(name, b)
	if k.checkpoints == nil {
		return
	}
	for range 2 {
		if k.checkpoints.Put(ctx, name, b) == nil || ctx.Err() != nil {
			return
		}
	}
}

// forget deletes the checkpoint. A delete that fails leaves a checkpoint
// that does no harm: it is resumed only by the same request, whose result
// it still gives, and a 404 once the service has forgotten the operation
// leads to a new submission.
func (k *matrixKind) forget(ctx context.Context, name string) {
	k.mem.delete(name)
	if k.checkpoints != nil {
		_ = k.checkpoints.Delete(context.WithoutCancel(ctx), name)
	}
}

// memCheckpoints are this process's checkpoints, so that a retry in
// process resumes without reading storage. Bounded: a message poisoned
// mid-operation leaves its entry, and the oldest go first.
type memCheckpoints struct {
	mu    sync.Mutex
	m     map[string][]byte
	order []string
}

const maxMemCheckpoints = 1024

func (m *memCheckpoints) get(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[name]
}

func (m *memCheckpoints) put(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string][]byte)
	}
	if _, ok := m.m[name]; !ok {
		m.order = append(m.order, name)
	}
	m.m[name] = b
	for len(m.m) > maxMemCheckpoints {
		delete(m.m, m.order[0])
		m.order = m.order[1:]
	}
}

func (m *memCheckpoints) delete(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[name]; ok {
		delete(m.m, name)
		m.order = slices.DeleteFunc(m.order, func(n string) bool { return n == name })
	}
}

// MatrixSummary is the summary of a route-matrix result: its size, the
// cells that failed (each with its own error in the response), and the
// range of durations and distances over the cells that succeeded (absent
// when none did).
type MatrixSummary struct {
	Origins              int      `json:"origins"`
	Destinations         int      `json:"destinations"`
	Cells                int      `json:"cells"`
	FailedCells          int      `json:"failedCells"`
	MinDurationInSeconds *float64 `json:"minDurationInSeconds,omitempty"`
	MaxDurationInSeconds *float64 `json:"maxDurationInSeconds,omitempty"`
	MinDistanceInMeters  *float64 `json:"minDistanceInMeters,omitempty"`
	MaxDistanceInMeters  *float64 `json:"maxDistanceInMeters,omitempty"`
	// OperationID names the asynchronous operation that computed the
	// matrix; empty for a synchronous one.
	OperationID string `json:"operationId,omitempty"`
}

// summarize returns the summary function of c's answer.
func (c *matrixCall) summarize(opID string) func([]byte) (*MatrixSummary, error) {
	return func(body []byte) (*MatrixSummary, error) {
		return summarizeMatrix(body, len(c.r.Origins), len(c.r.Destinations), opID)
	}
}

// summarizeMatrix reads a matrix answer (sync, or an async result). A cell
// the answer lacks counts as failed.
func summarizeMatrix(body []byte, origins, dests int, opID string) (*MatrixSummary, error) {
	var doc struct {
		Type       string `json:"type"`
		Properties *struct {
			Matrix []struct {
				StatusCode        *int            `json:"statusCode"`
				OriginIndex       *int            `json:"originIndex"`
				DestinationIndex  *int            `json:"destinationIndex"`
				DistanceInMeters  *float64        `json:"distanceInMeters"`
				DurationInSeconds *float64        `json:"durationInSeconds"`
				Error             json.RawMessage `json:"error"`
			} `json:"matrix"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	if doc.Type != "Feature" || doc.Properties == nil {
		return nil, fmt.Errorf("type is %q with no properties, not a route matrix Feature", doc.Type)
	}
	s := &MatrixSummary{Origins: origins, Destinations: dests, Cells: origins * dests, OperationID: opID}
	seen := make(map[[2]int]bool, len(doc.Properties.Matrix))
	minT, maxT, minD, maxD := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	succeeded := 0
	for _, cell := range doc.Properties.Matrix {
		if cell.OriginIndex == nil || cell.DestinationIndex == nil ||
			*cell.OriginIndex < 0 || *cell.OriginIndex >= origins || *cell.DestinationIndex < 0 || *cell.DestinationIndex >= dests {
			return nil, errors.New("a cell has no origin or destination index in range")
		}
		key := [2]int{*cell.OriginIndex, *cell.DestinationIndex}
		if seen[key] {
			continue
		}
		seen[key] = true
		ok := (cell.StatusCode == nil || *cell.StatusCode/100 == 2) && (len(cell.Error) == 0 || string(cell.Error) == "null") &&
			cell.DurationInSeconds != nil && cell.DistanceInMeters != nil
		if !ok {
			continue
		}
		minT, maxT = math.Min(minT, *cell.DurationInSeconds), math.Max(maxT, *cell.DurationInSeconds)
		minD, maxD = math.Min(minD, *cell.DistanceInMeters), math.Max(maxD, *cell.DistanceInMeters)
		succeeded++
	}
	s.FailedCells = s.Cells - succeeded
	if !math.IsInf(minT, 1) {
		s.MinDurationInSeconds, s.MaxDurationInSeconds = &minT, &maxT
		s.MinDistanceInMeters, s.MaxDistanceInMeters = &minD, &maxD
	}
	return s, nil
}

// longCall is a call whose work outlasts the engine's default try bound.
type longCall interface {
	tryTimeout() time.Duration
}

var _ worker.LongRunner = (*task)(nil)

// TryTimeout implements [worker.LongRunner]: the bound of one try of a task
// whose call runs long (a route matrix); 0, the engine's default, for the
// others.
func (t *task) TryTimeout() time.Duration {
	if lc, ok := t.call.(longCall); ok {
		return lc.tryTimeout()
	}
	return 0
}
