package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"mapsworker/jobs"
	"mapsworker/worker"
	"mapsworker/worker/telemetry"
)

// telemetryTarget is the share of the telemetry-off throughput the worker
// must keep with every signal exported.
const telemetryTarget = 0.95

// BenchmarkTelemetry runs the default worker (c=16, batching, mixed backlog,
// Maps limits off) with OpenTelemetry off and on, in turn on fresh Azurites,
// and fails when telemetry on is more than 5% slower. "On" exports traces
// (every message sampled: a span per delivery and per storage and Maps
// request) and metrics every second, over OTLP/HTTP to a sink in this
// process, with the queue depths read every second: more than a deployment
// would (its default export is a minute, its queue reading 30 s). As the
// machine is shared, a pair that misses is measured again, the order
// swapped, up to attempts times; the best pair is reported.
func BenchmarkTelemetry(b *testing.B) {
	if skipped("telemetry") {
		b.Skip("BENCH_ONLY")
	}
	e, done := setup(b)
	defer done()

	// The sink answers as a collector does: 200 and an empty message.
	var exports, exportBytes atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exports.Add(1)
		exportBytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
	b.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")
	b.Setenv("OTEL_SERVICE_NAME", "mapsworker-bench")

	// Two runs compared by their ratio: long enough for the machine's
	// noise to average out.
	sc := scenario{n: max(e.n, 5000), conc: 16, batch: true, limits: map[string]int{},
		kinds: []string{jobs.KindGeocode, jobs.KindReverseGeocode, jobs.KindRoute}}
	for b.Loop() {
		var off, on row
		ratio := 0.0
		for i := 1; i <= attempts; i++ {
			var o, t row
			if i%2 == 1 {
				o, t = e.telemetryRun(b, sc, false), e.telemetryRun(b, sc, true)
			} else {
				t, o = e.telemetryRun(b, sc, true), e.telemetryRun(b, sc, false)
			}
			r := t.rate() / max(o.rate(), 1e-9)
			fmt.Printf("  telemetry #%d: off %6.1f msg/s (CPU %v/msg), on %6.1f msg/s (CPU %v/msg) = %.3f%s%s\n", i,
				o.rate(), o.cpuPerMessage.Round(time.Microsecond), t.rate(), t.cpuPerMessage.Round(time.Microsecond), r,
				failureText(o.failures), failureText(t.failures))
			if i == 1 || r > ratio {
				off, on, ratio, on.attempt = o, t, r, i
			}
			if ratio >= telemetryTarget && len(off.failures)+len(on.failures) == 0 {
				break
			}
		}
		fmt.Printf("\ntelemetry on vs off (c=16, batch on, mixed backlog %d, MAPS_RATE_LIMITS=off; on: traces of every message and metrics every 1 s over OTLP/HTTP, %d exports, %.1f MB): off %.1f msg/s, on %.1f msg/s = %.3f of off (target ≥ %.2f; attempt %d); worker CPU per message off %v, on %v\n",
			sc.n, exports.Load(), float64(exportBytes.Load())/(1<<20), off.rate(), on.rate(), ratio, telemetryTarget, on.attempt,
			off.cpuPerMessage.Round(time.Microsecond), on.cpuPerMessage.Round(time.Microsecond))
		var failed []string
		if ratio < telemetryTarget {
			failed = append(failed, fmt.Sprintf("telemetry on is %.3f of off, target ≥ %.2f", ratio, telemetryTarget))
		}
		failed = append(failed, off.failures...)
		failed = append(failed, on.failures...)
		if exports.Load() == 0 {
			failed = append(failed, "telemetry on exported nothing")
		}
		for _, f := range failed {
			fmt.Printf("FAIL telemetry: %s\n", f)
		}
		if len(failed) > 0 {
			b.Errorf("telemetry row missed its target (FAIL lines above)")
		}
	}
}

// telemetryRun works sc's backlog once, as every row does (see work), with
// telemetry on or off (off: no hook installed, no policy added, as `run`
// without OTEL_* variables), and returns its row.
func (e *env) telemetryRun(b *testing.B, sc scenario, on bool) row {
	getenv := func(string) string { return "" }
	sc.name = "telemetry off"
	if on {
		getenv = nil // the process environment: the OTEL_* set above
		sc.name = "telemetry on"
	}
	tel, err := telemetry.New(context.Background(), &telemetry.Options{Getenv: getenv, Version: "bench",
		Queue: "bench", Kinds: sc.kinds, QueueInterval: time.Second, Logger: e.log})
	check(b, err)
	if on && !tel.Config().Enabled() {
		b.Fatal("telemetry did not turn on from OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	var x extras
	if p := tel.StoragePolicy(); p != nil {
		x.storagePolicies = append(x.storagePolicies, p)
	}
	if p := tel.MapsPolicy(); p != nil {
		x.mapsPolicies = append(x.mapsPolicies, p)
	}
	x.options = func(o *worker.Options) {
		o.Observe = tel.Observe()
		if count := o.OnOutcome; tel.Config().Metrics {
			o.OnOutcome = func(oc worker.Outcome) { tel.Settled(oc); count(oc) }
		}
	}
	x.started = func(eng *worker.Engine, st *worker.Storage) {
		tel.ObserveEngine(eng)
		tel.ObserveQueues(map[string]telemetry.QueueStats{"requests": func(ctx context.Context) (int64, time.Time, error) {
			props, err := st.Requests.Client().GetProperties(ctx, nil)
			if err != nil {
				return 0, time.Time{}, err
			}
			return int64(*props.ApproximateMessagesCount), time.Time{}, nil
		}})
	}
	r := e.work(b, sc, x)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check(b, tel.Shutdown(ctx))
	return r
}

// cpuTime is the CPU time this process spent running Go code and its
// garbage collector so far, as the runtime estimates it (portable, unlike
// getrusage).
func cpuTime() time.Duration {
	samples := []metrics.Sample{{Name: "/cpu/classes/user:cpu-seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(samples)
	var s float64
	for _, m := range samples {
		if m.Value.Kind() == metrics.KindFloat64 {
			s += m.Value.Float64()
		}
	}
	return time.Duration(s * float64(time.Second))
}
