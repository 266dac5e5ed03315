package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// ran is the outcome of one operator command run as the built binary.
type ran struct {
	out, err string
	code     int
}

func (r ran) String() string {
	return "exit " + itoa(r.code) + "\n--- stdout:\n" + r.out + "--- stderr:\n" + r.err
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// cmd runs mapsworker with the test settings, stdin, and args, and returns
// its stdout, stderr and exit status.
func (te *testEnv) cmd(stdin string, args ...string) ran {
	te.t.Helper()
	c := exec.Command(binary(te.t), args...)
	c.Env = te.environ()
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := ran{out: out.String(), err: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		te.t.Fatalf("mapsworker %v: %v", args, err)
	}
	te.t.Logf("$ mapsworker %s\n%s%s", strings.Join(args, " "), r.out, r.err)
	return r
}

// drainRequests dequeues every visible request message and returns the texts.
func (te *testEnv) drainRequests() []string {
	te.t.Helper()
	var out []string
	for _, m := range te.dequeueAll(te.storage.Requests.Client()) {
		out = append(out, *m.MessageText)
	}
	return out
}

// poisonDepth is the approximate number of messages in the poison queue.
func (te *testEnv) poisonDepth() int64 {
	te.t.Helper()
	return te.depth(te.storage.Poison.Client())
}

// visiblePoison is the number of poison messages a peek sees (up to 32).
func (te *testEnv) visiblePoison() int {
	te.t.Helper()
	resp, err := te.storage.Poison.Client().PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		te.t.Fatal(err)
	}
	return len(resp.Messages)
}

// sendPoison puts an envelope on the poison queue directly.
func (te *testEnv) sendPoison(body, class, code, msg string) {
	te.t.Helper()
	env, _ := json.Marshal(worker.Envelope{
		Message: base64.StdEncoding.EncodeToString([]byte(body)), MessageID: "00000000-0000-0000-0000-" + randomHex(6),
		InsertedAt: time.Now().UTC().Add(-time.Hour), DequeueCount: 5, PoisonedAt: time.Now().UTC(),
		Error: worker.ErrorInfo{Class: class, Code: code, Message: msg},
	})
	if err := te.storage.Poison.Send(context.Background(), string(env)); err != nil {
		te.t.Fatal(err)
	}
}

// decodeText decodes a queue message text (base64 or raw) to JSON.
func decodeText(t *testing.T, text string) map[string]any {
	t.Helper()
	body, err := worker.DecodeBody(text)
	if err != nil {
		t.Fatalf("message %q: %v", text, err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("message %q: %v", body, err)
	}
	return m
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestEnqueueFromFlags sends one request of each kind from the command line
// (flags may follow the arguments; a southern or western first coordinate
// is not a flag) and reads back what reached the queue.
func TestEnqueueFromFlags(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	cases := []struct {
		args []string
		want string // the request, as JSON, without the id
		id   string // expected printed id; "" for a queue message id
	}{
		{[]string{"geocode", "1 Main St"}, `{"kind":"geocode","query":"1 Main St"}`, ""},
		{[]string{"geocode", "1 Main St", "--top", "3", "--id", "order-42"}, `{"id":"order-42","kind":"geocode","query":"1 Main St","top":3}`, "order-42"},
		{[]string{"reverse-geocode", "47.6,-122.1"}, `{"kind":"reverse-geocode","position":{"lat":47.6,"lon":-122.1}}`, ""},
		{[]string{"reverse-geocode", "-33.8568,151.2153", "--id", "sydney"}, `{"id":"sydney","kind":"reverse-geocode","position":{"lat":-33.8568,"lon":151.2153}}`, "sydney"},
		{[]string{"route", "47.6,-122.1", "47.61,-122.2", "--mode", "truck"}, `{"kind":"route","travelMode":"truck","waypoints":[{"lat":47.6,"lon":-122.1},{"lat":47.61,"lon":-122.2}]}`, ""},
		// Any option of any kind, a JSON value or else a string.
		{[]string{"route", "47.6,-122.1", "47.61,-122.2", "--mode", "truck", "--set", `avoid=["tollRoads","tunnels"]`, "--set", "maxRouteCount=2", "--set", "language=de-DE"},
			`{"kind":"route","travelMode":"truck","avoid":["tollRoads","tunnels"],"maxRouteCount":2,"language":"de-DE","waypoints":[{"lat":47.6,"lon":-122.1},{"lat":47.61,"lon":-122.2}]}`, ""},
		{[]string{"--set", `resultTypes=["Address"]`, "reverse-geocode", "47.6,-122.1"}, `{"kind":"reverse-geocode","resultTypes":["Address"],"position":{"lat":47.6,"lon":-122.1}}`, ""},
	}
	for _, c := range cases {
		r := te.cmd("", append([]string{"enqueue"}, c.args...)...)
		if r.code != 0 {
			t.Fatalf("enqueue %q: %s", c.args, r)
		}
		id := strings.TrimSpace(r.out)
		if c.id != "" && id != c.id || c.id == "" && !guidRE.MatchString(id) {
			t.Errorf("enqueue %q printed %q, want %q or a queue message id", c.args, r.out, c.id)
		}
		texts := te.drainRequests()
		if len(texts) != 1 {
			t.Fatalf("enqueue %q: %d messages on the queue", c.args, len(texts))
		}
		if got := mustJSON(decodeText(t, texts[0])); got != mustJSON(decodeText(t, c.want)) {
			t.Errorf("enqueue %q sent %s, want %s", c.args, got, c.want)
		}
	}

	// Mistakes on the command line: usage error, nothing sent.
	for _, args := range [][]string{
		{"enqueue", "geocode"},
		{"enqueue", "teleport", "x"},
		{"enqueue", "reverse-geocode", "47.6"},
		{"enqueue", "route", "47.6,-122.1"},
		{"enqueue", "reverse-geocode", "95,10"}, // valid syntax, invalid request
		{"enqueue", "geocode", "x", "--set", "top"},
		{"enqueue", "geocode", "x", "--set", "kind=route"},
		{"enqueue", "geocode", "x", "--set", "id=a"},
		{"enqueue", "route", "47.6,-122.1", "47.61,-122.2", "--set", `avoid=["tunnels"]`}, // tunnels: trucks only
		{"enqueue", "route", "47.6,-122.1", "47.61,-122.2", "--set", "maxRouteCount=nine"},
	} {
		r := te.cmd("", args...)
		if r.code == 0 || r.out != "" || r.err == "" {
			t.Errorf("%q: want an error and no id: %s", args, r)
		}
	}
	if texts := te.drainRequests(); len(texts) != 0 {
		t.Errorf("rejected requests sent: %q", texts)
	}
}

// TestEnqueueFileAndStdin sends many requests from a JSON-lines file and from
// stdin, skipping blank and # lines, and prints one id per request.
func TestEnqueueFileAndStdin(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	file := filepath.Join(t.TempDir(), "requests.jsonl")
	os.WriteFile(file, []byte(`# morning batch
{"id":"f-1","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA","top":1}

{"id":"f-2","kind":"reverse-geocode","position":{"lat":47.6303,"lon":-122.1387}}
{"id":"f-3","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}]}
{"kind":"geocode","addressLine":"1 Main St","locality":"Redmond"}
`), 0o644)
	r := te.cmd("", "enqueue", "--file", file)
	if r.code != 0 {
		t.Fatal(r)
	}
	ids := strings.Fields(r.out)
	if len(ids) != 4 || ids[0] != "f-1" || ids[1] != "f-2" || ids[2] != "f-3" || !guidRE.MatchString(ids[3]) {
		t.Errorf("ids = %q, want f-1 f-2 f-3 <message id> in input order", ids)
	}

	var in strings.Builder
	for i := range 40 {
		in.WriteString(`{"id":"s-` + itoa(i) + `","kind":"geocode","query":"` + itoa(i) + ` Main St"}` + "\n")
	}
	r = te.cmd(in.String(), "enqueue", "--file", "-")
	if r.code != 0 {
		t.Fatal(r)
	}
	ids = strings.Fields(r.out)
	if len(ids) != 40 || ids[0] != "s-0" || ids[39] != "s-39" {
		t.Errorf("stdin: %d ids %q", len(ids), ids)
	}
	if r.err != "" {
		t.Errorf("stderr not empty when not a terminal (no progress bar): %q", r.err)
	}
	texts := te.drainRequests()
	if len(texts) != 44 {
		t.Fatalf("%d messages on the queue, want 44", len(texts))
	}
	seen := map[string]bool{}
	for _, s := range texts {
		seen[requestID(must(worker.DecodeBody(s)), "-")] = true
	}
	for _, id := range []string{"f-1", "f-2", "f-3", "s-0", "s-17", "s-39"} {
		if !seen[id] {
			t.Errorf("%s not on the queue", id)
		}
	}

	if r := te.cmd("", "enqueue", "--file", file, "geocode", "x"); r.code != 2 {
		t.Errorf("--file plus a request: %s", r)
	}
	if r := te.cmd("", "enqueue", "--file", filepath.Join(t.TempDir(), "missing.jsonl")); r.code != 1 || !strings.Contains(r.err, "missing.jsonl") {
		t.Errorf("missing file: %s", r)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestEnqueueInvalidLinesSendNothing: a file with bad lines is reported line
// by line, as the worker would judge each, and nothing at all is sent.
func TestEnqueueInvalidLinesSendNothing(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	input := `{"id":"ok-1","kind":"geocode","query":"1 Main St"}
{"id":"bad-top","kind":"geocode","query":"x","top":99}
{"id":"ok-2","kind":"reverse-geocode","position":{"lat":47.6,"lon":-122.1}}
this is not json
{"id":"bad-lat","kind":"route","waypoints":[{"lat":91,"lon":0},{"lat":47.6,"lon":-122.1}]}
{"id":"both","kind":"geocode","query":"1 Main St","locality":"Redmond"}
`
	file := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(file, []byte(input), 0o644)
	for _, via := range []string{"file", "stdin"} {
		var r ran
		if via == "file" {
			r = te.cmd("", "enqueue", "--file", file)
		} else {
			r = te.cmd(input, "enqueue", "--file", "-")
		}
		if r.code != 1 || r.out != "" {
			t.Errorf("%s: want exit 1 and no ids: %s", via, r)
		}
		for _, n := range []string{"line 2: ", "line 4: ", "line 5: ", "line 6: "} {
			if !strings.Contains(r.err, n) {
				t.Errorf("%s: %q not reported: %s", via, n, r.err)
			}
		}
		for _, n := range []string{"line 1:", "line 3:"} {
			if strings.Contains(r.err, n) {
				t.Errorf("%s: valid %q reported: %s", via, n, r.err)
			}
		}
		if !strings.Contains(r.err, "4 of 6 requests are invalid; nothing was sent") {
			t.Errorf("%s: no total: %s", via, r.err)
		}
		if !strings.Contains(r.err, "top") || !strings.Contains(r.err, "lat") {
			t.Errorf("%s: reasons do not name the fields: %s", via, r.err)
		}
		if d := te.queueDepth(); d != 0 {
			t.Fatalf("%s: queue depth %d: something was sent", via, d)
		}
	}
}

// TestEnqueueEncoding: base64 by default (as Functions producers write), raw
// on request; the worker accepts both.
func TestEnqueueEncoding(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	want := `{"id":"enc-1","kind":"geocode","query":"1 Main St"}`
	if r := te.cmd("", "enqueue", "geocode", "1 Main St", "--id", "enc-1"); r.code != 0 {
		t.Fatal(r)
	}
	texts := te.drainRequests()
	if len(texts) != 1 || texts[0] != base64.StdEncoding.EncodeToString([]byte(want)) {
		t.Errorf("default encoding: queue text %q, want base64 of %s", texts, want)
	}
	if r := te.cmd("", "enqueue", "--encoding", "raw", "geocode", "1 Main St", "--id", "enc-1"); r.code != 0 {
		t.Fatal(r)
	}
	texts = te.drainRequests()
	if len(texts) != 1 || texts[0] != want {
		t.Errorf("raw encoding: queue text %q, want %s", texts, want)
	}
	if r := te.cmd("", "enqueue", "--encoding", "hex", "geocode", "x"); r.code != 2 || !strings.Contains(r.err, "--encoding must be base64 or raw") {
		t.Errorf("bad encoding: %s", r)
	}
}

// TestResultCommand shows a result readably, the whole document with --json,
// a clear message and exit 4 when there is none, and why with exit 1 when
// the request failed.
func TestResultCommand(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.send(`{"id":"order-42","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA","top":1}`,
		`{"id":"trip-9","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}]}`,
		`{"id":"bad-top","kind":"geocode","query":"x","top":99}`)
	p := te.start(nil, "run")
	waitFor(t, 30*time.Second, "results", func() bool {
		return te.result("geocode", "order-42") != nil && te.result("route", "trip-9") != nil && te.result("geocode", "bad-top") != nil
	})
	stopWorker(t, p)

	r := te.cmd("", "result", "geocode", "order-42")
	if r.code != 0 || !strings.HasPrefix(r.out, "geocode order-42: succeeded at ") || !strings.Contains(r.out, "(delivery 1)") ||
		!regexp.MustCompile(`\n  47\.\d+, -122\.\d+  \S`).MatchString(r.out) {
		t.Errorf("geocode result: %s", r)
	}
	r = te.cmd("", "result", "route", "trip-9")
	if r.code != 0 || !regexp.MustCompile(`route trip-9: succeeded .*\n  \d+\.\d km, \w+`).MatchString(r.out) {
		t.Errorf("route result: %s", r)
	}

	for _, args := range [][]string{{"result", "--json", "geocode", "order-42"}, {"result", "geocode", "order-42", "--json"}} {
		r = te.cmd("", args...)
		var doc map[string]json.RawMessage
		if r.code != 0 || json.Unmarshal([]byte(r.out), &doc) != nil {
			t.Fatalf("%q: %s", args, r)
		}
		for _, k := range []string{"id", "kind", "status", "completedAt", "dequeueCount", "request", "summary", "response"} {
			if _, ok := doc[k]; !ok {
				t.Errorf("%q: document lacks %q", args, k)
			}
		}
		if string(doc["status"]) != `"succeeded"` || !strings.Contains(string(doc["response"]), "FeatureCollection") {
			t.Errorf("%q: %s", args, r.out)
		}
	}

	r = te.cmd("", "result", "geocode", "no-such-id")
	if r.code != 4 || r.out != "" || !strings.Contains(r.err, "no result for geocode no-such-id yet") {
		t.Errorf("missing result: %s", r)
	}
	r = te.cmd("", "result", "route", "order-42") // right id, wrong kind
	if r.code != 4 {
		t.Errorf("wrong kind: %s", r)
	}

	r = te.cmd("", "result", "geocode", "bad-top")
	if r.code != 1 || !strings.Contains(r.out, "geocode bad-top: failed at ") ||
		!strings.Contains(r.out, "error: invalid-request") || !strings.Contains(r.out, "top") {
		t.Errorf("failed result: %s", r)
	}
	r = te.cmd("", "result", "--json", "geocode", "bad-top")
	if r.code != 1 || !strings.Contains(r.out, `"status":"failed"`) || !strings.Contains(r.out, `"class":"invalid-request"`) {
		t.Errorf("failed result --json: %s", r)
	}

	if r := te.cmd("", "result", "geocode"); r.code != 2 || !strings.Contains(r.err, "Usage: mapsworker result") {
		t.Errorf("missing id: %s", r)
	}
}

// TestPoisonListReplayPurge poisons messages the real way (Maps answers 400;
// an invalid request), lists them, replays them by id, by class and all
// after the cause is fixed, sees the new outcome replace the failed result,
// and purges with and without confirmation.
func TestPoisonListReplayPurge(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.emu.SetFault(&mapstest.Fault{Status: 400, Code: "400 BadRequest", Message: "x"})
	te.send(`{"id":"p-geo","kind":"geocode","query":"1 Main St"}`,
		base64.StdEncoding.EncodeToString([]byte(`{"id":"p-route","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}]}`)),
		`{"id":"p-bad","kind":"geocode","query":"x","top":99}`)
	p := te.start(nil, "run")
	waitFor(t, 30*time.Second, "three poisoned", func() bool { return te.poisonDepth() == 3 })

	if r := te.result("geocode", "p-geo"); r == nil || r.Status != worker.StatusFailed || r.Error.Class != "maps-rejected" {
		t.Fatalf("p-geo result: %+v", r)
	}
	r := te.cmd("", "poison", "list")
	if r.code != 0 {
		t.Fatal(r)
	}
	rows := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(rows) != 4 || !regexp.MustCompile(`^ID\s+KIND\s+CLASS\s+ERROR\s+DEQUEUES\s+POISONED AT$`).MatchString(rows[0]) {
		t.Fatalf("poison list: %s", r)
	}
	today := time.Now().Format(time.DateOnly)
	for id, re := range map[string]string{
		"p-geo":   `^p-geo\s+geocode\s+maps-rejected\s+Azure Maps answered 400 \(400 BadRequest\): x.*\s+1\s+` + today,
		"p-route": `^p-route\s+route\s+maps-rejected\s+Azure Maps answered 400 \(400 BadRequest\): x.*\s+1\s+` + today,
		"p-bad":   `^p-bad\s+geocode\s+invalid-request\s+\S+: .*top.*\s+1\s+` + today,
	} {
		found := false
		for _, row := range rows[1:] {
			found = found || regexp.MustCompile(re).MatchString(row)
		}
		if !found {
			t.Errorf("no row for %s matching %s in\n%s", id, re, r.out)
		}
	}
	if r := te.cmd("", "poison", "list", "--json"); r.code != 0 || lines(r.out) != 3 || !strings.Contains(r.out, `"poisonedAt"`) {
		t.Errorf("poison list --json: %s", r)
	}

	// The cause is fixed; replay one by id. Its failed result gives way.
	te.emu.SetFault(nil)
	r = te.cmd("", "poison", "replay", "--id", "p-geo")
	if r.code != 0 || strings.TrimSpace(r.out) != "replayed 1 message(s)" {
		t.Fatalf("replay --id: %s", r)
	}
	if d := te.poisonDepth(); d != 2 {
		t.Errorf("poison depth after replaying one: %d", d)
	}
	if n := te.visiblePoison(); n != 2 {
		t.Errorf("%d poison messages visible after replay, want the 2 others at once", n)
	}
	waitFor(t, 30*time.Second, "p-geo succeeded", func() bool {
		r := te.result("geocode", "p-geo")
		return r != nil && r.Status == worker.StatusSucceeded
	})

	// By class: the other maps-rejected one, not the invalid request.
	r = te.cmd("", "poison", "replay", "--class", "maps-rejected")
	if r.code != 0 || strings.TrimSpace(r.out) != "replayed 1 message(s)" {
		t.Fatalf("replay --class: %s", r)
	}
	waitFor(t, 30*time.Second, "p-route succeeded", func() bool {
		r := te.result("route", "p-route")
		return r != nil && r.Status == worker.StatusSucceeded && r.Error == nil
	})
	if r := te.cmd("", "result", "route", "p-route"); r.code != 0 || !strings.Contains(r.out, "succeeded") {
		t.Errorf("result after replay: %s", r)
	}

	// --all: the invalid request goes back, and is poisoned again.
	r = te.cmd("", "poison", "replay", "--all")
	if r.code != 0 || strings.TrimSpace(r.out) != "replayed 1 message(s)" {
		t.Fatalf("replay --all: %s", r)
	}
	waitFor(t, 30*time.Second, "p-bad poisoned again", func() bool { return te.visiblePoison() == 1 && te.queueDepth() == 0 })
	stopWorker(t, p)

	if r := te.cmd("", "poison", "replay"); r.code != 2 || !strings.Contains(r.err, "--all, --id or --class") {
		t.Errorf("replay without a selection: %s", r)
	}

	// Purge: refused on anything but "yes".
	r = te.cmd("no\n", "poison", "purge")
	if r.code != 1 || !strings.Contains(r.out, "Delete about 1 message(s) from maps-requests-poison? Type yes:") || !strings.Contains(r.err, "not purged") {
		t.Errorf("purge answered no: %s", r)
	}
	if d := te.poisonDepth(); d != 1 {
		t.Errorf("poison depth after a refused purge: %d", d)
	}
	r = te.cmd("", "poison", "purge") // stdin at EOF: no answer is no
	if r.code != 1 || te.poisonDepth() != 1 {
		t.Errorf("purge without an answer: %s", r)
	}
	r = te.cmd("yes\n", "poison", "purge")
	if r.code != 0 || !strings.Contains(r.out, "purged") || te.poisonDepth() != 0 {
		t.Errorf("purge answered yes: %s", r)
	}
	te.sendPoison(`{"id":"x","kind":"geocode","query":"x"}`, "transient", "503", "Service Unavailable")
	r = te.cmd("", "poison", "purge", "--yes")
	if r.code != 0 || strings.TrimSpace(r.out) != "purged" || te.poisonDepth() != 0 {
		t.Errorf("purge --yes: %s", r)
	}
	if r := te.cmd("", "poison", "list"); r.code != 0 || strings.TrimSpace(r.out) != "The poison queue is empty." {
		t.Errorf("empty list: %s", r)
	}
}

// TestPoisonReplayKeepsPoisonWhenEnqueueFails: with the request queue gone,
// replay fails and every poison message stays, visible at once (the poison
// message is removed only after its text was re-enqueued).
func TestPoisonReplayKeepsPoisonWhenEnqueueFails(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	for i := range 3 {
		te.sendPoison(`{"id":"k-`+itoa(i)+`","kind":"geocode","query":"x"}`, "transient", "503", "Service Unavailable")
	}
	// Not an envelope (moved there by another tool): kept byte for byte.
	if err := te.storage.Poison.Send(context.Background(), "plain text"); err != nil {
		t.Fatal(err)
	}
	if _, err := te.storage.Requests.Client().Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r := te.cmd("", "poison", "replay", "--all")
	if r.code != 1 || !strings.Contains(r.err, "re-enqueueing") || !strings.Contains(r.out, "replayed 0 message(s)") {
		t.Errorf("replay into a missing queue: %s", r)
	}
	if n := te.visiblePoison(); n != 4 {
		t.Errorf("%d of 4 poison messages visible after a failed replay", n)
	}
	// A replay that matches nothing leaves the messages as they were.
	if r := te.cmd("", "poison", "replay", "--id", "nobody"); r.code != 0 || strings.TrimSpace(r.out) != "replayed 0 message(s)" {
		t.Errorf("replay of nothing: %s", r)
	}
	resp, err := te.storage.Poison.Client().PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		t.Fatal(err)
	}
	plain := 0
	for _, m := range resp.Messages {
		if *m.MessageText == "plain text" {
			plain++
		}
	}
	if len(resp.Messages) != 4 || plain != 1 {
		t.Errorf("after replays that moved nothing: %d messages, %d untouched plain text", len(resp.Messages), plain)
	}
}

// TestStatsCommand shows queue depths, the oldest message's age and the
// results of the last hour.
func TestStatsCommand(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	r := te.cmd("", "stats")
	if r.code != 0 || !regexp.MustCompile(`queue maps-requests\s+0 messages\s+oldest -\n`).MatchString(r.out) ||
		!regexp.MustCompile(`results, last hour\s+0 succeeded\s+0 failed`).MatchString(r.out) {
		t.Errorf("empty stats: %s", r)
	}

	te.send(`{"id":"st-1","kind":"geocode","query":"1 Main St"}`, `{"id":"st-2","kind":"route","waypoints":[{"lat":47.6,"lon":-122.1},{"lat":47.61,"lon":-122.2}]}`,
		`{"id":"st-bad","kind":"geocode","query":"x","top":99}`)
	p := te.start(nil, "run")
	waitFor(t, 30*time.Second, "results", func() bool { return te.queueDepth() == 0 && te.poisonDepth() == 1 })
	stopWorker(t, p)
	te.send(`{"id":"st-3","kind":"geocode","query":"x"}`, `{"id":"st-4","kind":"geocode","query":"y"}`)
	time.Sleep(2100 * time.Millisecond)

	r = te.cmd("", "stats")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, re := range []string{
		`(?m)^queue maps-requests\s+2 messages\s+oldest [2-9]s$`,
		`(?m)^queue maps-requests-poison\s+1 messages\s+oldest \d+s$`,
		`(?m)^results, last hour\s+2 succeeded\s+1 failed$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.out) {
			t.Errorf("stats lacks %s:\n%s", re, r.out)
		}
	}
}

// TestHelpAndVersion: `mapsworker version`, and `--help` for every command
// prints its usage with examples and exits 0.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	te := &testEnv{t: t}
	r := te.cmd("", "version")
	if r.code != 0 || !regexp.MustCompile(`^mapsworker \S+\n$`).MatchString(r.out) {
		t.Errorf("version: %s", r)
	}
	if r2 := te.cmd("", "--version"); r2.out != r.out || r2.code != 0 {
		t.Errorf("--version: %s", r2)
	}
	r = te.cmd("", "--help")
	if r.code != 0 {
		t.Errorf("--help: %s", r)
	}
	for _, c := range commands {
		if !strings.Contains(r.err, "  "+c.name+" ") {
			t.Errorf("--help does not list %s:\n%s", c.name, r.err)
		}
	}
	if r := te.cmd(""); r.code != 2 || !strings.Contains(r.err, "Usage: mapsworker <command>") {
		t.Errorf("no command: %s", r)
	}
	if r := te.cmd("", "frobnicate"); r.code != 2 || !strings.Contains(r.err, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %s", r)
	}

	var all [][]string
	for _, c := range commands {
		all = append(all, []string{c.name})
	}
	all = append(all, []string{"poison", "list"}, []string{"poison", "replay"}, []string{"poison", "purge"})
	for _, cmd := range all {
		for _, h := range []string{"--help", "-h"} {
			r := te.cmd("", append(cmd, h)...)
			text := r.out + r.err
			if r.code != 0 || !strings.Contains(text, "Usage: mapsworker "+strings.Join(cmd, " ")) ||
				!regexp.MustCompile(`\nExamples:\n  mapsworker `+strings.Join(cmd, " ")).MatchString(text) {
				t.Errorf("mapsworker %s %s: want usage with examples, exit 0: %s", strings.Join(cmd, " "), h, r)
			}
		}
	}
}
