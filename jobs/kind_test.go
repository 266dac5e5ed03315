package jobs

import (
	"encoding/json"
	"testing"
)

func TestDescribeSummary(t *testing.T) {
	cases := []struct {
		kind, summary, want string
	}{
		{KindGeocode, `{"matches":1,"lat":47.630358,"lon":-122.138681,"formattedAddress":"15127 NE 24th St, Redmond, WA 98052","confidence":"High"}`,
			"47.630358, -122.138681  15127 NE 24th St, Redmond, WA 98052  [High]"},
		{KindReverseGeocode, `{"matches":1,"lat":0,"lon":0}`, "0.000000, 0.000000"},
		{KindGeocode, `{"matches":0}`, "no match"},
		{KindRoute, `{"distanceInMeters":947,"durationInSeconds":266,"durationTrafficInSeconds":295}`, "0.9 km, 4m26s (4m55s with traffic)"},
		{KindRoute, `{"distanceInMeters":6500,"durationInSeconds":487}`, "6.5 km, 8m7s"},
		{"teleport", `{"x":1}`, `{"x":1}`},
	}
	for _, c := range cases {
		if got := DescribeSummary(c.kind, json.RawMessage(c.summary)); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.kind, c.summary, got, c.want)
		}
	}
}
