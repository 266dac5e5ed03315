package main

import (
	"context"
	"errors"
	"time"

	"mapsworker/internal/settings"
	"mapsworker/jobs"
	"mapsworker/jobs/maps/catalog"
	"mapsworker/worker"
	"mapsworker/worker/telemetry"
)

// newTelemetry sets up OpenTelemetry as the OTEL_* variables ask (nothing
// when none is set). With traces on, the storage clients are made again with
// the policy that traces their requests.
func newTelemetry(a *app) (*telemetry.Telemetry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tel, err := telemetry.New(ctx, &telemetry.Options{
		Version:    version,
		InstanceID: worker.DefaultInstance(),
		Queue:      a.s.Queue,
		Kinds:      jobs.KindNames(),
		MapsAPI:    catalog.NameOf,
		Logger:     a.log,
	})
	var envErr *telemetry.EnvError
	if errors.As(err, &envErr) {
		return nil, &settings.Error{Name: envErr.Name, Problem: envErr.Problem}
	}
	if err != nil {
		return nil, err
	}
	if c := tel.Config(); c.Enabled() {
		a.log.Info("OpenTelemetry export on", "traces", c.Traces, "metrics", c.Metrics)
	}
	if p := tel.StoragePolicy(); p != nil {
		if err := a.connect(p); err != nil {
			return nil, err
		}
	}
	return tel, nil
}

// bothOutcomes calls f (when set) and then g with each outcome.
func bothOutcomes(f, g func(worker.Outcome)) func(worker.Outcome) {
	if f == nil {
		return g
	}
	return func(o worker.Outcome) { f(o); g(o) }
}
