package main

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker/telemetry"
)

// otlpReceiver is an OTLP/HTTP endpoint in the test process: it decodes what
// the worker exports, as a collector would.
type otlpReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	metrics []*colmetricpb.ExportMetricsServiceRequest
	spans   []*tracepb.Span
	service string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want application/x-protobuf", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		switch req.URL.Path {
		case "/v1/metrics":
			m := &colmetricpb.ExportMetricsServiceRequest{}
			if err := proto.Unmarshal(b, m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.metrics = append(r.metrics, m)
			w.Header().Set("Content-Type", "application/x-protobuf")
			out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
			w.Write(out)
		case "/v1/traces":
			m := &coltracepb.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(b, m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rs := range m.ResourceSpans {
				r.service = attrString(rs.Resource.GetAttributes(), "service.name")
				for _, ss := range rs.ScopeSpans {
					r.spans = append(r.spans, ss.Spans...)
				}
			}
			w.Header().Set("Content-Type", "application/x-protobuf")
			out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
			w.Write(out)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// point is the latest value of one time series (exports are cumulative).
type point struct {
	unit     string
	value    float64 // sum or gauge
	count    uint64  // histogram
	sum      float64 // histogram
	attrs    map[string]string
	histo    bool
	exported int
}

// series returns the latest point of every series, keyed by metric name and
// attributes ("name{k=v,...}"), and the service name of the exports.
func (r *otlpReceiver) series() (map[string]*point, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*point{}
	service := ""
	for i, req := range r.metrics {
		for _, rm := range req.ResourceMetrics {
			service = attrString(rm.Resource.GetAttributes(), "service.name")
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					add := func(attrs []*commonpb.KeyValue, p *point) {
						p.unit, p.exported, p.attrs = m.Unit, i, map[string]string{}
						for _, kv := range attrs {
							p.attrs[kv.Key] = anyString(kv.Value)
						}
						out[seriesKey(m.Name, p.attrs)] = p
					}
					switch d := m.Data.(type) {
					case *metricpb.Metric_Sum:
						for _, dp := range d.Sum.DataPoints {
							add(dp.Attributes, &point{value: numberValue(dp)})
						}
					case *metricpb.Metric_Gauge:
						for _, dp := range d.Gauge.DataPoints {
							add(dp.Attributes, &point{value: numberValue(dp)})
						}
					case *metricpb.Metric_Histogram:
						for _, dp := range d.Histogram.DataPoints {
							add(dp.Attributes, &point{histo: true, count: dp.Count, sum: dp.GetSum()})
						}
					}
				}
			}
		}
	}
	return out, service
}

func numberValue(dp *metricpb.NumberDataPoint) float64 {
	if v, ok := dp.Value.(*metricpb.NumberDataPoint_AsInt); ok {
		return float64(v.AsInt)
	}
	return dp.GetAsDouble()
}

func seriesKey(name string, attrs map[string]string) string {
	var kv []string
	for k, v := range attrs {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

func attrString(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.Key == key {
			return anyString(kv.Value)
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return ""
}

// TestTelemetryExport runs the worker against Azurite and the emulator with
// OTLP pointed at a receiver in the test, on a known backlog with one 429,
// and checks the metrics and traces it exported against what the run did.
func TestTelemetryExport(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	rcv := newOTLPReceiver(t)
	const (
		traceID = "0af7651916cd43dd8448eb211c80319c"
		spanID  = "b7ad6b7169203331"
	)
	te.send(
		`{"id":"tel-g1","kind":"geocode","query":"1 Microsoft Way, Redmond, WA","traceparent":"00-`+traceID+`-`+spanID+`-01"}`,
		`{"id":"tel-g2","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA"}`,
		`{"id":"tel-r1","kind":"reverse-geocode","position":{"lat":47.6303,"lon":-122.1387}}`,
		`{"id":"tel-t1","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}]}`,
		`{"id":"tel-x1","kind":"geocode","query":"Redmond #reject"}`,
		`{"id":"tel-x2","kind":"geocode","query":"x","top":99}`,
		`{"id":"tel-x3","kind":"teleport","query":"Redmond"}`,
	)
	// The first route request is answered 429, asking for a hold longer than
	// the Maps client absorbs, so that the engine pauses; the fault ends
	// with the next request (the probe).
	te.emu.SetFault(&mapstest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second, Paths: []string{mapstest.APIRoute}})
	var routes atomic.Int64
	te.emu.SetHandlerHook(func(r *http.Request) {
		if r.URL.Path == "/route/directions" && routes.Add(1) == 2 {
			te.emu.SetFault(nil)
		}
	})
	te.emu.ResetStats()

	p := te.start(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL,
		"OTEL_SERVICE_NAME":           "mapsworker-test",
		"OTEL_METRIC_EXPORT_INTERVAL": "500",
		"OTEL_BSP_SCHEDULE_DELAY":     "200",
	}, "run", "--until-empty", "--idle-grace", "5s")
	_, code := p.exited(t, time.Now(), 2*time.Minute)
	if code != exitDone {
		t.Fatalf("exit %d\n%s", code, p.out.String())
	}
	emu := te.emu.Stats()
	if emu.Status429 != 1 {
		t.Fatalf("the emulator answered %d 429s, want the 1 the run is built on", emu.Status429)
	}

	series, service := rcv.series()
	if service != "mapsworker-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
	}
	get := func(name string, attrs ...string) *point {
		t.Helper()
		m := map[string]string{}
		for i := 0; i+1 < len(attrs); i += 2 {
			m[attrs[i]] = attrs[i+1]
		}
		p := series[seriesKey(name, m)]
		if p == nil {
			t.Errorf("no series %s", seriesKey(name, m))
			return &point{}
		}
		return p
	}
	units := map[string]string{
		telemetry.MetricMessages: "{message}", telemetry.MetricProcessing: "s", telemetry.MetricEndToEnd: "s",
		telemetry.MetricMapsRequests: "{request}", telemetry.MetricMapsDuration: "s", telemetry.MetricMapsThrottled: "{request}",
		telemetry.MetricQueueDepth: "{message}", telemetry.MetricQueueOldestAge: "s", telemetry.MetricBreakerOpen: "1",
		telemetry.MetricLeaseRenewals: "{renewal}", telemetry.MetricOutages: "{outage}", telemetry.MetricMessagesInFlight: "{message}",
	}
	seen := map[string]bool{}
	allowed := map[string]bool{"kind": true, "outcome": true, "error.type": true, "maps.api": true, "http.response.status_code": true, "queue": true}
	for key, pt := range series {
		name := key[:strings.IndexByte(key, '{')]
		seen[name] = true
		if want, ok := units[name]; !ok {
			t.Errorf("unexpected metric %s", name)
		} else if pt.unit != want {
			t.Errorf("%s: unit %q, want %q", name, pt.unit, want)
		}
		// Bounded cardinality: only these labels, and no id, query or
		// unknown kind in a value.
		for k, v := range pt.attrs {
			if !allowed[k] {
				t.Errorf("%s: label %s", key, k)
			}
			if strings.HasPrefix(v, "tel-") || strings.Contains(v, "Redmond") || v == "teleport" {
				t.Errorf("%s: label value %q", key, v)
			}
		}
	}
	for name := range units {
		if !seen[name] {
			t.Errorf("metric %s was not exported", name)
		}
	}

	// Messages by kind and outcome: the final outcomes are known; the 429
	// released the route message once (paused), which the spans confirm.
	want := map[string]float64{
		"geocode/succeeded/":                                 2,
		"reverse-geocode/succeeded/":                         1,
		"route/succeeded/":                                   1,
		"geocode/poisoned/maps-rejected":                     1,
		"geocode/poisoned/invalid-request":                   1,
		"route/paused/environment":                           1,
		kindOfTeleport(series) + "/poisoned/invalid-request": 1,
	}
	got := map[string]float64{}
	var settled float64
	for key, pt := range series {
		if strings.HasPrefix(key, telemetry.MetricMessages+"{") {
			got[pt.attrs["kind"]+"/"+pt.attrs["outcome"]+"/"+pt.attrs["error.type"]] = pt.value
			settled += pt.value
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s{kind/outcome/error.type=%s} = %v, want %v (all: %v)", telemetry.MetricMessages, k, got[k], v, got)
		}
	}
	t.Logf("%s by kind/outcome/error.type: %v", telemetry.MetricMessages, got)
	var histCount uint64
	for key, pt := range series {
		if strings.HasPrefix(key, telemetry.MetricProcessing+"{") {
			histCount += pt.count
			if pt.sum <= 0 || pt.sum > 60*float64(pt.count) {
				t.Errorf("%s: sum %vs over %d deliveries", key, pt.sum, pt.count)
			}
		}
	}
	if float64(histCount) != settled {
		t.Errorf("%s counted %d deliveries, %s %v", telemetry.MetricProcessing, histCount, telemetry.MetricMessages, settled)
	}
	if e2e := get(telemetry.MetricEndToEnd, "kind", "route", "outcome", "succeeded"); e2e.count != 1 ||
		e2e.sum < get(telemetry.MetricProcessing, "kind", "route", "outcome", "succeeded").sum {
		t.Errorf("end-to-end of the route: %+v, not one delivery at least as long as its processing", e2e)
	}

	// Maps calls by API and status match what the emulator received.
	perAPI := map[string]float64{}
	for key, pt := range series {
		if strings.HasPrefix(key, telemetry.MetricMapsRequests+"{") {
			perAPI[pt.attrs["maps.api"]] += pt.value
		}
	}
	for _, api := range []string{mapstest.APIGeocode, mapstest.APIGeocodeBatch, mapstest.APIReverseGeocode, mapstest.APIRoute, mapstest.APIRouteBatch} {
		if perAPI[api] != float64(emu.PerPath[api]) {
			t.Errorf("%s{maps.api=%s} = %v, the emulator received %d", telemetry.MetricMapsRequests, api, perAPI[api], emu.PerPath[api])
		}
	}
	if v := get(telemetry.MetricMapsRequests, "maps.api", "route", "http.response.status_code", "429").value; v != 1 {
		t.Errorf("route 429s %v, want 1", v)
	}
	if v := get(telemetry.MetricMapsThrottled, "maps.api", "route").value; v != 1 {
		t.Errorf("%s{route} = %v, want 1", telemetry.MetricMapsThrottled, v)
	}
	if v := get(telemetry.MetricOutages).value; v != 1 {
		t.Errorf("%s = %v, want the 1 of the 429", telemetry.MetricOutages, v)
	}
	if v := get(telemetry.MetricBreakerOpen).value; v != 0 {
		t.Errorf("%s = %v at the end, want 0 (closed)", telemetry.MetricBreakerOpen, v)
	}
	if v := get(telemetry.MetricLeaseRenewals).value; v != 0 {
		t.Errorf("%s = %v, want 0 for work far shorter than the lease", telemetry.MetricLeaseRenewals, v)
	}
	if d := get(telemetry.MetricQueueDepth, "queue", "requests").value; d < 0 || d > 7 {
		t.Errorf("request queue depth %v, outside 0..7", d)
	}
	if d := get(telemetry.MetricQueueDepth, "queue", "poison").value; d < 0 || d > 3 {
		t.Errorf("poison queue depth %v, outside 0..3", d)
	}
	get(telemetry.MetricQueueOldestAge, "queue", "requests")

	// Traces: one span per delivery, the producer's context honoured, the
	// Maps and storage calls as children with the request id answered.
	rcv.mu.Lock()
	spans := slices.Clone(rcv.spans)
	rcv.mu.Unlock()
	byID := map[string]*tracepb.Span{}
	var deliveries []*tracepb.Span
	for _, s := range spans {
		byID[hex.EncodeToString(s.SpanId)] = s
		if s.Name == "process maps-requests" {
			deliveries = append(deliveries, s)
		}
	}
	if float64(len(deliveries)) != settled {
		t.Errorf("%d delivery spans, %v deliveries counted", len(deliveries), settled)
	}
	children := map[string][]*tracepb.Span{}
	for _, s := range spans {
		if parent := byID[hex.EncodeToString(s.ParentSpanId)]; parent != nil && parent.Name == "process maps-requests" {
			id := attrString(parent.Attributes, telemetry.AttrRequestID)
			children[id] = append(children[id], s)
			if !slices.Equal(s.TraceId, parent.TraceId) {
				t.Errorf("%s: child of another trace", s.Name)
			}
		}
	}
	outcomes := map[string]int{}
	for _, s := range deliveries {
		id := attrString(s.Attributes, telemetry.AttrRequestID)
		outcomes[attrString(s.Attributes, telemetry.AttrKind)+"/"+attrString(s.Attributes, telemetry.AttrOutcome)]++
		if s.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
			t.Errorf("%s: span kind %v", id, s.Kind)
		}
		if id == "tel-g1" {
			if hex.EncodeToString(s.TraceId) != traceID || hex.EncodeToString(s.ParentSpanId) != spanID {
				t.Errorf("tel-g1: trace %x parent %x, want the producer's %s %s", s.TraceId, s.ParentSpanId, traceID, spanID)
			}
		} else if hex.EncodeToString(s.TraceId) == traceID {
			t.Errorf("%s joined the producer's trace of another message", id)
		}
	}
	names := func(id string) []string {
		var n []string
		for _, s := range children[id] {
			n = append(n, s.Name)
		}
		sort.Strings(n)
		return n
	}
	t.Logf("delivery spans by kind/outcome: %v; children of tel-r1: %v", outcomes, names("tel-r1"))
	if outcomes["route/paused"] != 1 || outcomes["route/succeeded"] != 1 {
		t.Errorf("route delivery spans by outcome: %v", outcomes)
	}
	for _, id := range []string{"tel-r1", "tel-t1"} {
		n := names(id)
		for _, want := range []string{"storage PUT", "storage DELETE"} {
			if !slices.Contains(n, want) {
				t.Errorf("%s: children %v, no %q", id, n, want)
			}
		}
	}
	var reqIDs int
	for _, s := range children["tel-r1"] {
		if s.Name == "maps reverseGeocode" {
			if attrString(s.Attributes, telemetry.AttrServiceRequestID) == "" {
				t.Errorf("maps reverseGeocode span without %s: %v", telemetry.AttrServiceRequestID, s.Attributes)
			}
			reqIDs++
		}
	}
	if reqIDs != 1 {
		t.Errorf("tel-r1: %d Maps spans, want 1; children %v", reqIDs, names("tel-r1"))
	}
	for _, s := range children["tel-r1"] {
		if strings.HasPrefix(s.Name, "storage ") && attrString(s.Attributes, telemetry.AttrServiceRequestID) == "" {
			t.Errorf("%s span without the storage request id", s.Name)
		}
	}
}

// kindOfTeleport returns the kind label the unknown kind was counted under:
// "other" when it was decoded, "unknown" when the request was refused first.
func kindOfTeleport(series map[string]*point) string {
	for _, pt := range series {
		if k := pt.attrs["kind"]; k == "other" || k == "unknown" {
			return k
		}
	}
	return "other"
}
