package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"mapsworker/worker"
)

// scope names the instrumentation in every export.
const scope = "mapsworker/worker/telemetry"

// Options configure Telemetry.
type Options struct {
	// Getenv reads the OTEL_* variables (see ConfigFromEnv). Default
	// os.Getenv. The exporters and the SDK read their own variables from
	// the process environment.
	Getenv func(string) string
	// Version is the service.version resource attribute.
	Version string
	// InstanceID is the service.instance.id resource attribute (on App
	// Service, WEBSITE_INSTANCE_ID). Default the host name.
	InstanceID string
	// Queue is the request queue's name, for span names and attributes.
	Queue string
	// Kinds are the request kinds a metric may name; any other is counted
	// as "other", so that a producer's typo cannot add a time series.
	Kinds []string
	// MapsAPI names the Maps API of a request path, for the metrics'
	// label and span names; it must return one of a few names ("other"
	// for any path it does not know). Default: every path is "other".
	MapsAPI func(path string) string
	// QueueInterval is how often queue depths are read while metrics are
	// on. Default 1m, the SDK's default export interval: a reading more
	// frequent than the exports would cost storage requests for nothing.
	QueueInterval time.Duration
	// Logger receives export errors (at warn, at most one a minute).
	// Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.MapsAPI == nil {
		c.MapsAPI = func(string) string { return "other" }
	}
	if c.InstanceID == "" {
		c.InstanceID, _ = os.Hostname()
	}
	if c.QueueInterval <= 0 {
		c.QueueInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Telemetry holds the providers and instruments. Its zero value, and the
// one New returns when nothing is configured, exports nothing.
type Telemetry struct {
	opts   Options
	cfg    Config
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	inst   instruments

	mu      sync.Mutex
	source  Engine
	queues  map[string]QueueStats
	depths  map[string]queueReading
	stopped chan struct{}
	polling sync.WaitGroup
}

type queueReading struct {
	depth  int64
	oldest time.Time
	ok     bool
}

// New reads the configuration and, when a signal is on, sets up its
// provider and OTLP/HTTP exporter. It returns an *EnvError for an OTEL_*
// variable it cannot honour.
func New(ctx context.Context, opts *Options) (*Telemetry, error) {
	o := opts.withDefaults()
	cfg, err := ConfigFromEnv(o.Getenv)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{opts: o, cfg: cfg, stopped: make(chan struct{})}
	if !cfg.Enabled() {
		return t, nil
	}
	otel.SetErrorHandler(&errorLog{log: o.Logger})
	// Defaults first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", "mapsworker"),
			attribute.String("service.version", o.Version),
			attribute.String("service.instance.id", o.InstanceID)),
		resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, &EnvError{"OTEL_RESOURCE_ATTRIBUTES", err.Error()}
	}
	if cfg.Traces {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, &EnvError{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", err.Error()}
		}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.tracer = t.tp.Tracer(scope)
		t.prop = propagation.TraceContext{}
	}
	if cfg.Metrics {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, &EnvError{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", err.Error()}
		}
		t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res))
		if err := t.inst.init(t.mp.Meter(scope), t.observe); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Config returns the signals exported.
func (t *Telemetry) Config() Config { return t.cfg }

// Shutdown stops the queue poller and flushes and closes the exporters,
// within ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if !t.cfg.Enabled() {
		return nil
	}
	t.mu.Lock()
	select {
	case <-t.stopped:
	default:
		close(t.stopped)
	}
	t.mu.Unlock()
	t.polling.Wait()
	var errs []error
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	if t.mp != nil {
		errs = append(errs, t.mp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Engine is what the metrics read from the running engine.
type Engine interface {
	Stats() *worker.Stats
	Paused() bool
}

// ObserveEngine makes the engine's counters and breaker state observable.
func (t *Telemetry) ObserveEngine(e Engine) {
	t.mu.Lock()
	t.source = e
	t.mu.Unlock()
}

// QueueStats returns a queue's approximate depth and when its oldest visible
// message was sent (zero when it is empty).
type QueueStats func(ctx context.Context) (depth int64, oldest time.Time, err error)

// ObserveQueues reads each named queue's depth every Options.QueueInterval
// while metrics are on (two storage requests per queue each time), until
// Shutdown. The names are the queue attribute's values.
func (t *Telemetry) ObserveQueues(queues map[string]QueueStats) {
	if !t.cfg.Metrics || len(queues) == 0 {
		return
	}
	t.mu.Lock()
	t.queues, t.depths = queues, make(map[string]queueReading, len(queues))
	t.mu.Unlock()
	t.polling.Add(1)
	go func() {
		defer t.polling.Done()
		tick := time.NewTicker(t.opts.QueueInterval)
		defer tick.Stop()
		for {
			t.pollQueues()
			select {
			case <-t.stopped:
				return
			case <-tick.C:
			}
		}
	}()
}

func (t *Telemetry) pollQueues() {
	for name, stats := range t.queues {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		depth, oldest, err := stats(ctx)
		cancel()
		t.mu.Lock()
		if err != nil {
			// A reading that cannot be had is left out of the export rather
			// than reported as an empty queue.
			t.depths[name] = queueReading{}
		} else {
			t.depths[name] = queueReading{depth: depth, oldest: oldest, ok: true}
		}
		t.mu.Unlock()
	}
}

// observe is the callback of the observable instruments.
func (t *Telemetry) observe(_ context.Context, o metric.Observer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.source; e != nil {
		s := e.Stats()
		o.ObserveInt64(t.inst.renewals, s.Renewals.Load())
		o.ObserveInt64(t.inst.outages, s.Outages.Load())
		o.ObserveInt64(t.inst.inFlight, s.InFlight.Load())
		open := int64(0)
		if e.Paused() {
			open = 1
		}
		o.ObserveInt64(t.inst.breaker, open)
	}
	now := time.Now()
	for name, r := range t.depths {
		if !r.ok {
			continue
		}
		q := metric.WithAttributeSet(attribute.NewSet(attribute.String("queue", name)))
		o.ObserveInt64(t.inst.depth, r.depth, q)
		age := 0.0
		if !r.oldest.IsZero() {
			age = max(now.Sub(r.oldest).Seconds(), 0)
		}
		o.ObserveFloat64(t.inst.oldest, age, q)
	}
	return nil
}

// kind bounds a request kind to the known ones.
func (t *Telemetry) kind(k string) string {
	switch {
	case k == "":
		return "unknown"
	case slices.Contains(t.opts.Kinds, k):
		return k
	default:
		return "other"
	}
}

// Settled records a settled delivery in the metrics; it is meant for
// worker.Options.OnOutcome, and does nothing while metrics are off.
func (t *Telemetry) Settled(o worker.Outcome) {
	if !t.cfg.Metrics {
		return
	}
	ctx := context.Background()
	kind := attribute.String("kind", t.kind(o.Kind))
	outcome := attribute.String("outcome", o.Result)
	set := attribute.NewSet(kind, outcome)
	if o.Err != nil {
		t.inst.messages.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(kind, outcome,
			attribute.String("error.type", worker.ClassOf(o.Err).String()))))
	} else {
		t.inst.messages.Add(ctx, 1, metric.WithAttributeSet(set))
	}
	if !o.Started.IsZero() && !o.End.IsZero() {
		t.inst.processing.Record(ctx, o.End.Sub(o.Started).Seconds(), metric.WithAttributeSet(set))
	}
	if !o.InsertedAt.IsZero() && !o.End.IsZero() {
		t.inst.endToEnd.Record(ctx, max(o.End.Sub(o.InsertedAt).Seconds(), 0), metric.WithAttributeSet(set))
	}
}

// errorLog logs the SDK's errors (a collector that cannot be reached, an
// export refused) at warn, at most one a minute: telemetry must not flood
// the log that the WebJobs dashboard keeps only the start of.
type errorLog struct {
	log  *slog.Logger
	last atomic.Int64
}

// Handle implements otel.ErrorHandler.
func (e *errorLog) Handle(err error) {
	now, last := time.Now().UnixNano(), e.last.Load()
	if last != 0 && now-last < int64(time.Minute) || !e.last.CompareAndSwap(last, now) {
		return
	}
	e.log.Warn("telemetry: export failed; next such warning in a minute at the earliest", "err", err)
}
