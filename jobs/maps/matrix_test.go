package maps

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/jobs/maps/catalog"
	"mapsworker/jobs/maps/mapstest"
)

func matrixClient(t *testing.T) (*Client, *mapstest.Server) {
	t.Helper()
	s := mapstest.NewServer(nil)
	t.Cleanup(s.Close)
	c, err := NewClient(s.URL, s.Credential(), &ClientOptions{
		ClientID:          s.ClientID,
		ClientOptions:     azcore.ClientOptions{Transport: s.Client()},
		DisableRateLimits: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

var matrixTwoByTwo = MatrixRequest{
	Origins:      []Position{{Lat: 47.6303, Lon: -122.1387}, {Lat: 47.6101, Lon: -122.2015}},
	Destinations: []Position{{Lat: 47.6740, Lon: -122.1215}, {Lat: 47.6062, Lon: -122.3321}},
	TravelMode:   "truck",
	RouteOptions: RouteOptions{DepartAt: "2026-12-01T08:00:00-08:00", Avoid: []string{"unpavedRoads"}},
}

// The body is the spec's: two MultiPoint features, [lon, lat] each, the
// options beside them under their names.
func TestMatrixBody(t *testing.T) {
	b, err := matrixTwoByTwo.Body()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"FeatureCollection","features":[` +
		`{"type":"Feature","geometry":{"type":"MultiPoint","coordinates":[[-122.1387,47.6303],[-122.2015,47.6101]]},"properties":{"pointType":"origins"}},` +
		`{"type":"Feature","geometry":{"type":"MultiPoint","coordinates":[[-122.1215,47.674],[-122.3321,47.6062]]},"properties":{"pointType":"destinations"}}],` +
		`"travelMode":"truck","departAt":"2026-12-01T08:00:00-08:00","avoid":["unpavedRoads"]}`
	if string(b) != want {
		t.Errorf("body\n%s\nwant\n%s", b, want)
	}
	if n := matrixTwoByTwo.Cells(); n != 4 {
		t.Errorf("cells %d", n)
	}
}

func TestRouteMatrixSync(t *testing.T) {
	c, s := matrixClient(t)
	resp, err := c.RouteMatrix(context.Background(), matrixTwoByTwo)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Type       string
		Properties struct {
			Matrix  []struct{ StatusCode int }
			Summary struct{ SuccessfulCount, TotalCount int }
		}
	}
	if err := json.Unmarshal(resp.Body, &m); err != nil || m.Type != "Feature" || m.Properties.Summary.TotalCount != 4 || len(m.Properties.Matrix) != 4 {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	if resp.RequestID == "" {
		t.Error("no request id")
	}
	if n := s.Stats().PerPath[catalog.RouteMatrix]; n != 1 {
		t.Errorf("%d sync matrix calls", n)
	}
	// Shortest is the async API's only: the emulator refuses it as the
	// service does, and the client says so as an *azcore.ResponseError.
	r := matrixTwoByTwo
	r.OptimizeRoute = "shortest"
	_, err = c.RouteMatrix(context.Background(), r)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 {
		t.Errorf("shortest, sync: %v", err)
	}
}

// Submit, poll at the interval the service asks for, fetch: the result is
// the matrix, with its kind.
func TestRouteMatrixAsync(t *testing.T) {
	c, s := matrixClient(t)
	s.SetOperationTiming(400*time.Millisecond, 50*time.Millisecond)
	ctx := context.Background()
	op, err := c.RouteMatrixSubmit(ctx, matrixTwoByTwo)
	if err != nil {
		t.Fatal(err)
	}
	if op.RetryAfter != 50*time.Millisecond || op.ID == "" || !strings.HasPrefix(op.Location, s.URL+"/route/operations/"+op.ID+"?") {
		t.Fatalf("operation %+v", op)
	}
	var st *OperationStatus
	polls := 0
	for {
		if st, err = c.RouteOperation(ctx, op.Location); err != nil {
			t.Fatal(err)
		}
		polls++
		if st.Done() || st.Failed() {
			break
		}
		if st.RetryAfter != 50*time.Millisecond {
			t.Fatalf("status %q asks to wait %v", st.Status, st.RetryAfter)
		}
		time.Sleep(st.RetryAfter)
	}
	if !st.Done() || st.Kind != "RouteMatrix" || polls < 3 {
		t.Fatalf("status %+v after %d polls", st, polls)
	}
	resp, err := c.RouteOperationResult(ctx, st.ResultURL())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Body), `"kind":"RouteMatrix"`) || !strings.Contains(string(resp.Body), `"totalCount":4`) {
		t.Errorf("result %s", resp.Body)
	}
	// Gone after the service's retention: 404.
	s.ExpireOperations()
	if _, err := c.RouteOperation(ctx, op.Location); !IsNotFound(err) {
		t.Errorf("expired operation: %v", err)
	}
	if _, err := c.RouteOperationResult(ctx, st.ResultURL()); !IsNotFound(err) {
		t.Errorf("expired result: %v", err)
	}
	if n := s.OperationsAccepted(); n != 1 {
		t.Errorf("%d submissions", n)
	}
}

// The credential goes to the client's own service only: an operation URL
// on a foreign host, or over http, is asked of the client's endpoint; a
// geography of the same service is asked where the service said. The
// api-version is always the client's.
func TestOperationURL(t *testing.T) {
	c, err := NewClientWithKey("https://atlas.microsoft.com", &fakeKeys{cur: "k"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const id = "bc3f9365-3ee0-4564-aa27-825016325557"
	tests := []struct {
		raw    string
		result bool
		want   string
		bad    bool
	}{
		{"https://atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false, "https://atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false},
		{"https://us.atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false, "https://us.atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false},
		{"https://evil.example/route/operations/" + id, false, "https://atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false},
		{"https://atlas.microsoft.com.evil.example/route/operations/" + id, false, "https://atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false},
		{"http://atlas.microsoft.com/route/operations/" + id, false, "https://atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false},
		{"https://atlas.microsoft.com/route/operations/" + id + "/result?api-version=2024-07-01-preview", true, "https://atlas.microsoft.com/route/operations/" + id + "/result?api-version=2025-01-01", false},
		{"https://user:pw@atlas.microsoft.com/route/operations/" + id + "#x", false, "https://atlas.microsoft.com/route/operations/" + id + "?api-version=2025-01-01", false},
		{"/route/operations/" + id, false, "", true},
		{"https://atlas.microsoft.com/route/operations/", false, "", true},
		{"https://atlas.microsoft.com/route/operations/a/b", false, "", true},
		{"https://atlas.microsoft.com/route/operations/" + id, true, "", true},
	}
	for _, tt := range tests {
		got, gotID, err := c.operationURL(tt.raw, tt.result)
		switch {
		case tt.bad && err == nil:
			t.Errorf("%s: %s, want an error", tt.raw, got)
		case !tt.bad && (err != nil || got != tt.want || gotID != id):
			t.Errorf("%s: %s %s %v, want %s", tt.raw, got, gotID, err, tt.want)
		}
	}
}

func TestOperationStatusWords(t *testing.T) {
	for status, want := range map[string][2]bool{
		"NotStarted": {false, false}, "Running": {false, false}, "Completed": {true, false},
		"Succeeded": {true, false}, "Failed": {false, true}, "Canceled": {false, true}, "": {false, false},
	} {
		s := OperationStatus{Status: status}
		if s.Done() != want[0] || s.Failed() != want[1] {
			t.Errorf("%q: done %v failed %v", status, s.Done(), s.Failed())
		}
	}
	s := OperationStatus{location: "https://atlas.microsoft.com/route/operations/x?api-version=2025-01-01"}
	if got := s.ResultURL(); got != "https://atlas.microsoft.com/route/operations/x/result?api-version=2025-01-01" {
		t.Errorf("result URL without resultUrl: %s", got)
	}
}
