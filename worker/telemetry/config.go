// Package telemetry exports the worker's metrics and traces with
// OpenTelemetry, over OTLP/HTTP, when the standard OTEL_* variables ask for
// it. Off by default: with none of them set it creates no exporter and
// installs no hook, so the engine runs as without it.
package telemetry

import (
	"fmt"
	"strings"
)

// Config says which signals are exported.
type Config struct {
	Traces, Metrics bool
}

// Enabled reports whether any signal is exported.
func (c Config) Enabled() bool { return c.Traces || c.Metrics }

// EnvError names an OTEL_* variable whose value the worker cannot honour.
type EnvError struct {
	Name, Problem string
}

func (e *EnvError) Error() string { return e.Name + ": " + e.Problem }

// ConfigFromEnv reads which signals to export, as the OpenTelemetry
// specification gives the variables their meaning:
//
//   - OTEL_SDK_DISABLED=true turns everything off;
//   - OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER: "otlp" on, "none" off;
//   - unset, a signal is on when an OTLP endpoint is configured for it
//     (OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT), so that nothing is sent to the
//     specification's default localhost:4318 unasked;
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and the per-signal ones) must be
//     http/protobuf, the only protocol this build speaks.
//
// The exporters themselves read the rest (headers, timeout, compression,
// certificates, temporality), and the SDK the sampler, the export interval
// and the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return c, nil
	}
	var err error
	if c.Traces, err = signalOn(getenv, "TRACES"); err != nil {
		return Config{}, err
	}
	if c.Metrics, err = signalOn(getenv, "METRICS"); err != nil {
		return Config{}, err
	}
	return c, nil
}

func signalOn(getenv func(string) string, signal string) (bool, error) {
	name := "OTEL_" + signal + "_EXPORTER"
	on := false
	switch v := strings.TrimSpace(getenv(name)); v {
	case "none":
		return false, nil
	case "otlp":
		on = true
	case "":
		on = getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
	default:
		return false, &EnvError{name, fmt.Sprintf("%q is not supported (otlp or none)", v)}
	}
	if !on {
		return false, nil
	}
	for _, p := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		switch v := strings.TrimSpace(getenv(p)); v {
		case "":
			continue
		case "http/protobuf":
		default:
			return false, &EnvError{p, fmt.Sprintf("%q is not supported (http/protobuf only)", v)}
		}
		break // the per-signal variable wins over the general one
	}
	return true, nil
}
