package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"mapsworker/internal/settings"
	"mapsworker/jobs"
	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/catalog"
	"mapsworker/worker"
	"mapsworker/worker/telemetry"
)

// app is what the commands share: settings, logger, identity, storage.
type app struct {
	s       *settings.Settings
	log     *slog.Logger
	id      *settings.Identity
	storage *worker.Storage
	maps    *mapsCounter         // counts Maps calls for the summary line (run only)
	tel     *telemetry.Telemetry // OpenTelemetry (run only; exports nothing unless OTEL_* say so)
}

// newApp reads the settings and connects to storage; with needMaps it also
// checks the Azure Maps settings.
func newApp(needMaps bool) (*app, error) {
	s, err := settings.Load(&settings.Options{RequireMaps: needMaps})
	if err != nil {
		return nil, err
	}
	a := &app{s: s, log: newLogger(s)}
	if a.id, err = s.Identity(); err != nil {
		return nil, err
	}
	if err := a.connect(); err != nil {
		return nil, err
	}
	return a, nil
}

// connect creates the storage clients, with policies added to their
// pipelines (run's tracing).
func (a *app) connect(policies ...policy.Policy) error {
	opts := &worker.StorageOptions{}
	opts.ClientOptions.PerRetryPolicies = policies
	var err error
	a.storage, err = a.s.NewStorage(a.id, opts)
	return err
}

// newLogger is the log the settings ask for, on stdout: the WebJobs
// dashboard's.
func newLogger(s *settings.Settings) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.LogLevel}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stdout, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stdout, opts))
}

// mapsClient builds the Azure Maps client with the configured auth.
func (a *app) mapsClient() (*maps.Client, error) {
	opts := &maps.ClientOptions{ClientID: a.s.MapsClientID, RateLimits: a.s.RateLimits}
	opts.DisableRateLimits = a.s.RateLimits != nil && len(a.s.RateLimits) == 0
	opts.Telemetry.ApplicationID = "mapsworker/" + version
	if a.maps != nil {
		opts.PerRetryPolicies = append(opts.PerRetryPolicies, a.maps)
	}
	if a.tel != nil {
		if p := a.tel.MapsPolicy(); p != nil {
			opts.PerRetryPolicies = append(opts.PerRetryPolicies, p)
		}
	}
	if a.s.MapsKeySecretURI != "" {
		keys, err := settings.NewVaultKey(a.s.MapsKeySecretURI, a.id.Credential, nil)
		if err != nil {
			return nil, err
		}
		return maps.NewClientWithKey(a.s.MapsEndpoint, keys, opts)
	}
	return maps.NewClient(a.s.MapsEndpoint, a.id.Credential, opts)
}

func cmdRun(args []string) error {
	fs, limits := runFlags()
	fs.Usage = usageFor(fs, "run",
		"Work the request queue until stopped (the WebJob's job), or, bounded, until it stays empty or a\n"+
			"bound is reached; then drain as at a stop. Exit status: 0 done (stopped, empty, or a bound\n"+
			"reached), 1 stopped by a fault (with --until-empty: an environment fault that lasted the idle\n"+
			"grace with no progress), 3 bad settings or flags.",
		"mapsworker run",
		"mapsworker run --until-empty --idle-grace 30s --max-duration 10m")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{exitSettings, ""} // the flag package has said what is wrong
	}
	if err := limits.validate(); err != nil {
		return err
	}
	return runWorker(*limits)
}

// runWorker is `mapsworker run` once its flags are read.
func runWorker(limits runLimits) error {
	a, err := newApp(true)
	if err != nil {
		return err
	}
	if err := checkDrain(a.s.DrainTimeout, jobDir()); err != nil {
		return err
	}
	a.maps = &mapsCounter{}
	if a.tel, err = newTelemetry(a); err != nil {
		return err
	}
	client, err := a.mapsClient()
	if err != nil {
		return err
	}
	s := a.s
	auth := "entra-id"
	if s.MapsKeySecretURI != "" {
		auth = "shared-key (Key Vault)"
	}
	a.log.Info("mapsworker starting",
		"version", version, "queue", s.Queue, "poisonQueue", s.Queue+"-poison", "container", s.Container,
		"mapsEndpoint", s.MapsEndpoint, "mapsAuth", auth, "credential", a.id.Kind, "clientId", a.id.ClientID,
		"concurrency", s.Concurrency, "maxDequeueCount", s.MaxDequeueCount, "lease", s.Lease,
		"maxPollInterval", s.MaxPollInterval, "drainTimeout", s.DrainTimeout,
		"batch", s.Batch, "rateLimits", rateLimitsText(s.RateLimits))
	if attrs := limits.describe(); attrs != nil {
		a.log.Info("bounded run", attrs...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if s.ShutdownFile != "" {
		var cancel context.CancelFunc
		ctx, cancel = watchShutdownFile(ctx, s.ShutdownFile)
		defer cancel()
	}

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = a.storage.Ensure(startCtx, a.log)
	cancel()
	if err != nil {
		// Not fatal: the queues may exist and only creating them failed. The
		// engine's breaker pauses while storage is unreachable.
		a.log.Warn("could not check the queues and container; carrying on", "err", err)
	}

	handler := jobs.NewHandler(client, &jobs.HandlerOptions{Batch: s.Batch, Checkpoints: a.storage.Checkpoints()})
	var queue worker.Queue = a.storage.Requests
	var once *runOnce
	var onOutcome func(worker.Outcome)
	if limits.bounded() {
		once = newRunOnce(limits, nil)
		queue, onOutcome = once.queue(queue), once.settled
	}
	if a.tel.Config().Metrics {
		onOutcome = bothOutcomes(onOutcome, a.tel.Settled)
	}
	eng := worker.New(queue, a.storage.Poison, a.storage.Results, handler, &worker.Options{
		Concurrency:     s.Concurrency,
		MaxDequeueCount: s.MaxDequeueCount,
		Lease:           s.Lease,
		MaxPollInterval: limits.pollCap(s.MaxPollInterval),
		Logger:          a.log,
		SummaryAttrs:    a.maps.summaryAttrs,
		OnOutcome:       onOutcome,
		Observe:         a.tel.Observe(),
	})
	a.tel.ObserveEngine(eng)
	a.tel.ObserveQueues(map[string]telemetry.QueueStats{
		"requests": queueStats(a.storage.Requests),
		"poison":   queueStats(a.storage.Poison),
	})
	defer func() {
		// The export at a stop gets the exit's allowance: the runner's
		// stopping_wait_time is budgeted without it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := a.tel.Shutdown(ctx); err != nil {
			a.log.Warn("telemetry: the last export failed", "err", err)
		}
	}()
	var stopping atomic.Bool
	if s.HealthAddr != "" {
		hs, err := startHealth(s.HealthAddr, func() (bool, string) {
			switch {
			case stopping.Load():
				return false, "stopping"
			case eng.Paused():
				return false, "paused: Maps or storage is failing; dequeuing resumes when a probe succeeds"
			}
			return true, ""
		})
		if err != nil {
			return err
		}
		a.log.Info("health endpoint listening", "addr", hs.Addr())
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_ = hs.Shutdown(ctx)
		}()
	}
	// MAPS_RATE_LIMITS are the account's: the live instances share them,
	// counted from their status documents.
	var share atomic.Int64
	share.Store(1)
	status := worker.NewStatusWriter(a.storage, eng, &worker.StatusOptions{
		Version: version, Every: s.StatusInterval, Logger: a.log,
		Peers: func(n int) {
			if share.Swap(int64(n)) != int64(n) {
				client.SetRateShare(n)
				a.log.Debug("Maps rate limits re-divided", "instances", n)
			}
		},
		Extra: func() any { return map[string]any{"rateShare": fmt.Sprintf("1/%d", share.Load())} },
	})
	status.Start()
	defer status.Stop()
	runErr := make(chan error, 1)
	// The engine runs on its own context: a stop is a Shutdown with a drain
	// budget, not a cancellation that would cut deletes short.
	go func() { runErr <- eng.Run(context.Background()) }()
	ended := make(chan runEnd, 1)
	if once != nil {
		go once.watch(ctx, eng.IdleFor, 100*time.Millisecond, ended)
	}

	var end runEnd
	select {
	case err := <-runErr:
		return err
	case <-ctx.Done():
		end.reason = "stop requested"
	case end = <-ended:
	}
	began := time.Now()
	stopping.Store(true)
	a.log.Info(end.reason+"; draining", "budget", s.DrainTimeout, "inFlight", eng.Stats().InFlight.Load())
	dctx, cancel := context.WithTimeout(context.Background(), s.DrainTimeout)
	defer cancel()
	err = eng.Shutdown(dctx)
	<-runErr
	st := eng.Stats()
	if errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("drain budget spent; unfinished messages were released",
			"released", st.Stopped.Load(), "took", time.Since(began).Round(time.Millisecond))
	} else {
		a.log.Info("stopped", "took", time.Since(began).Round(time.Millisecond),
			"succeeded", st.Succeeded.Load()+st.Duplicates.Load(), "poisoned", st.Poisoned.Load(),
			"released", st.Released.Load()+st.Paused.Load()+st.Stopped.Load())
	}
	if end.code != exitDone {
		return &exitError{end.code, "stopped by a fault: " + end.err}
	}
	return nil
}

// watchShutdownFile returns a context cancelled when the WebJobs runner
// creates its shutdown file (checked every 250ms; the runner waits
// stopping_wait_time seconds and then kills the process tree).
func watchShutdownFile(parent context.Context, path string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if _, err := os.Stat(path); err == nil {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ctx, cancel
}

// queueStats is the gauge callback of a queue's depth and oldest message.
func queueStats(q *worker.AzureQueue) telemetry.QueueStats {
	return func(ctx context.Context) (int64, time.Time, error) {
		st, err := q.Stats(ctx)
		return st.Depth, st.Oldest, err
	}
}

// rateLimitsText describes the client-side Maps rate limits for the log.
func rateLimitsText(limits map[string]int) string {
	switch {
	case limits == nil:
		return "gen2-defaults"
	case len(limits) == 0:
		return "off"
	}
	all := maps.DefaultRateLimits()
	for k, v := range limits {
		all[k] = v
	}
	// In the catalog's order: each limit once, named by its first API.
	var parts []string
	for _, a := range catalog.APIs {
		if qps, ok := all[a.Limit]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", a.Limit, qps))
			delete(all, a.Limit)
		}
	}
	return strings.Join(parts, ",")
}
