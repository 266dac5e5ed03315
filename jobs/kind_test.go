package jobs

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
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

// Every registered kind has every part, and the parts fit together: its
// example words make a request that decodes as that kind, runs against the
// emulator, and has a summary that describe reads; its probe is answered.
// A kind added to the table without one of them fails here.
func TestEveryKindIsComplete(t *testing.T) {
	s := mapstest.NewServer(nil)
	defer s.Close()
	h := NewHandler(emulatorClient(t, s, nil), nil)
	if len(kinds) != len(h.kinds) || len(kinds) != len(cliKinds) {
		t.Fatalf("%d kinds registered, %d built: two share a name", len(kinds), len(h.kinds))
	}
	for _, build := range kinds {
		name := build(nil).name()
		t.Run(name, func(t *testing.T) {
			if !ValidID(name) {
				t.Fatalf("name %q cannot name a results folder", name)
			}
			words := cliKinds[name].example()
			if len(words) == 0 {
				t.Fatal("no example words")
			}
			body, err := RequestFromArgs(name, words, "contract", ArgOptions{})
			if err != nil {
				t.Fatalf("RequestFromArgs(%q): %v", words, err)
			}
			task, err := h.Decode(body, "m")
			if err != nil {
				t.Fatalf("its example %s does not decode: %v", body, err)
			}
			if task.Kind() != name || task.ID() != "contract" {
				t.Fatalf("decoded as %s/%s", task.Kind(), task.ID())
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := task.Run(ctx)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if out.Summary == nil || len(out.Response) == 0 {
				t.Fatalf("output %+v has no summary or response", out)
			}
			summary, err := json.Marshal(out.Summary)
			if err != nil {
				t.Fatal(err)
			}
			line, err := cliKinds[name].describe(summary)
			if err != nil || line == "" || line == string(summary) {
				t.Errorf("describe(%s) = %q, %v", summary, line, err)
			}
			if err := task.(worker.Prober).Probe(ctx); err != nil {
				t.Errorf("probe: %v", err)
			}
			if _, err := h.Decode([]byte(`{"kind":"`+name+`"}`), "m"); worker.ClassOf(err) != worker.ClassInvalid {
				t.Errorf("a %s request with nothing but its kind: %v, want it invalid", name, err)
			}
		})
	}
}

// Fields set on the command line join the request, JSON values as they are
// and anything else as a string; kind and id are not fields.
func TestRequestFromArgsFields(t *testing.T) {
	for _, tc := range []struct {
		fields map[string]string
		want   string // the request; "" for an error
	}{
		{map[string]string{"top": "3", "view": "US"}, `{"id":"f","kind":"geocode","query":"x","top":3,"view":"US"}`},
		{map[string]string{"language": `"de-DE"`}, `{"id":"f","kind":"geocode","language":"de-DE","query":"x"}`},
		{map[string]string{"kind": "route"}, ""},
		{map[string]string{"id": "g"}, ""},
		{map[string]string{"": "1"}, ""},
	} {
		body, err := RequestFromArgs(KindGeocode, []string{"x"}, "f", ArgOptions{Fields: tc.fields})
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%v: made %s, want an error", tc.fields, body)
		case tc.want != "" && err != nil:
			t.Errorf("%v: %v", tc.fields, err)
		case tc.want != "" && string(body) != tc.want:
			t.Errorf("%v: made %s, want %s", tc.fields, body, tc.want)
		}
	}
}
