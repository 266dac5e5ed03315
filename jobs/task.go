package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

const codeBadResponse = "BadResponse"

// task is one decoded request of a kind. Its call is set unless invalid is:
// then the task only names a failed result.
type task struct {
	id      string
	kind    kind
	request json.RawMessage
	call    call
	invalid error
}

var _ worker.Prober = (*task)(nil)

func (t *task) ID() string               { return t.id }
func (t *task) Kind() string             { return t.kind.name() }
func (t *task) Request() json.RawMessage { return t.request }

// Run calls Azure Maps once and leaves retrying to the engine, which decides
// by the class of the error. It keeps no state between calls and so can run
// again after a transient error.
func (t *task) Run(ctx context.Context) (*worker.Output, error) {
	if t.invalid != nil {
		// The engine never runs an invalid task; should it, the task
		// fails the way its decoding did rather than calling Maps.
		return nil, t.invalid
	}
	if t.call == nil {
		return nil, fmt.Errorf("jobs: %s task %s has no request", t.kind.name(), t.id)
	}
	// Waiting for a Maps rate slot is no work: the worker may take the
	// next message meanwhile.
	return t.call.run(maps.OnRateWait(ctx, func() { worker.Waiting(ctx) }))
}

// Probe implements [worker.Prober]: it asks Azure Maps the kind's known-good
// request, so that the engine can tell an outage (the probe fails too) from
// requests that fail on their own (it succeeds). A probe that succeeds is
// billed as one transaction; the engine probes only when requests of a kind
// fail and nothing of the kind has succeeded since, one probe of a kind at a
// time.
func (t *task) Probe(ctx context.Context) error {
	_, err := t.kind.probe().run(ctx)
	if worker.CodeOf(err) == codeBadResponse {
		// The service answered 2xx: it is up, whatever it said.
		return nil
	}
	return err
}

// output turns a Maps answer into the task's output, or classifies its error:
// the common end of every kind's run.
func output[S any](resp *maps.Response, err error, summarize func([]byte) (S, error)) (*worker.Output, error) {
	if err != nil {
		return nil, classify(err)
	}
	if resp == nil || !json.Valid(resp.Body) {
		return nil, badResponse(resp, errors.New("the body is not JSON"))
	}
	summary, err := summarize(resp.Body)
	if err != nil {
		return nil, badResponse(resp, err)
	}
	return &worker.Output{Summary: summary, Response: resp.Body}, nil
}

// badResponse is a 2xx answer the worker cannot read. It is transient:
// a truncated or garbled body is usually a passing fault, and one that is
// not poisons after the usual number of deliveries.
func badResponse(resp *maps.Response, err error) error {
	if resp == nil {
		return worker.Transient(codeBadResponse, fmt.Errorf("Azure Maps answered with no response: %w", err))
	}
	return worker.Transient(codeBadResponse, fmt.Errorf("Azure Maps answered %d with an unreadable body: %w%s", resp.StatusCode, err, requestIDSuffix(resp.RequestID)))
}

// featureCollection is the part of a GeoJSON answer the summaries read.
type featureCollection[P any] struct {
	Type     string `json:"type"`
	Features []struct {
		Geometry struct {
			Coordinates json.RawMessage `json:"coordinates"`
		} `json:"geometry"`
		Properties P `json:"properties"`
	} `json:"features"`
}
