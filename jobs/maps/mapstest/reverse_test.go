package mapstest

import (
	"net/http"
	"testing"
)

// The reverse batch answers each item as the single call would, and refuses
// an item's bad result type or view inline, as the service does.
func TestReverseGeocodeBatch(t *testing.T) {
	s := newServer(t, nil)
	a := call(t, s, http.MethodPost, "/reverseGeocode:batch?api-version="+APIVersion, bearer(s), map[string]any{
		"batchItems": []map[string]any{
			{"coordinates": []float64{-122.128275, 47.639429}, "resultTypes": []string{"PopulatedPlace"}, "optionalId": "0"},
			{"coordinates": []float64{-122.34, 47.61}, "resultTypes": []string{"Street"}, "optionalId": "1"},
			{"coordinates": []float64{-122.34, 47.61}, "view": "USA", "optionalId": "2"},
			{"coordinates": []float64{-122.34, 147.61}, "optionalId": "3"},
		},
	})
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	if ok, total := dig(m, "summary", "successfulRequests"), dig(m, "summary", "totalRequests"); ok != 1.0 || total != 4.0 {
		t.Errorf("summary %v of %v, want 1 of 4", ok, total)
	}
	if typ := dig(m, "batchItems", 0, "features", 0, "properties", "type"); typ != "PopulatedPlace" {
		t.Errorf("item 0 type %v, want PopulatedPlace", typ)
	}
	for i := 1; i < 4; i++ {
		if code := dig(m, "batchItems", i, "error", "code"); code != codeBadRequest {
			t.Errorf("item %d error code %v, want %s", i, code, codeBadRequest)
		}
	}
	if a := call(t, s, http.MethodGet, "/reverseGeocode?api-version="+APIVersion+"&coordinates=-122.1,47.6&view=XYZ", bearer(s), nil); a.status != http.StatusBadRequest {
		t.Errorf("view XYZ: status %d, want 400", a.status)
	}
}
