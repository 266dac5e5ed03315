// Package jobs turns queue messages into Azure Maps requests. It decodes and
// validates the kinds of request (geocode, reverse-geocode, route,
// route-matrix; one file each, listed in kind.go),
// runs them against Azure Maps and sorts every failure into one of the
// worker's error classes. It knows nothing of queues: the worker engine hands
// it a message body and gets back a [worker.Task] or a classified error.
//
// An invalid request is reported with [worker.Invalidf] and one of these
// stable codes, which end up in failed results and poison envelopes:
//
//	TooLarge              the body is larger than the limit (64 KiB by default)
//	NotUTF8               the body is not valid UTF-8
//	TooDeep               the JSON nests deeper than 32 levels
//	InvalidJSON           the body is not one JSON object
//	InvalidID             the id is not 1-128 of [A-Za-z0-9._-] not starting with '.'
//	MissingField          a required field is absent, null or blank
//	UnknownKind           the kind is not one of KindNames
//	WrongType             a field has the wrong JSON type ("top": "1")
//	OutOfRange            a number is out of its range, or overflows a float64
//	TooLong               a text field is longer than 2048 characters
//	InvalidValue          a field is not one of its allowed values or formats
//	ConflictingParameters fields that cannot be used together
//	TooFewWaypoints       a route with fewer than 2 waypoints
//	TooManyWaypoints      a route with more waypoints than its travel mode allows
//	TooManyCells          a route matrix larger than the matrix APIs take
//
// A failed run carries the error code of Azure Maps' answer ("400 BadRequest",
// "Unauthorized") or one of TokenUnavailable, Canceled, Timeout, NetworkError,
// MapsCallFailed and BadResponse (a 2xx answer the worker cannot read); a
// route matrix's asynchronous operation adds OperationFailed, OperationLost
// and CheckpointUnavailable.
package jobs

import (
	"bytes"
	"context"
	"encoding/json"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// DefaultMaxBodyBytes is the largest message body Decode accepts unless
// HandlerOptions say otherwise. It is the largest message a Storage queue
// holds, so a body beyond it was not produced by a well-behaved producer.
const DefaultMaxBodyBytes = 64 << 10

// Maps is the part of the Azure Maps client the jobs use. *maps.Client
// satisfies it; tests substitute a fake.
//
// A non-2xx answer is returned as an *azcore.ResponseError; a credential that
// could not get a token as an error wrapping a *maps.TokenError.
type Maps interface {
	Geocode(ctx context.Context, q maps.GeocodeQuery) (*maps.Response, error)
	ReverseGeocode(ctx context.Context, q maps.ReverseGeocodeQuery) (*maps.Response, error)
	RouteDirections(ctx context.Context, r maps.RouteRequest) (*maps.Response, error)
}

// HandlerOptions configure a Handler. The zero value, like a nil
// *HandlerOptions, gives the defaults.
type HandlerOptions struct {
	// MaxBodyBytes is the largest body Decode accepts; 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int

	// Batch lets geocode and route requests that cannot go out at once
	// (no free rate slot, or many calls under way) gather and go together
	// as one POST /geocode:batch or /route/directions:batch when a call
	// ends (the Maps client must implement BatchMaps and rate-limit); a
	// request that finds capacity goes alone at once. A refused batch
	// endpoint means single calls from then on.
	Batch bool
	// BatchMax is the most items in one batch, up to and by default
	// DefaultBatchMax.
	BatchMax int

	// Checkpoints keep the state of long-running requests (an asynchronous
	// route matrix's operation) across deliveries, so that a crash or a
	// stop resumes the operation instead of submitting and paying for it
	// again. Nil keeps them in this process only.
	Checkpoints Checkpoints
}

// Handler decodes request messages into tasks that call Azure Maps.
// It implements [worker.Handler] and is safe for concurrent use.
type Handler struct {
	maxBody int
	kinds   map[string]kind
}

var _ worker.Handler = (*Handler)(nil)

// NewHandler returns a Handler whose tasks call m. opts may be nil.
func NewHandler(m Maps, opts *HandlerOptions) *Handler {
	h := &Handler{maxBody: DefaultMaxBodyBytes}
	e := &env{maps: m}
	if opts != nil {
		if opts.MaxBodyBytes > 0 {
			h.maxBody = opts.MaxBodyBytes
		}
		e.batch, e.batchMax = opts.Batch, opts.BatchMax
		e.checkpoints = opts.Checkpoints
	}
	h.kinds = buildKinds(e)
	return h
}

// Decode decodes and validates one request message (UTF-8 JSON, already
// base64-decoded by the engine). messageID, the queue's id for the message,
// names the result when the request has no "id".
//
// Every error Decode returns is marked [worker.ClassInvalid]. When the request
// is invalid but its name is usable, Decode also returns a Task, never to be
// run, so that the engine can write the failed result at <kind>/<id>.json.
// The name is usable when the kind is known and either the id is valid or,
// if the request has no id or an invalid one, messageID is valid. An invalid
// explicit id never names anything: an unsafe string must not become a blob
// name, so the failed result of such a request is named by messageID, and
// there is none if messageID is not a valid id either.
func (h *Handler) Decode(body []byte, messageID string) (worker.Task, error) {
	// A UTF-8 byte order mark is not JSON, but some producers (.NET's
	// Encoding.UTF8 among them) write one; it carries no meaning, so drop it.
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	fields, err := parseObject(body, h.maxBody)
	if err != nil {
		return nil, err
	}

	id, idErr := decodeID(fields, messageID)
	k, kindErr := h.decodeKind(fields)
	switch {
	case kindErr != nil && idErr != nil:
		return nil, idErr
	case kindErr != nil:
		return nil, kindErr
	case idErr != nil && !ValidID(messageID):
		return nil, idErr
	case idErr != nil:
		id = messageID
	}

	t := &task{
		id:      id,
		kind:    k,
		request: json.RawMessage(bytes.Clone(body)),
		invalid: idErr,
	}
	if t.invalid != nil {
		return t, t.invalid
	}
	if t.call, err = k.decode(fields); err != nil {
		t.invalid = err
		return t, err
	}
	return t, nil
}

// decodeKind returns the kind the request names.
func (h *Handler) decodeKind(f fields) (kind, error) {
	raw, ok := f.get("kind")
	if !ok {
		return nil, worker.Invalidf(codeMissingField, "kind is required: %s", kindList())
	}
	name, err := decodeString("kind", raw)
	if err != nil {
		return nil, err
	}
	if k, ok := h.kinds[name]; ok {
		return k, nil
	}
	return nil, worker.Invalidf(codeUnknownKind, "kind %s is not %s", quote(name), kindList())
}

// ValidID reports whether id can name a result: 1 to 128 characters of
// [A-Za-z0-9._-], not starting with '.'. Such a name cannot climb out of
// its folder ("..", "/"), hide ("."), or need escaping in a blob URL.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
