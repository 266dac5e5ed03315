package jobs

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// emulatorClient returns a Maps client that calls the emulator s with its
// managed identity, with the given client-side rate limits (nil: the Gen2
// defaults).
func emulatorClient(t *testing.T, s *mapstest.Server, limits map[string]int) *maps.Client {
	t.Helper()
	c, err := maps.NewClient(s.URL, s.Credential(), &maps.ClientOptions{
		ClientID:      s.ClientID,
		ClientOptions: azcore.ClientOptions{Transport: s.Client()},
		RateLimits:    limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// batchHandler returns a batching handler whose client calls s, with the
// given client-side rate limits (nil: the Gen2 defaults).
func batchHandler(t *testing.T, s *mapstest.Server, limits map[string]int) *Handler {
	t.Helper()
	return NewHandler(emulatorClient(t, s, limits), &HandlerOptions{Batch: true})
}

// gate holds the single geocode calls reaching the emulator until opened.
type gate struct {
	open chan struct{}
	held atomic.Int64
}

func holdSingles(t *testing.T, s *mapstest.Server) *gate {
	t.Helper()
	g := &gate{open: make(chan struct{})}
	s.SetHandlerHook(func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/geocode") || strings.HasSuffix(r.URL.Path, "/route/directions") {
			g.held.Add(1)
			<-g.open
		}
	})
	t.Cleanup(func() { s.SetHandlerHook(nil) })
	return g
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

func pendingOf[Q any](b *batcher[Q]) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// runGeocodes decodes and runs n geocode requests at once; the i-th of them
// is rejected by the emulator when reject(i).
func runGeocodes(t *testing.T, h *Handler, n int, reject func(int) bool) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		q := fmt.Sprintf("%d NE 24th Street, Redmond", i)
		if reject(i) {
			q += " #reject"
		}
		task, err := h.Decode([]byte(fmt.Sprintf(`{"id":"g%d","kind":"geocode","query":%q}`, i, q)), "m")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			out, err := task.Run(context.Background())
			if err == nil {
				if s, ok := out.Summary.(*GeocodeSummary); !ok || s.Matches == 0 || len(out.Response) == 0 {
					err = fmt.Errorf("summary %+v", out.Summary)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

// A request that finds the API idle goes out at once, alone: one after
// the other, requests never wait for company.
func TestBatcherSendsAtOnceWithHeadroom(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := batchHandler(t, s, nil)
	for i := range 5 {
		if errs := runGeocodes(t, h, 1, func(int) bool { return false }); errs[0] != nil {
			t.Fatalf("call %d: %v", i, errs[0])
		}
	}
	if st := s.Stats(); st.PerPath[mapstest.APIGeocode] != 5 || st.PerPath[mapstest.APIGeocodeBatch] != 0 {
		t.Errorf("requests per path %v, want 5 single calls", st.PerPath)
	}
}

// Requests arriving while maxCallsInFlight calls are under way gather, and
// go as one batch when a call ends (group commit); an item rejected by Maps
// is that request's own outcome.
func TestGeocodeBatching(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := batchHandler(t, s, map[string]int{maps.APIGeocode: -1})
	g := holdSingles(t, s)
	const n = 60
	var errs []error
	done := make(chan struct{})
	go func() {
		errs = runGeocodes(t, h, n, func(i int) bool { return i%10 == 7 })
		close(done)
	}()
	waitFor(t, func() bool {
		return g.held.Load() == maxCallsInFlight && pendingOf(h.kinds[KindGeocode].(*geocodeKind).batch) == n-maxCallsInFlight
	})
	close(g.open)
	<-done
	rejected := 0
	for i, err := range errs {
		switch {
		case worker.ClassOf(err) == worker.ClassRejected:
			rejected++
		case err != nil:
			t.Errorf("g%d: %v", i, err)
		}
	}
	if rejected != n/10 {
		t.Errorf("%d rejected, want %d", rejected, n/10)
	}
	st := s.Stats()
	if st.PerPath[mapstest.APIGeocode] != maxCallsInFlight || st.PerPath[mapstest.APIGeocodeBatch] != 1 || st.BatchItems != n-maxCallsInFlight {
		t.Errorf("requests per path %v, %d batch items; want %d single calls and one batch of the %d others",
			st.PerPath, st.BatchItems, maxCallsInFlight, n-maxCallsInFlight)
	}
}

// When the single-call rate is the bottleneck, the requests it refuses
// gather into batches instead of queueing for slots (60 routes at 5 QPS
// would take 12 s one by one). While the batch rate is spent too, they go
// one by one at the single-call rate until the next batch slot.
func TestBatchingUnderSingleRateLimit(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetRateLimit(mapstest.APIRoute, 5)
	s.SetRateLimit(mapstest.APIRouteBatch, 1)
	h := batchHandler(t, s, map[string]int{maps.APIRoute: 5, maps.APIRouteBatch: 1})
	const n = 60
	for wave := range 2 {
		for i, err := range runRoutes(t, h, n) {
			if err != nil {
				t.Errorf("wave %d r%d: %v", wave, i, err)
			}
		}
		st := s.Stats()
		t.Logf("wave %d: requests per path %v, %d batch items", wave, st.PerPath, st.BatchItems)
		singles, batches := st.PerPath[mapstest.APIRoute], st.PerPath[mapstest.APIRouteBatch]
		// Each wave takes one or two batches and a few single calls (about
		// five a second while the batch rate is spent), not 60 calls.
		if singles+st.BatchItems != int64(n*(wave+1)) || batches < int64(wave+1) || singles+batches > int64(15*(wave+1)) || st.Status429 != 0 {
			t.Errorf("wave %d: requests per path %v, %d batch items, %d 429s; want %d answered by at most %d calls, no 429",
				wave, st.PerPath, st.BatchItems, st.Status429, n*(wave+1), 15*(wave+1))
		}
	}
}

// A request refused a single-call slot never queues behind another one: of
// ten routes at once (20 ms between route slots, 100 ms of Maps latency), one
// goes at once, one alone takes the next slot, and the eight others gather
// until a call ends and go as one batch, instead of five of them queueing for
// slots 20 to 80 ms away.
func TestBatcherNeverQueuesForSlots(t *testing.T) {
	s := mapstest.NewServer(&mapstest.Options{Latency: 100 * time.Millisecond})
	defer s.Close()
	h := batchHandler(t, s, map[string]int{maps.APIRoute: 50})
	// One call first, so that a batcher that weighs slot waits against
	// the latency it has seen would queue.
	if errs := runRoutes(t, h, 1); errs[0] != nil {
		t.Fatal(errs[0])
	}
	const n = 10
	for i, err := range runRoutes(t, h, n) {
		if err != nil {
			t.Errorf("r%d: %v", i, err)
		}
	}
	if st := s.Stats(); st.PerPath[mapstest.APIRoute] != 1+2 || st.PerPath[mapstest.APIRouteBatch] != 1 || st.BatchItems != n-2 {
		t.Errorf("requests per path %v, %d batch items; want 1+2 single calls and one batch of %d", st.PerPath, st.BatchItems, n-2)
	}
}

func TestGeocodeBatchRefusedFallsBack(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetFault(&mapstest.Fault{Status: 403, Paths: []string{mapstest.APIGeocodeBatch}})
	h := batchHandler(t, s, map[string]int{maps.APIGeocode: -1})
	g := holdSingles(t, s)
	const n = maxCallsInFlight + 4
	done := make(chan []error)
	go func() { done <- runGeocodes(t, h, n, func(int) bool { return false }) }()
	waitFor(t, func() bool {
		return g.held.Load() == maxCallsInFlight && pendingOf(h.kinds[KindGeocode].(*geocodeKind).batch) == n-maxCallsInFlight
	})
	close(g.open)
	for round := range 2 {
		errs := <-done
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d g%d: %v", round, i, err)
			}
		}
		if round == 0 {
			go func() { done <- runGeocodes(t, h, n, func(int) bool { return false }) }()
		}
	}
	st := s.Stats()
	if st.PerPath[mapstest.APIGeocodeBatch] != 1 || st.PerPath[mapstest.APIGeocode] != 2*n {
		t.Errorf("requests per path %v, want 1 refused batch then single calls", st.PerPath)
	}
}

// runRoutes decodes and runs n route requests at once.
func runRoutes(t *testing.T, h *Handler, n int) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		task, err := h.Decode([]byte(fmt.Sprintf(`{"id":"r%d","kind":"route","waypoints":[{"lat":47.6303,"lon":%.4f},{"lat":47.6101,"lon":-122.2015}]}`, i, -122.1387+float64(i)*1e-3)), "m")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			out, err := task.Run(context.Background())
			if err == nil {
				if s, ok := out.Summary.(*RouteSummary); !ok || s.DistanceInMeters <= 0 {
					err = fmt.Errorf("summary %+v", out.Summary)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}
