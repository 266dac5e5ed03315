package telemetry

import (
	"context"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"mapsworker/internal/redact"
)

// Span attributes of an HTTP call, as the Azure SDK's own spans name them.
const (
	AttrServiceRequestID = "az.service_request_id" // the x-ms-request-id answered
	AttrClientRequestID  = "az.client_request_id"  // the x-ms-client-request-id sent
	AttrMapsAPI          = "maps.api"
)

// MapsPolicy returns an azcore per-retry policy for the Azure Maps client:
// each HTTP request is counted by API and status (with its duration and
// 429s) and, under a message's span, traced as a child span with the request
// id Maps answered. Nil while telemetry is off.
func (t *Telemetry) MapsPolicy() policy.Policy {
	if !t.cfg.Enabled() {
		return nil
	}
	return &callPolicy{t: t, maps: true}
}

// StoragePolicy returns an azcore per-retry policy for the storage clients:
// under a message's span, each HTTP request is a child span with the request
// id storage answered. (azqueue and azblob start no spans of their own.)
// Requests outside a message (polls) are not traced, so that a trace is a
// message. Nil while traces are off.
func (t *Telemetry) StoragePolicy() policy.Policy {
	if t.tracer == nil {
		return nil
	}
	return &callPolicy{t: t}
}

type callPolicy struct {
	t    *Telemetry
	maps bool
}

// Do implements policy.Policy.
func (p *callPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	api := ""
	if p.maps {
		api = p.t.opts.MapsAPI(raw.URL.Path)
	}
	var span trace.Span
	// A child of the delivery's span even when it has ended: the engine
	// deletes a settled message after the fact.
	if p.t.tracer != nil && trace.SpanContextFromContext(raw.Context()).IsValid() {
		name := "storage " + raw.Method
		if p.maps {
			name = "maps " + api
		}
		var ctx context.Context
		ctx, span = p.t.tracer.Start(raw.Context(), name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(
				attribute.String("http.request.method", raw.Method),
				attribute.String("url.full", redact.URL(raw.URL.String())),
				attribute.String("server.address", raw.URL.Hostname())))
		if api != "" {
			span.SetAttributes(attribute.String(AttrMapsAPI, api))
		}
		if id := raw.Header.Get("x-ms-client-request-id"); id != "" {
			span.SetAttributes(attribute.String(AttrClientRequestID, id))
		}
		req = req.WithContext(ctx)
	}
	start := time.Now()
	resp, err := req.Next()
	elapsed := time.Since(start)
	if span != nil {
		if resp != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
			if id := resp.Header.Get("x-ms-request-id"); id != "" {
				span.SetAttributes(attribute.String(AttrServiceRequestID, id))
			}
			if resp.StatusCode >= 400 {
				span.SetStatus(codes.Error, resp.Status)
			}
		} else if err != nil {
			span.SetAttributes(attribute.String("error.type", "transport"))
			span.SetStatus(codes.Error, "no response")
		}
		span.End()
	}
	if p.maps && p.t.cfg.Metrics {
		p.t.recordMapsCall(api, resp, elapsed)
	}
	return resp, err
}

func (t *Telemetry) recordMapsCall(api string, resp *http.Response, d time.Duration) {
	ctx := context.Background()
	a := attribute.String(AttrMapsAPI, api)
	status := attribute.String("error.type", "transport")
	if resp != nil {
		status = attribute.Int("http.response.status_code", resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			t.inst.mapsThrottled.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(a)))
		}
	}
	t.inst.mapsRequests.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(a, status)))
	t.inst.mapsDuration.Record(ctx, d.Seconds(), metric.WithAttributeSet(attribute.NewSet(a)))
}
