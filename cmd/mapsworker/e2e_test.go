package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// TestEndToEnd runs the built binary as the WebJob runs it, against Azurite
// and the Maps emulator through the real SDK clients and the real
// ManagedIdentityCredential, with every kind in both encodings.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	reqs := map[string]string{
		"geocode/g-raw":        `{"id":"g-raw","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA","top":1}`,
		"geocode/g-struct":     `{"id":"g-struct","kind":"geocode","addressLine":"15127 NE 24th Street","locality":"Redmond","adminDistrict":"WA","countryRegion":"US"}`,
		"reverse-geocode/r-1":  `{"id":"r-1","kind":"reverse-geocode","position":{"lat":47.6303,"lon":-122.1387}}`,
		"route/t-1":            `{"id":"t-1","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}],"travelMode":"driving","optimizeRoute":"fastestWithoutTraffic","departAt":"2026-12-01T08:00:00Z"}`,
		"route/t-truck":        `{"id":"t-truck","kind":"route","waypoints":[{"lat":47.6,"lon":-122.3},{"lat":47.2,"lon":-122.4},{"lat":46.8,"lon":-121.7}],"travelMode":"truck"}`,
		"geocode/bad-top":      `{"id":"bad-top","kind":"geocode","query":"x","top":99}`,
		"geocode/rejected-400": `{"id":"rejected-400","kind":"geocode","query":"1 Main St #reject"}`,
	}
	for name, body := range reqs {
		text := body
		if strings.HasSuffix(name, "1") || strings.Contains(name, "struct") {
			text = base64.StdEncoding.EncodeToString([]byte(body)) // as Functions producers write
		}
		te.send(text)
	}
	te.send("not json, not base64 !!") // no usable id: poisoned with no result
	p := te.start(nil, "run")

	waitFor(t, 30*time.Second, "all results", func() bool {
		for name := range reqs {
			kind, id, _ := strings.Cut(name, "/")
			if te.result(kind, id) == nil {
				return false
			}
		}
		return te.queueDepth() == 0
	})

	for name, body := range reqs {
		kind, id, _ := strings.Cut(name, "/")
		r := te.result(kind, id)
		if r.ID != id || r.Kind != kind || r.CompletedAt.IsZero() || r.DequeueCount != 1 {
			t.Errorf("%s: result header = %+v", name, r)
		}
		var sent, got any
		json.Unmarshal([]byte(body), &sent)
		json.Unmarshal(r.Request, &got)
		if b1, _ := json.Marshal(sent); string(b1) != mustJSON(got) {
			t.Errorf("%s: request in result = %s, want %s", name, r.Request, body)
		}
		switch id {
		case "bad-top":
			if r.Status != "failed" || r.Error == nil || r.Error.Class != "invalid-request" || !strings.Contains(r.Error.Message, "top") {
				t.Errorf("%s: want failed invalid-request naming top, got %+v %+v", name, r.Status, r.Error)
			}
		case "rejected-400":
			if r.Status != "failed" || r.Error == nil || r.Error.Class != "maps-rejected" || r.Error.Code != "400 BadRequest" {
				t.Errorf("%s: want failed maps-rejected 400, got %+v %+v", name, r.Status, r.Error)
			}
		default:
			if r.Status != "succeeded" || r.Error != nil || len(r.Response) == 0 {
				t.Errorf("%s: want succeeded with response, got %s %+v", name, r.Status, r.Error)
			}
			sum := mustJSON(r.Summary)
			want := "lat"
			if kind == "route" {
				want = "distanceInMeters"
			}
			if !strings.Contains(sum, want) {
				t.Errorf("%s: summary %s lacks %s", name, sum, want)
			}
			var fc struct{ Type string }
			if json.Unmarshal(r.Response, &fc); fc.Type != "FeatureCollection" {
				t.Errorf("%s: response is not the Maps FeatureCollection: %.200s", name, r.Response)
			}
		}
	}

	env := te.poisoned()
	if len(env) != 3 {
		t.Fatalf("poison queue holds %d envelopes, want 3: %+v", len(env), env)
	}
	byClass := map[string]int{}
	for _, e := range env {
		byClass[e.Error.Class]++
		if e.MessageID == "" || e.InsertedAt.IsZero() || e.PoisonedAt.IsZero() || e.DequeueCount != 1 || e.Error.Message == "" {
			t.Errorf("incomplete envelope: %+v", e)
		}
		if e.Message == "not json, not base64 !!" && e.Error.Code != "NotJSONOrBase64" {
			t.Errorf("garbage envelope code = %q", e.Error.Code)
		}
	}
	if byClass["invalid-request"] != 2 || byClass["maps-rejected"] != 1 {
		t.Errorf("poison classes = %v", byClass)
	}
	// 5 valid requests and the one rejected by Maps; none for the invalid ones.
	if n := te.mapsWork(); n != 6 {
		t.Errorf("Maps worked on %d requests, want 6", n)
	}

	p.stop(t, 30*time.Second)
	if p.err != nil {
		t.Fatalf("worker exit: %v\n%s", p.err, p.out.String())
	}
	if n := lines(p.out.String()); n > 10 {
		t.Errorf("worker logged %d lines at info for a few messages:\n%s", n, p.out.String())
	}
}

// TestRedeliveredIDCallsMapsOnce delivers a message whose result exists (as
// after a crash between the result write and the delete): the redelivery is
// acknowledged without calling Maps again, and the result is not rewritten.
func TestRedeliveredIDCallsMapsOnce(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	body := `{"id":"same-1","kind":"geocode","query":"1 Main St"}`
	te.send(body)
	p := te.start(nil, "run")
	waitFor(t, 20*time.Second, "first result", func() bool { return te.result("geocode", "same-1") != nil })
	p.stop(t, 30*time.Second)
	first := te.result("geocode", "same-1").CompletedAt

	// The same message again, delivered once already by a consumer that
	// then died: it comes back with dequeue count 2.
	te.send(body)
	resp, err := te.storage.Requests.Client().DequeueMessages(context.Background(),
		&azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(1)), VisibilityTimeout: to.Ptr(int32(1))})
	if err != nil || len(resp.Messages) != 1 {
		t.Fatalf("dequeue: %v %d", err, len(resp.Messages))
	}
	time.Sleep(1100 * time.Millisecond)

	p = te.start(map[string]string{"MAPS_LOG_LEVEL": "debug"}, "run")
	waitFor(t, 20*time.Second, "queue drained", func() bool { return te.queueDepth() == 0 })
	p.stop(t, 30*time.Second)
	if n := te.mapsWork(); n != 1 {
		t.Errorf("Maps worked on %d requests, want 1", n)
	}
	if !strings.Contains(p.out.String(), "outcome=duplicate") {
		t.Errorf("redelivery not acknowledged as a duplicate:\n%s", p.out.String())
	}
	if got := te.result("geocode", "same-1").CompletedAt; !got.Equal(first) {
		t.Errorf("result rewritten: %v then %v", first, got)
	}
	if env := te.poisoned(); len(env) != 0 {
		t.Errorf("poisoned: %+v", env)
	}
}

// TestWrongClientIDIsNotTheMessagesFault points the worker at the emulator
// with a wrong Maps client id: Maps answers 401, and the message is released
// and kept, not poisoned; with the right id it then succeeds.
func TestWrongClientIDIsNotTheMessagesFault(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.send(`{"id":"auth-1","kind":"geocode","query":"1 Main St"}`)
	p := te.start(map[string]string{"AZURE_MAPS_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}, "run")
	waitFor(t, 20*time.Second, "a 401 from the emulator", func() bool { return te.emu.Stats().Status4xx > 0 })
	p.stop(t, 30*time.Second)
	if env := te.poisoned(); len(env) != 0 {
		t.Fatalf("a 401 poisoned the message: %+v", env)
	}
	if !strings.Contains(p.out.String(), "Unauthorized") {
		t.Errorf("the 401 was not reported:\n%s", p.out.String())
	}
	p = te.start(nil, "run")
	waitFor(t, 30*time.Second, "the result with the right client id", func() bool { return te.result("geocode", "auth-1") != nil })
	p.stop(t, 30*time.Second)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
