package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/jobs/maps/catalog"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// matrixJSON is a route-matrix request of o origins and d destinations
// around Seattle, with extra members (a JSON object's inside, or "").
func matrixJSON(id string, o, d int, extra string) []byte {
	pts := func(n, seed int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"lat":%.5f,"lon":%.5f}`, 47.55+0.0007*float64(i+seed), -122.35+0.0011*float64(i+seed))
		}
		return "[" + b.String() + "]"
	}
	s := `{"kind":"route-matrix"`
	if id != "" {
		s += `,"id":"` + id + `"`
	}
	s += `,"origins":` + pts(o, 0) + `,"destinations":` + pts(d, 5)
	if extra != "" {
		s += "," + extra
	}
	return []byte(s + "}")
}

func TestDecodeMatrix(t *testing.T) {
	h := NewHandler(nil, nil)
	one := `"origins":[{"lat":47.6,"lon":-122.1}],"destinations":[{"lat":47.7,"lon":-122.2}]`
	tests := []struct {
		name, body string
		code       string // "" valid
		async      bool
	}{
		{"minimal", `{"kind":"route-matrix",` + one + `}`, "", false},
		{"every option, truck", `{"kind":"route-matrix",` + one + `,"travelMode":"truck","departAt":"2026-12-01T08:00:00-08:00","traffic":"live","optimizeRoute":"fastest","avoid":["tollRoads","unpavedRoads","tollRoads"],"vehicleSpec":{"height":4.1,"weight":30000,"loadType":["USHazmatClass3"],"adrTunnelRestrictionCode":"C","isVehicleCommercial":true}}`, "", false},
		{"departAt now, live", `{"kind":"route-matrix",` + one + `,"departAt":"now","traffic":"live"}`, "", false},
		{"departAt any", `{"kind":"route-matrix",` + one + `,"departAt":"any"}`, "", false},
		{"arriveAt", `{"kind":"route-matrix",` + one + `,"arriveAt":"2026-12-01T08:00:00Z"}`, "", false},
		{"avoid unpavedRoads driving", `{"kind":"route-matrix",` + one + `,"avoid":["unpavedRoads"]}`, "", false},
		{"shortest goes async", `{"kind":"route-matrix",` + one + `,"optimizeRoute":"shortest"}`, "", true},
		{"no origins", `{"kind":"route-matrix","destinations":[{"lat":1,"lon":1}]}`, codeMissingField, false},
		{"empty destinations", `{"kind":"route-matrix","origins":[{"lat":1,"lon":1}],"destinations":[]}`, codeMissingField, false},
		{"origins not an array", `{"kind":"route-matrix","origins":{"lat":1,"lon":1},"destinations":[{"lat":1,"lon":1}]}`, codeWrongType, false},
		{"latitude out of range", `{"kind":"route-matrix","origins":[{"lat":91,"lon":1}],"destinations":[{"lat":1,"lon":1}]}`, codeOutOfRange, false},
		{"lon missing", `{"kind":"route-matrix","origins":[{"lat":1}],"destinations":[{"lat":1,"lon":1}]}`, codeMissingField, false},
		{"travelMode bicycle", `{"kind":"route-matrix",` + one + `,"travelMode":"bicycle"}`, codeInvalidValue, false},
		{"departAt and arriveAt", `{"kind":"route-matrix",` + one + `,"departAt":"now","arriveAt":"2026-12-01T08:00:00Z"}`, codeConflicting, false},
		{"arriveAt now", `{"kind":"route-matrix",` + one + `,"arriveAt":"now"}`, codeInvalidValue, false},
		{"departAt tomorrow", `{"kind":"route-matrix",` + one + `,"departAt":"tomorrow"}`, codeInvalidValue, false},
		{"live without a time", `{"kind":"route-matrix",` + one + `,"traffic":"live"}`, codeConflicting, false},
		{"live with any", `{"kind":"route-matrix",` + one + `,"traffic":"live","departAt":"any"}`, codeConflicting, false},
		{"traffic jam", `{"kind":"route-matrix",` + one + `,"traffic":"jam"}`, codeInvalidValue, false},
		{"optimizeRoute of a route", `{"kind":"route-matrix",` + one + `,"optimizeRoute":"fastestWithTraffic"}`, codeInvalidValue, false},
		{"avoid ferries", `{"kind":"route-matrix",` + one + `,"avoid":["ferries"]}`, codeInvalidValue, false},
		{"avoid walking", `{"kind":"route-matrix",` + one + `,"travelMode":"walking","avoid":["tollRoads"]}`, codeConflicting, false},
		{"vehicleSpec driving", `{"kind":"route-matrix",` + one + `,"vehicleSpec":{"height":4}}`, codeConflicting, false},
		{"vehicleSpec axleCount", `{"kind":"route-matrix",` + one + `,"travelMode":"truck","vehicleSpec":{"axleCount":5}}`, codeInvalidValue, false},
		{"vehicleSpec misspelt", `{"kind":"route-matrix",` + one + `,"travelMode":"truck","vehicleSpec":{"hieght":4}}`, codeInvalidValue, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := h.Decode([]byte(tt.body), "m")
			if tt.code != "" {
				if worker.ClassOf(err) != worker.ClassInvalid || worker.CodeOf(err) != tt.code {
					t.Fatalf("err %v (%s), want %s", err, worker.CodeOf(err), tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := matrixCallOf(task)
			if c.async != tt.async {
				t.Errorf("async %v, want %v", c.async, tt.async)
			}
		})
	}
	// What is sent: the options under their names, duplicates once.
	task, _ := h.Decode([]byte(tests[1].body), "m")
	r := matrixCallOf(task).r
	if r.TravelMode != "truck" || r.Traffic != "live" || r.OptimizeRoute != "fastest" || r.DepartAt != "2026-12-01T08:00:00-08:00" ||
		fmt.Sprint(r.Avoid) != "[tollRoads unpavedRoads]" || r.VehicleSpec == nil || r.VehicleSpec.Height != 4.1 {
		t.Errorf("request %+v", r)
	}
	task, _ = h.Decode([]byte(tests[2].body), "m")
	if r := matrixCallOf(task).r; r.DepartAt != "now" {
		t.Errorf("departAt now sent as %q", r.DepartAt)
	}
}

// The worker picks the API by the service's rows of limits and refuses
// what none takes, before any call.
func TestMatrixCellLimits(t *testing.T) {
	// Past a queue message's 64 KiB: the API's own limits are checked too.
	h := NewHandler(nil, &HandlerOptions{MaxBodyBytes: 4 << 20})
	tests := []struct {
		name  string
		o, d  int
		extra string
		code  string
		async bool
	}{
		{"100 with every option: sync", 10, 10, `"travelMode":"walking","departAt":"2026-12-01T08:00:00Z"`, "", false},
		{"2500 plain: sync", 50, 50, "", "", false},
		{"2500 plain truck: sync", 50, 50, `"travelMode":"truck","departAt":"any","traffic":"historical"`, "", false},
		{"2501 plain: async", 41, 61, "", "", true},
		{"1001 origins plain: async", 1001, 2, "", "", true},
		{"200 with avoid: sync in the box", 10, 20, `"avoid":["tollRoads"]`, "", false},
		{"201 with avoid: async in the box", 3, 67, `"avoid":["tollRoads"]`, "", true},
		{"300 walking: async in the box", 10, 30, `"travelMode":"walking"`, "", true},
		{"2500 with a time: async in the box", 50, 50, `"departAt":"2026-12-01T08:00:00Z"`, "", true},
		{"2501 with a time: too many", 41, 61, `"departAt":"2026-12-01T08:00:00Z"`, codeTooManyCells, false},
		{"3000 walking: too many", 50, 60, `"travelMode":"walking"`, codeTooManyCells, false},
		{"3000 with everything: too many", 50, 60, `"travelMode":"truck","departAt":"2026-12-01T08:00:00.123456789+05:30","traffic":"live","optimizeRoute":"shortest","avoid":["tollRoads"],"vehicleSpec":{"height":4}`, codeTooManyCells, false},
		{"3000 shortest: too many", 50, 60, `"optimizeRoute":"shortest"`, codeTooManyCells, false},
		{"1001 origins with avoid: too many", 1001, 1, `"avoid":["tollRoads"]`, codeTooManyCells, false},
		{"50000 plain: async", 250, 200, "", "", true},
		{"50001 plain: too many", 1, 50001, "", codeTooManyCells, false},
		{"10001 origins: too many", 10001, 1, "", codeTooManyCells, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := matrixJSON("", tt.o, tt.d, tt.extra)
			task, err := h.Decode(body, "m")
			if tt.code != "" {
				if worker.CodeOf(err) != tt.code {
					t.Fatalf("err %v, want %s", err, tt.code)
				}
				if len(err.Error()) > 400 { // FuzzDecode's bound
					t.Errorf("a message of %d bytes: %v", len(err.Error()), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c := matrixCallOf(task); c.async != tt.async {
				t.Errorf("async %v, want %v", c.async, tt.async)
			}
		})
	}
}

func TestSummarizeMatrix(t *testing.T) {
	s, err := summarizeMatrix(specBody(t, "RouteMatrix_2025-01-01_POST_200.json"), 2, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Cells != 4 || s.FailedCells != 0 || *s.MinDurationInSeconds != 19520 || *s.MaxDurationInSeconds != 33623 ||
		*s.MinDistanceInMeters != 427769 || *s.MaxDistanceInMeters != 877028 {
		t.Errorf("sync example: %+v", s)
	}
	// The async example: two cells OUT_OF_REGION.
	s, err = summarizeMatrix(specBody(t, "RouteMatrixAsyncResult_2025-01-01_GET_200.json"), 2, 2, "bc3f")
	if err != nil {
		t.Fatal(err)
	}
	if s.Cells != 4 || s.FailedCells != 2 || *s.MinDurationInSeconds != 20353 || *s.MaxDurationInSeconds != 27677 || s.OperationID != "bc3f" {
		t.Errorf("async example: %+v", s)
	}
	b, _ := json.Marshal(s)
	if line := DescribeSummary(KindRouteMatrix, b); line != "2×2 matrix: 4 cells, 2 failed; 5h39m13s–7h41m17s, 452.5–573.1 km (async bc3f)" {
		t.Errorf("describe: %q", line)
	}
	// A cell the answer lacks counts as failed; every cell failed has no range.
	s, err = summarizeMatrix([]byte(`{"type":"Feature","geometry":null,"properties":{"matrix":[{"originIndex":0,"destinationIndex":0,"statusCode":400,"error":{"code":"OUT_OF_REGION"}}],"summary":{}}}`), 1, 2, "")
	if err != nil || s.FailedCells != 2 || s.MinDurationInSeconds != nil {
		t.Errorf("all failed: %+v %v", s, err)
	}
	b, _ = json.Marshal(s)
	if line := DescribeSummary(KindRouteMatrix, b); line != "1×2 matrix: 2 cells, all failed" {
		t.Errorf("describe: %q", line)
	}
	for _, bad := range []string{`{"type":"FeatureCollection"}`, `{"type":"Feature"}`, `{"type":"Feature","properties":{"matrix":[{"originIndex":5,"destinationIndex":0}]}}`, `[]`} {
		if _, err := summarizeMatrix([]byte(bad), 2, 2, ""); err == nil {
			t.Errorf("%s read as a matrix", bad)
		}
	}
}

func matrixCallOf(wt worker.Task) *matrixCall { return wt.(*task).call.(*matrixCall) }

func TestMatrixFromArgs(t *testing.T) {
	k := cliKinds[KindRouteMatrix]
	f, err := k.fromArgs([]string{"47.6,-122.1", "47.7,-122.2", "to", "47.5,-122.3"}, ArgOptions{TravelMode: "truck"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(f); string(b) != `{"destinations":[{"lat":47.5,"lon":-122.3}],"origins":[{"lat":47.6,"lon":-122.1},{"lat":47.7,"lon":-122.2}],"travelMode":"truck"}` {
		t.Errorf("%s", b)
	}
	// Without "to", every position is an origin and a destination.
	f, err = k.fromArgs([]string{"47.6,-122.1", "47.7,-122.2", "47.5,-122.3"}, ArgOptions{})
	if err != nil || len(f["origins"].([]map[string]float64)) != 3 || len(f["destinations"].([]map[string]float64)) != 3 {
		t.Errorf("square: %v %v", f, err)
	}
	if f, err = k.fromArgs([]string{"47.6,-122.1", "--", "47.5,-122.3"}, ArgOptions{}); err != nil || len(f["destinations"].([]map[string]float64)) != 1 {
		t.Errorf("with --: %v %v", f, err)
	}
	for _, bad := range [][]string{nil, {"to", "47.5,-122.3"}, {"47.6,-122.1", "to"}, {"47.6,-122.1", "to", "1,1", "to", "2,2"}, {"Seattle", "to", "1,1"}} {
		if _, err := k.fromArgs(bad, ArgOptions{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	body, err := RequestFromArgs(KindRouteMatrix, k.example(), "plan-1", ArgOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewHandler(nil, nil).Decode(body, "m"); err != nil {
		t.Errorf("the example %s: %v", body, err)
	}
}

// memStore is a durable Checkpoints in memory, shared by the handlers of
// a test as the results container is by processes. It counts writes.
type memStore struct {
	mu     sync.Mutex
	m      map[string][]byte
	puts   int
	putErr error
}

func (s *memStore) Get(_ context.Context, name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

func (s *memStore) Put(_ context.Context, name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.putErr != nil {
		return s.putErr
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = b
	return nil
}

func (s *memStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

func (s *memStore) get(name string) []byte {
	b, _ := s.Get(context.Background(), name)
	return b
}

// matrixHandler is a handler of a process of its own (its own client and
// in-process checkpoints) whose matrices keep their checkpoints in cp.
func matrixHandler(t *testing.T, s *mapstest.Server, cp Checkpoints) *Handler {
	t.Helper()
	return NewHandler(emulatorClient(t, s, nil), &HandlerOptions{Checkpoints: cp})
}

func runTask(t *testing.T, h *Handler, body []byte, ctx context.Context) (*worker.Output, error) {
	t.Helper()
	task, err := h.Decode(body, "msg-1")
	if err != nil {
		t.Fatal(err)
	}
	return task.Run(ctx)
}

func matrixSummary(t *testing.T, out *worker.Output) *MatrixSummary {
	t.Helper()
	s, ok := out.Summary.(*MatrixSummary)
	if !ok {
		t.Fatalf("summary %T", out.Summary)
	}
	return s
}

// A small matrix is one synchronous call.
func TestMatrixSync(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := matrixHandler(t, s, &memStore{})
	out, err := runTask(t, h, matrixJSON("small", 3, 4, `"travelMode":"truck","avoid":["tollRoads"]`), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum := matrixSummary(t, out)
	if sum.Cells != 12 || sum.FailedCells != 0 || sum.Origins != 3 || sum.Destinations != 4 || sum.OperationID != "" || *sum.MinDistanceInMeters <= 0 {
		t.Errorf("summary %+v", sum)
	}
	if st := s.Stats(); st.PerPath[catalog.RouteMatrix] != 1 || st.PerPath[catalog.RouteMatrixAsync] != 0 {
		t.Errorf("per path %v", st.PerPath)
	}
	// A 400 of the service is the request's: rejected.
	h2 := matrixHandler(t, s, nil)
	task, _ := h2.Decode(matrixJSON("x", 1, 1, ""), "m")
	matrixCallOf(task).r.OptimizeRoute = "shortest" // past the worker's own check
	if _, err := task.Run(context.Background()); worker.ClassOf(err) != worker.ClassRejected {
		t.Errorf("refused by Maps: %v", err)
	}
}

// A large matrix is submitted, polled at the interval the service asks
// for, and fetched; its checkpoint is written once and gone at the end.
func TestMatrixAsyncRun(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetOperationTiming(500*time.Millisecond, 50*time.Millisecond)
	store := &memStore{}
	h := matrixHandler(t, s, store)
	task, err := h.Decode(matrixJSON("plan-9", 50, 60, ""), "m")
	if err != nil {
		t.Fatal(err)
	}
	if lr, ok := task.(worker.LongRunner); !ok || lr.TryTimeout() != matrixAsyncTry {
		t.Fatalf("an async matrix is not a long runner of %v", matrixAsyncTry)
	}
	out, err := task.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sum := matrixSummary(t, out)
	if sum.Cells != 3000 || sum.FailedCells != 0 || sum.OperationID == "" || *sum.MaxDurationInSeconds < *sum.MinDurationInSeconds {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(string(out.Response[:100]), `"kind":"RouteMatrix"`) {
		t.Errorf("response %.100s", out.Response)
	}
	st := s.Stats()
	if s.OperationsAccepted() != 1 || st.PerPath[catalog.RouteOperationResult] != 1 || st.PerPath[catalog.RouteOperation] < 3 || st.PerPath[catalog.RouteOperation] > 20 {
		t.Errorf("accepted %d, per path %v", s.OperationsAccepted(), st.PerPath)
	}
	if store.puts != 1 || store.get(KindRouteMatrix+"/plan-9") != nil {
		t.Errorf("checkpoint written %d times, left %s", store.puts, store.get(KindRouteMatrix+"/plan-9"))
	}
	// Not a long runner: the other kinds, and the engine's bound.
	g, _ := h.Decode([]byte(`{"kind":"geocode","query":"x"}`), "m")
	if g.(worker.LongRunner).TryTimeout() != 0 {
		t.Error("a geocode bounds its own try")
	}
	small, _ := h.Decode(matrixJSON("", 2, 2, ""), "m")
	if small.(worker.LongRunner).TryTimeout() != matrixSyncTry {
		t.Errorf("a sync matrix bounds its try at %v, want %v", small.(worker.LongRunner).TryTimeout(), matrixSyncTry)
	}
}

// A crash or stop after the submission: the first delivery submits and is
// cancelled while it polls; the next delivery, in another process, polls
// the same operation (its checkpoint in the results container, Azurite
// here) and is not billed again.
func TestMatrixResumesAfterCrash(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetOperationTiming(time.Hour, 50*time.Millisecond) // slow: the first delivery never sees it done
	az := azuritetest.New(t, nil)
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{Container: "results"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ensure(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	store := st.Checkpoints()
	body := matrixJSON("plan-7", 50, 60, "")
	const name = KindRouteMatrix + "/plan-7"

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runTask(t, matrixHandler(t, s, store), body, ctx)
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().PerPath[catalog.RouteOperation] >= 2 })
	cancel() // the process stops (or dies) mid-poll
	if err := <-done; worker.ClassOf(err) != worker.ClassTransient {
		t.Fatalf("first delivery: %v, want a transient error", err)
	}
	saved, err := store.Get(context.Background(), name)
	if err != nil || saved == nil {
		t.Fatalf("no checkpoint after the first delivery: %v", err)
	}
	var cp matrixCheckpoint
	if err := json.Unmarshal(saved, &cp); err != nil || cp.Operation == "" || cp.Cells != 3000 {
		t.Fatalf("checkpoint %s: %v", saved, err)
	}

	s.SetOperationTiming(200*time.Millisecond, 50*time.Millisecond) // the service finishes meanwhile
	out, err := runTask(t, matrixHandler(t, s, store), body, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := s.OperationsAccepted(); n != 1 {
		t.Errorf("%d submissions, want the first only", n)
	}
	if id := matrixSummary(t, out).OperationID; id != cp.OperationID {
		t.Errorf("result of operation %s, the checkpoint's is %s", id, cp.OperationID)
	}
	if b, err := store.Get(context.Background(), name); b != nil || err != nil {
		t.Errorf("checkpoint left after the result: %s %v", b, err)
	}
}

// An operation the service forgot (404: older than 24 hours) is submitted
// again; a checkpoint of another request under the same id is not resumed.
func TestMatrixResubmits(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetOperationTiming(time.Hour, 50*time.Millisecond)
	store := &memStore{}
	body := matrixJSON("plan-8", 50, 60, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := runTask(t, matrixHandler(t, s, store), body, ctx); worker.CodeOf(err) != codeTimeout {
		t.Fatalf("first try: %v", err)
	}
	s.ExpireOperations()
	s.SetOperationTiming(100*time.Millisecond, 50*time.Millisecond)
	if _, err := runTask(t, matrixHandler(t, s, store), body, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.OperationsAccepted(); n != 2 {
		t.Errorf("%d submissions, want 2: the forgotten one and its successor", n)
	}

	// Same id, other request: its own submission.
	s.SetOperationTiming(time.Hour, 50*time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	runTask(t, matrixHandler(t, s, store), body, ctx2)
	s.SetOperationTiming(100*time.Millisecond, 50*time.Millisecond)
	if _, err := runTask(t, matrixHandler(t, s, store), matrixJSON("plan-8", 50, 61, ""), context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.OperationsAccepted(); n != 4 {
		t.Errorf("%d submissions, want 4", n)
	}
}

// A retry in the same process resumes from memory, even when the durable
// store refuses every write.
func TestMatrixRetryInProcess(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetOperationTiming(time.Hour, 50*time.Millisecond)
	store := &memStore{putErr: fmt.Errorf("storage down")}
	h := matrixHandler(t, s, store)
	body := matrixJSON("plan-5", 50, 60, "")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := runTask(t, h, body, ctx); worker.ClassOf(err) != worker.ClassTransient {
		t.Fatalf("first try: %v", err)
	}
	if store.puts != 2 {
		t.Errorf("%d tries to write the checkpoint, want 2", store.puts)
	}
	s.SetOperationTiming(100*time.Millisecond, 50*time.Millisecond)
	if _, err := runTask(t, h, body, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.OperationsAccepted(); n != 1 {
		t.Errorf("%d submissions", n)
	}
}

// An operation that ends Failed: the request's fault is rejected; the
// service's own (a server error) is transient, and the next try submits again.
func TestMatrixOperationFailed(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetOperationTiming(50*time.Millisecond, 50*time.Millisecond)
	store := &memStore{}
	h := matrixHandler(t, s, store)
	s.SetOperationFailure("InvalidRequest", "The origins cannot be routed.")
	_, err := runTask(t, h, matrixJSON("bad", 50, 60, ""), context.Background())
	if worker.ClassOf(err) != worker.ClassRejected || worker.CodeOf(err) != "InvalidRequest" || !strings.Contains(err.Error(), "cannot be routed") {
		t.Errorf("failed operation: %v (%s)", err, worker.CodeOf(err))
	}
	s.SetOperationFailure("InternalServerError", "boom")
	if _, err := runTask(t, h, matrixJSON("bad", 50, 60, ""), context.Background()); worker.ClassOf(err) != worker.ClassTransient {
		t.Errorf("server error: %v", err)
	}
	if len(store.m) != 0 {
		t.Errorf("checkpoints left: %v", store.m)
	}
	s.SetOperationFailure("", "")
	if _, err := runTask(t, h, matrixJSON("bad", 50, 60, ""), context.Background()); err != nil {
		t.Errorf("after the failure: %v", err)
	}
	if n := s.OperationsAccepted(); n != 3 {
		t.Errorf("%d submissions", n)
	}
}

// End to end through the engine, against Azurite and the emulator: a worker
// stopped while it polls an asynchronous matrix releases the message; the
// next worker (another process: its own handler) polls the same operation,
// under a lease renewed meanwhile, and writes the result. One submission.
func TestMatrixEngineStopAndResume(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetOperationTiming(time.Hour, 100*time.Millisecond)
	az := azuritetest.New(t, nil)
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{Queue: "requests", Container: "results"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := st.Ensure(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if err := st.Requests.Send(ctx, string(matrixJSON("fleet-1", 50, 60, ""))); err != nil {
		t.Fatal(err)
	}
	opts := func() *worker.Options {
		return &worker.Options{Lease: 2 * time.Second, MaxPollInterval: 200 * time.Millisecond, SummaryInterval: -1, Logger: quiet}
	}
	start := func(h *Handler) *worker.Engine {
		e := worker.New(st.Requests, st.Poison, st.Results, h, opts())
		go e.Run(ctx)
		return e
	}
	const name = KindRouteMatrix + "/fleet-1"
	e1 := start(matrixHandler(t, s, st.Checkpoints()))
	waitFor(t, func() bool { b, _ := st.Checkpoints().Get(ctx, name); return b != nil })
	time.Sleep(300 * time.Millisecond) // a few polls
	stop, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	e1.Shutdown(stop) // the drain runs out: the polling is cut, the message released
	cancel()

	s.SetOperationTiming(4*time.Second, 100*time.Millisecond) // done 4 s after submission: longer than the lease
	e2 := start(matrixHandler(t, s, st.Checkpoints()))
	defer func() {
		stop, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		e2.Shutdown(stop)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := st.Results.Succeeded(ctx, worker.ResultName(KindRouteMatrix, "fleet-1"))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no result")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.OperationsAccepted(); n != 1 {
		t.Errorf("%d submissions, want 1", n)
	}
	if b, _ := st.Checkpoints().Get(ctx, name); b != nil {
		t.Errorf("checkpoint left: %s", b)
	}
}
