package telemetry

import (
	"errors"
	"testing"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	const ep = "http://collector:4318"
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		badName string // the variable an error names
	}{
		{"nothing set: off", nil, Config{}, ""},
		{"endpoint: both", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep}, Config{true, true}, ""},
		{"metrics endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ep + "/v1/metrics"}, Config{Metrics: true}, ""},
		{"traces endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ep + "/v1/traces"}, Config{Traces: true}, ""},
		{"disabled wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_SDK_DISABLED": "TRUE"}, Config{}, ""},
		{"disabled=false is not disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_SDK_DISABLED": "false"}, Config{true, true}, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_TRACES_EXPORTER": "none"}, Config{Metrics: true}, ""},
		{"exporter otlp, default endpoint", map[string]string{"OTEL_METRICS_EXPORTER": "otlp"}, Config{Metrics: true}, ""},
		{"exporter console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, Config{}, "OTEL_TRACES_EXPORTER"},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, Config{}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"per-signal protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "none"}, Config{Traces: true}, ""},
		{"grpc for an exporter that is off", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, Config{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.badName != "" {
				var e *EnvError
				if !errors.As(err, &e) || e.Name != tt.badName {
					t.Fatalf("error %v, want one naming %s", err, tt.badName)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("%+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
