package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"mapsworker/jobs"
	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// mixedRequests returns n message texts: every kind, both encodings, and
// one in ten invalid (a bad field, or not JSON at all). It returns the texts
// and how many of them are valid.
func mixedRequests(prefix string, n int) (texts []string, valid int) {
	for i := range n {
		var body string
		switch i % 10 {
		case 0:
			body = fmt.Sprintf(`{"id":"%s-%d","kind":"geocode","query":"x","top":99}`, prefix, i)
			if i%20 == 0 {
				body = "not json, not base64 !!"
			}
			valid--
		case 1, 2:
			body = fmt.Sprintf(`{"id":"%s-%d","kind":"reverse-geocode","position":{"lat":47.6%d,"lon":-122.1}}`, prefix, i, i)
		case 3:
			body = fmt.Sprintf(`{"id":"%s-%d","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.61,"lon":-122.2%d}]}`, prefix, i, i)
		default:
			body = fmt.Sprintf(`{"id":"%s-%d","kind":"geocode","query":"%d Main St, Redmond, WA"}`, prefix, i, i)
		}
		valid++
		if i%2 == 1 {
			body = base64.StdEncoding.EncodeToString([]byte(body))
		}
		texts = append(texts, body)
	}
	return texts, valid
}

// runThrough sends n mixed messages, runs the worker with extra settings
// until the queue is empty and every message is settled, stops it, and
// returns its output (stdout and stderr).
func runThrough(t *testing.T, n int, extra map[string]string) (string, *testEnv) {
	te := newTestEnv(t)
	texts, valid := mixedRequests("m", n)
	te.send(texts...)
	p := te.start(extra, "run")
	waitFor(t, 90*time.Second, "every message settled", func() bool {
		return te.queueDepth() == 0 && te.poisonDepth() == int64(n-valid)
	})
	stopWorker(t, p)
	if got := te.mapsWork(); got != int64(valid) {
		t.Errorf("Maps requests = %d, want %d (one per valid message)", got, valid)
	}
	return p.out.String(), te
}

// TestLogsAtInfoFitTheDashboard runs the worker through 300 messages at info:
// the WebJobs dashboard keeps the first 200 lines of a run, and the whole
// run takes no more than 20, with the start-up block and the stop line, no
// per-message line, and no secret.
func TestLogsAtInfoFitTheDashboard(t *testing.T) {
	t.Parallel()
	out, te := runThrough(t, 300, map[string]string{"MAPS_LOG_LEVEL": "info"})
	t.Logf("worker output at info for 300 messages:\n%s", out)
	if n := lines(out); n > 20 {
		t.Errorf("%d lines at info for 300 messages, want <= 20:\n%s", n, out)
	}
	for _, want := range []string{
		`msg="mapsworker starting" version=dev queue=maps-requests poisonQueue=maps-requests-poison container=maps-results`,
		"mapsEndpoint=" + te.emu.URL, "credential=", "concurrency=16", "maxDequeueCount=5", "lease=2m0s",
		`msg="stop requested; draining"`,
		`msg=stopped`, "succeeded=270", "poisoned=30",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "message settled") || strings.Contains(out, "m-17") {
		t.Errorf("per-message lines at info:\n%s", out)
	}
	if strings.Contains(out, "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq") || strings.Contains(out, "access_token") {
		t.Errorf("a secret in the log:\n%s", out)
	}
	if strings.Count(out, "level=WARN")+strings.Count(out, "level=ERROR") != 0 {
		t.Errorf("warnings in a healthy run:\n%s", out)
	}
}

// TestLogsJSONFormat: MAPS_LOG_FORMAT=json makes every line a JSON object
// with time, level and msg.
func TestLogsJSONFormat(t *testing.T) {
	t.Parallel()
	out, _ := runThrough(t, 40, map[string]string{"MAPS_LOG_FORMAT": "json", "MAPS_LOG_LEVEL": "info"})
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("line lacks time/level/msg: %s", l)
		}
		msgs = append(msgs, fmt.Sprint(rec["msg"]))
		if rec["msg"] == "mapsworker starting" && (rec["queue"] != "maps-requests" || rec["version"] != "dev") {
			t.Errorf("start-up line: %s", l)
		}
		if rec["msg"] == "stopped" && (rec["succeeded"] != float64(36) || rec["poisoned"] != float64(4)) {
			t.Errorf("stop line: %s", l)
		}
	}
	if len(msgs) < 3 || msgs[0] != "mapsworker starting" || msgs[len(msgs)-1] != "stopped" {
		t.Errorf("JSON log messages: %q", msgs)
	}
}

// TestLogsDebugPerMessage: at debug every message gets a line with its
// queue message id, kind, request id and outcome.
func TestLogsDebugPerMessage(t *testing.T) {
	t.Parallel()
	out, _ := runThrough(t, 40, map[string]string{"MAPS_LOG_LEVEL": "debug"})
	settled := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, `msg="message settled"`) {
			continue
		}
		if !strings.Contains(l, "level=DEBUG") || !strings.Contains(l, "messageId=") || !strings.Contains(l, " kind=") {
			t.Errorf("per-message line lacks level, messageId or kind: %s", l)
		}
		_, outcome, _ := strings.Cut(l, "outcome=")
		outcome, _, _ = strings.Cut(outcome, " ")
		settled[outcome]++
	}
	if settled["succeeded"] != 36 || settled["poisoned"] != 4 {
		t.Errorf("settled lines by outcome = %v, want 36 succeeded and 4 poisoned:\n%s", settled, out)
	}
	for _, want := range []string{"kind=geocode id=m-4 ", "kind=reverse-geocode", "kind=route", "class=invalid-request"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug output lacks %q", want)
		}
	}
}

// TestLogSettingsErrors: a bad MAPS_LOG_LEVEL or MAPS_LOG_FORMAT stops a
// command with one line naming the setting, exit 3.
func TestLogSettingsErrors(t *testing.T) {
	t.Parallel()
	te := &testEnv{t: t, env: map[string]string{"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c2VjcmV0c2VjcmV0;QueueEndpoint=http://127.0.0.1:1/a;BlobEndpoint=http://127.0.0.1:1/a"}}
	for k, v := range map[string]string{"MAPS_LOG_LEVEL": "loud", "MAPS_LOG_FORMAT": "xml"} {
		te.env[k] = v
		r := te.cmd("", "stats")
		delete(te.env, k)
		if r.code != 3 || lines(r.err) != 1 || !strings.Contains(r.err, k) || strings.Contains(r.err, "c2VjcmV0c2VjcmV0") {
			t.Errorf("%s=%s: %s", k, v, r)
		}
	}
}

// TestLogsSummaryLine runs the engine in process with a short summary
// interval and the Maps call counter wired as `run` wires them: the summary line carries processed,
// succeeded, poisoned, released, in flight, messages/s, Maps calls, 429s and
// lease renewals, and the Maps calls add up to what the emulator served.
func TestLogsSummaryLine(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	texts, valid := mixedRequests("sum", 200)
	te.emu.SetLatency(20 * time.Millisecond)

	// In process, the emulator's CA comes with its client (Go reads
	// SSL_CERT_FILE once per process), and the counter goes where run puts it.
	counter := &mapsCounter{}
	client, err := maps.NewClient(te.emu.URL, te.emu.Credential(), &maps.ClientOptions{ClientID: te.emu.ClientID,
		ClientOptions: azcore.ClientOptions{Transport: te.emu.Client(), PerRetryPolicies: []policy.Policy{counter}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	st := te.storage
	// The engine logs its first ten summaries at SummaryInterval, then
	// hourly: the two waves below fit in the first ten seconds of 2 s each
	// however slow the machine.
	eng := worker.New(st.Requests, st.Poison, st.Results, jobs.NewHandler(client, nil), &worker.Options{
		MaxPollInterval: 200 * time.Millisecond,
		SummaryInterval: 2 * time.Second,
		SummaryAttrs:    counter.summaryAttrs,
		Logger:          slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	done := make(chan error, 1)
	go func() { done <- eng.Run(context.Background()) }()
	// Two waves, each waited for until a summary covers its last message:
	// at least two summary lines, each counting what happened in its window.
	processed := regexp.MustCompile(`msg=summary processed=(\d+)`)
	for _, wave := range [][]string{texts[:100], texts[100:]} {
		settled := eng.Stats().Succeeded.Load() + eng.Stats().Poisoned.Load() + int64(len(wave))
		te.send(wave...)
		waitFor(t, 60*time.Second, "every message settled", func() bool {
			st := eng.Stats()
			return st.Succeeded.Load()+st.Poisoned.Load() == settled
		})
		waitFor(t, 30*time.Second, "summaries covering every message", func() bool {
			total := 0
			for _, m := range processed.FindAllStringSubmatch(buf.String(), -1) {
				v, _ := strconv.Atoi(m[1])
				total += v
			}
			return int64(total) == settled
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	out := buf.String()
	t.Logf("summary lines:\n%s", out)

	re := regexp.MustCompile(`^time=\S+ level=INFO msg=summary processed=(\d+) succeeded=(\d+) poisoned=(\d+) released=(\d+) inFlight=\d+ perSecond=[\d.]+ mapsCalls=(\d+) maps429=(\d+) renewals=\d+$`)
	// A burst of poisoned messages is one line of its own; the summaries
	// count them.
	poisonNotice := regexp.MustCompile(`^time=\S+ level=INFO msg="poisoning messages; they are in the poison queue with the reason" `)
	var sum [6]int
	n, notices := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if poisonNotice.MatchString(l) {
			notices++
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("not a summary line: %q", l)
			continue
		}
		n++
		for i := range sum {
			v, _ := strconv.Atoi(m[i+1])
			sum[i] += v
		}
	}
	if n < 2 {
		t.Errorf("%d summary lines, want one or more per wave", n)
	}
	if notices != 1 {
		t.Errorf("%d lines about poisoned messages, want the one for their burst", notices)
	}
	if sum[0] != 200 || sum[1] != valid || sum[2] != 200-valid || sum[3] != 0 {
		t.Errorf("summaries add up to processed/succeeded/poisoned/released %v, want 200/%d/%d/0", sum[:4], valid, 200-valid)
	}
	if served := te.emu.Stats().Requests; int64(sum[4]) != served || sum[5] != 0 {
		t.Errorf("summaries count %d Maps calls and %d 429s; the emulator served %d, no 429", sum[4], sum[5], served)
	}
}

// TestMapsCounterCounts429: the counting policy sees every attempt and the
// 429s among them.
func TestMapsCounterCounts429(t *testing.T) {
	t.Parallel()
	codes := []int{200, 429, 200, 429, 503}
	var i atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(codes[int(i.Add(1)-1)%len(codes)])
	}))
	defer srv.Close()
	c := &mapsCounter{}
	pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
		PerRetryPolicies: []policy.Policy{c}, Retry: policy.RetryOptions{MaxRetries: -1},
	})
	for range codes {
		req, _ := runtime.NewRequest(context.Background(), http.MethodGet, srv.URL)
		if resp, err := pl.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	if got := fmt.Sprint(c.summaryAttrs()); got != "[mapsCalls 5 maps429 2]" {
		t.Errorf("first summary attrs %s", got)
	}
	if got := fmt.Sprint(c.summaryAttrs()); got != "[mapsCalls 0 maps429 0]" {
		t.Errorf("second summary attrs %s (want deltas)", got)
	}
}
