package jobs

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

func batchHandler(t *testing.T, s *mapstest.Server) *Handler {
	t.Helper()
	c, err := maps.NewClient(s.URL, s.Credential(), &maps.ClientOptions{
		ClientID:      s.ClientID,
		ClientOptions: azcore.ClientOptions{Transport: s.Client()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(c, &HandlerOptions{Batch: true, BatchWindow: 20 * time.Millisecond})
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

func TestGeocodeBatching(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := batchHandler(t, s)
	const n = 60
	errs := runGeocodes(t, h, n, func(i int) bool { return i == 7 })
	for i, err := range errs {
		switch {
		case i == 7:
			if worker.ClassOf(err) != worker.ClassRejected {
				t.Errorf("item error: %v (class %v), want rejected", err, worker.ClassOf(err))
			}
		case err != nil:
			t.Errorf("g%d: %v", i, err)
		}
	}
	st := s.Stats()
	t.Logf("per path %v", st.PerPath)
	if st.PerPath[mapstest.APIGeocode] != 0 || st.PerPath[mapstest.APIGeocodeBatch] == 0 || st.PerPath[mapstest.APIGeocodeBatch] > 3 {
		t.Errorf("requests per path %v, want a few batches only", st.PerPath)
	}
}

func TestGeocodeBatchRefusedFallsBack(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	s.SetFault(&mapstest.Fault{Status: 403, Paths: []string{mapstest.APIGeocodeBatch}})
	h := batchHandler(t, s)
	for round := range 2 {
		for i, err := range runGeocodes(t, h, 10, func(int) bool { return false }) {
			if err != nil {
				t.Errorf("round %d g%d: %v", round, i, err)
			}
		}
	}
	st := s.Stats()
	if st.PerPath[mapstest.APIGeocodeBatch] != 1 || st.PerPath[mapstest.APIGeocode] != 20 {
		t.Errorf("requests per path %v, want 1 refused batch then single calls", st.PerPath)
	}
}

func TestRouteBatching(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := batchHandler(t, s)
	const n = 40
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
	for i, err := range errs {
		if err != nil {
			t.Errorf("r%d: %v", i, err)
		}
	}
	if st := s.Stats(); st.PerPath[mapstest.APIRoute] != 0 || st.PerPath[mapstest.APIRouteBatch] == 0 || st.PerPath[mapstest.APIRouteBatch] > 3 {
		t.Errorf("requests per path %v, want a few batches only", st.PerPath)
	}
}
