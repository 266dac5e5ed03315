package jobs

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

func TestReverseGeocodeOptions(t *testing.T) {
	h := NewHandler(nil, nil)
	for _, tc := range []struct {
		fields string
		code   string // "" when valid
		want   maps.ReverseGeocodeQuery
	}{
		{`"resultTypes":["Address","PopulatedPlace"]`, "", maps.ReverseGeocodeQuery{ResultTypes: []string{"Address", "PopulatedPlace"}}},
		{`"resultTypes":["postcode1"],"view":"in"`, "", maps.ReverseGeocodeQuery{ResultTypes: []string{"Postcode1"}, View: "IN"}},
		{`"view":"auto"`, "", maps.ReverseGeocodeQuery{View: "Auto"}},
		{`"resultTypes":null`, "", maps.ReverseGeocodeQuery{}},
		{`"resultTypes":[]`, "InvalidValue", maps.ReverseGeocodeQuery{}},
		{`"resultTypes":["Street"]`, "InvalidValue", maps.ReverseGeocodeQuery{}},
		{`"resultTypes":["Address","address"]`, "InvalidValue", maps.ReverseGeocodeQuery{}},
		{`"resultTypes":"Address"`, "WrongType", maps.ReverseGeocodeQuery{}},
		{`"resultTypes":[7]`, "WrongType", maps.ReverseGeocodeQuery{}},
		{`"view":"USA"`, "InvalidValue", maps.ReverseGeocodeQuery{}},
		{`"view":"U1"`, "InvalidValue", maps.ReverseGeocodeQuery{}},
	} {
		body := `{"id":"r","kind":"reverse-geocode","position":{"lat":47.6,"lon":-122.1},` + tc.fields + `}`
		tk, err := h.Decode([]byte(body), "m")
		if got := worker.CodeOf(err); got != tc.code {
			t.Errorf("%s: code %q (%v), want %q", tc.fields, got, err, tc.code)
			continue
		}
		if tc.code != "" {
			continue
		}
		tc.want.Position = maps.Position{Lat: 47.6, Lon: -122.1}
		if got := tk.(*task).call.(*reverseCall).q; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: query %+v, want %+v", tc.fields, got, tc.want)
		}
	}
}

// Under backlog, reverse geocodes gather into POST /reverseGeocode:batch
// like geocodes; each keeps its own result types, and each gets its own
// answer.
func TestReverseGeocodeBatching(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := batchHandler(t, s, map[string]int{maps.APIReverseGeocode: -1})
	var held atomic.Int64
	open := make(chan struct{})
	s.SetHandlerHook(func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/reverseGeocode") {
			held.Add(1)
			<-open
		}
	})
	defer s.SetHandlerHook(nil)

	const n = 40
	errs := make([]error, n)
	types := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		rt := "Address"
		if i%2 == 1 {
			rt = "PopulatedPlace"
		}
		body := fmt.Sprintf(`{"id":"r%d","kind":"reverse-geocode","position":{"lat":47.6,"lon":%g},"resultTypes":[%q]}`, i, -122.1+float64(i)*1e-3, rt)
		task, err := h.Decode([]byte(body), "m")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			out, err := task.Run(context.Background())
			if err == nil {
				if s, ok := out.Summary.(*GeocodeSummary); !ok || s.Matches != 1 {
					err = fmt.Errorf("summary %+v", out.Summary)
				} else if strings.Contains(string(out.Response), `"type":"`+rt+`"`) {
					types[i] = rt
				}
			}
			errs[i] = err
		})
	}
	waitFor(t, func() bool {
		return held.Load() == maxCallsInFlight && pendingOf(h.kinds[KindReverseGeocode].(*reverseKind).batch) == n-maxCallsInFlight
	})
	close(open)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("r%d: %v", i, err)
		} else if types[i] == "" {
			t.Errorf("r%d: the answer is not of the result type asked for", i)
		}
	}
	st := s.Stats()
	if st.PerPath[mapstest.APIReverseGeocode] != maxCallsInFlight || st.PerPath["reverseGeocodeBatch"] != 1 || st.BatchItems != n-maxCallsInFlight {
		t.Errorf("requests per path %v, %d batch items; want %d single calls and one batch of the %d others",
			st.PerPath, st.BatchItems, maxCallsInFlight, n-maxCallsInFlight)
	}
}
