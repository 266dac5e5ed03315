package telemetry

import (
	"bytes"
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"mapsworker/worker"
)

// Span attributes of a message's span.
const (
	AttrKind         = "mapsworker.kind"
	AttrRequestID    = "mapsworker.request.id" // the request's own "id"
	AttrOutcome      = "mapsworker.outcome"
	AttrDequeueCount = "mapsworker.dequeue_count"
)

// producerContext is the part of a request message a producer may set to
// carry its trace: W3C Trace Context, as in the HTTP headers.
type producerContext struct {
	Traceparent string `json:"traceparent"`
	Tracestate  string `json:"tracestate"`
}

// Observe starts a delivery's span; it is meant for worker.Options.Observe,
// and is nil while traces are off, so that the engine does no work for it.
// The span is a child of the producer's span when the request JSON carries
// a "traceparent" field (and optionally "tracestate"), else a new trace.
func (t *Telemetry) Observe() func(context.Context, *worker.Message) (context.Context, func(worker.Outcome)) {
	if t.tracer == nil {
		return nil
	}
	return t.observeDelivery
}

func (t *Telemetry) observeDelivery(ctx context.Context, m *worker.Message) (context.Context, func(worker.Outcome)) {
	if body, err := worker.DecodeBody(m.Original()); err == nil && bytes.Contains(body, []byte(`"traceparent"`)) {
		var pc producerContext
		if json.Unmarshal(body, &pc) == nil && pc.Traceparent != "" {
			ctx = t.prop.Extract(ctx, propagation.MapCarrier{"traceparent": pc.Traceparent, "tracestate": pc.Tracestate})
		}
	}
	ctx, span := t.tracer.Start(ctx, "process "+t.opts.Queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", t.opts.Queue),
			attribute.String("messaging.message.id", m.ID),
			attribute.Int64(AttrDequeueCount, m.DequeueCount)))
	return ctx, func(o worker.Outcome) {
		span.SetAttributes(attribute.String(AttrKind, t.kind(o.Kind)), attribute.String(AttrOutcome, o.Result))
		if o.ID != "" {
			span.SetAttributes(attribute.String(AttrRequestID, o.ID))
		}
		if o.Err != nil {
			span.SetAttributes(attribute.String("error.type", worker.ClassOf(o.Err).String()))
			span.SetStatus(codes.Error, o.Err.Error())
		}
		span.End(trace.WithTimestamp(o.End))
	}
}
