package maps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"mapsworker/jobs/maps/catalog"
)

// MatrixRequest is one Route Matrix request (api-version 2025-01-01), for
// the synchronous POST /route/matrix and the asynchronous
// POST /route/matrix:async alike. Zero values leave the service's defaults.
type MatrixRequest struct {
	Origins, Destinations []Position
	TravelMode            string // driving | truck | walking; "" is driving
	// OptimizeRoute is "fastest" (the default; the only value of the sync
	// API) or "shortest" (async only).
	OptimizeRoute string
	// Traffic is "historical" (the default) or "live".
	Traffic string
	// RouteOptions are the options Route Matrix shares with Route
	// Directions, with the matrix's own values: DepartAt is a date-time,
	// "any" or "now"; ArriveAt a date-time or "any"; Avoid takes only
	// tollRoads and unpavedRoads; VehicleSpec has no AxleCount.
	RouteOptions
}

// Cells returns the number of cells of the matrix: origins × destinations.
func (r *MatrixRequest) Cells() int { return len(r.Origins) * len(r.Destinations) }

// matrixBody is the Route Matrix request: a FeatureCollection of two
// MultiPoint features, the origins and the destinations, plus the options.
type matrixBody struct {
	Type          string          `json:"type"`
	Features      []matrixFeature `json:"features"`
	TravelMode    string          `json:"travelMode,omitempty"`
	OptimizeRoute string          `json:"optimizeRoute,omitempty"`
	Traffic       string          `json:"traffic,omitempty"`
	RouteOptions
}

type matrixFeature struct {
	Type       string             `json:"type"`
	Geometry   multiPointGeometry `json:"geometry"`
	Properties matrixProperties   `json:"properties"`
}

type multiPointGeometry struct {
	Type        string       `json:"type"`
	Coordinates [][2]float64 `json:"coordinates"` // [lon, lat] each
}

type matrixProperties struct {
	PointType string `json:"pointType"` // origins | destinations
}

// Body returns the request body as JSON, as it is sent: the same request
// gives the same bytes, so that callers can fingerprint it.
func (r *MatrixRequest) Body() ([]byte, error) { return json.Marshal(r.body()) }

func (r *MatrixRequest) body() matrixBody {
	points := func(ps []Position, pointType string) matrixFeature {
		c := make([][2]float64, len(ps))
		for i, p := range ps {
			c[i] = [2]float64{p.Lon, p.Lat}
		}
		return matrixFeature{
			Type:       "Feature",
			Geometry:   multiPointGeometry{Type: "MultiPoint", Coordinates: c},
			Properties: matrixProperties{PointType: pointType},
		}
	}
	return matrixBody{
		Type:          "FeatureCollection",
		Features:      []matrixFeature{points(r.Origins, "origins"), points(r.Destinations, "destinations")},
		TravelMode:    r.TravelMode,
		OptimizeRoute: r.OptimizeRoute,
		Traffic:       r.Traffic,
		RouteOptions:  r.RouteOptions,
	}
}

// pathRouteOperations leads the path of an operation's status and result.
const pathRouteOperations = "/route/operations/"

// RouteMatrix computes a matrix synchronously (POST /route/matrix): up to
// 2,500 cells, within the limits the service documents for the options
// used. The answer is a Feature whose properties hold the matrix (a cell per
// origin and destination, each with its statusCode and either the distance
// and durations or an error) and a summary.
func (c *Client) RouteMatrix(ctx context.Context, r MatrixRequest) (*Response, error) {
	req, err := c.post(ctx, c.url(catalog.RouteMatrix), r.body())
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

// Operation is an asynchronous request the service accepted.
type Operation struct {
	// Location is the URL of the operation's status (the Operation-Location
	// header), on the client's endpoint or a geography of its service.
	Location string
	// ID is the operation's id, the last segment of Location's path.
	ID string
	// RetryAfter is how long the service asked the caller to wait before
	// asking for the status; 0 if it did not say.
	RetryAfter time.Duration
	// RequestID is the submission's x-ms-request-id.
	RequestID string
}

// RouteMatrixSubmit submits a matrix for asynchronous computation
// (POST /route/matrix:async): up to 50,000 cells. The service answers 202
// with the operation's status URL; RouteOperation polls it. The service keeps
// an operation and its result for 24 hours.
func (c *Client) RouteMatrixSubmit(ctx context.Context, r MatrixRequest) (*Operation, error) {
	req, err := c.post(ctx, c.url(catalog.RouteMatrixAsync), r.body())
	if err != nil {
		return nil, err
	}
	resp, err := c.pl.Do(req)
	if err != nil {
		return nil, pipelineError(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newResponseError(resp)
	}
	// A 202 has no body worth reading; drain it so the connection is reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	rid := resp.Header.Get(headerRequestID)
	loc := resp.Header.Get("Operation-Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return nil, &ProtocolError{fmt.Sprintf("maps: route matrix submission answered %d without an Operation-Location (x-ms-request-id %s)", resp.StatusCode, rid)}
	}
	loc, id, err := c.operationURL(loc, false)
	if err != nil {
		return nil, fmt.Errorf("%w (x-ms-request-id %s)", err, rid)
	}
	return &Operation{Location: loc, ID: id, RetryAfter: RetryAfter(&azcore.ResponseError{RawResponse: resp}), RequestID: rid}, nil
}

// OperationStatus is the status of an asynchronous operation
// (GET /route/operations/{id}).
type OperationStatus struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`   // RouteMatrix
	Status string `json:"status"` // NotStarted, Running, Completed or Failed
	Result *struct {
		ResultURL string `json:"resultUrl"`
	} `json:"result"`
	// Error says why a Failed operation failed.
	Error *ItemError `json:"error"`

	// RetryAfter is how long the service asked the caller to wait before
	// asking again; 0 if it did not say.
	RetryAfter time.Duration `json:"-"`
	RequestID  string        `json:"-"`
	// location is the status URL the status was read from.
	location string
}

// Done reports whether the operation completed and its result can be
// fetched. The 2025-01-01 API names that status "Completed"; its
// description says "Succeeded", which is taken too.
func (s *OperationStatus) Done() bool {
	return strings.EqualFold(s.Status, "Completed") || strings.EqualFold(s.Status, "Succeeded")
}

// Failed reports whether the operation ended without a result.
func (s *OperationStatus) Failed() bool {
	return strings.EqualFold(s.Status, "Failed") || strings.EqualFold(s.Status, "Canceled") || strings.EqualFold(s.Status, "Cancelled")
}

// ResultURL returns the URL of a completed operation's result: the
// resultUrl the service gave, held to the client's service as the status URL
// is, or else the status URL with "/result".
func (s *OperationStatus) ResultURL() string {
	if s.Result != nil && s.Result.ResultURL != "" {
		return s.Result.ResultURL
	}
	u, err := url.Parse(s.location)
	if err != nil {
		return s.location
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/result"
	return u.String()
}

// RouteOperation reads the status of the operation at location, the
// Operation.Location of a submission (or one kept from an earlier process).
// An operation the service does not know (never submitted, or older than 24
// hours) is a 404 *azcore.ResponseError: see IsNotFound.
//
// The client sends its credential only to its own service: a location on
// another host than the client's endpoint or a geography of the same service
// (us.atlas.microsoft.com for atlas.microsoft.com) is asked of the client's
// endpoint instead. The api-version is always the client's.
func (c *Client) RouteOperation(ctx context.Context, location string) (*OperationStatus, error) {
	loc, _, err := c.operationURL(location, false)
	if err != nil {
		return nil, err
	}
	resp, err := c.getJSON(ctx, loc)
	if err != nil {
		return nil, err
	}
	var s OperationStatus
	if err := json.Unmarshal(resp.Body, &s); err != nil {
		return nil, &ProtocolError{fmt.Sprintf("maps: the operation status is not JSON: %v (x-ms-request-id %s)", err, resp.RequestID)}
	}
	s.RequestID, s.RetryAfter, s.location = resp.RequestID, resp.retryAfter, loc
	if s.Result != nil && s.Result.ResultURL != "" {
		if s.Result.ResultURL, _, err = c.operationURL(s.Result.ResultURL, true); err != nil {
			return nil, fmt.Errorf("%w (x-ms-request-id %s)", err, resp.RequestID)
		}
	}
	return &s, nil
}

// RouteOperationResult fetches the result of a completed operation
// (GET /route/operations/{id}/result), at OperationStatus.ResultURL. The
// answer is the matrix, as RouteMatrix answers it, with "kind": "RouteMatrix".
// A result no longer kept is a 404 *azcore.ResponseError.
func (c *Client) RouteOperationResult(ctx context.Context, resultURL string) (*Response, error) {
	loc, _, err := c.operationURL(resultURL, true)
	if err != nil {
		return nil, err
	}
	resp, err := c.getJSON(ctx, loc)
	if err != nil {
		return nil, err
	}
	return &resp.Response, nil
}

type jsonResponse struct {
	Response
	retryAfter time.Duration
}

// getJSON sends a GET to the absolute URL u and returns a 2xx answer.
func (c *Client) getJSON(ctx context.Context, u string) (*jsonResponse, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, u)
	if err != nil {
		return nil, err
	}
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := c.pl.Do(req)
	if err != nil {
		return nil, pipelineError(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newResponseError(resp)
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return nil, err
	}
	return &jsonResponse{
		Response:   Response{StatusCode: resp.StatusCode, RequestID: resp.Header.Get(headerRequestID), Body: body},
		retryAfter: RetryAfter(&azcore.ResponseError{RawResponse: resp}),
	}, nil
}

// operationURL checks an operation's status URL (result false) or result URL
// (result true) as the service gave it and returns the URL to ask, with the
// operation's id: https, a path ending /route/operations/{id} (and /result),
// on the client's own service, at the client's api-version.
func (c *Client) operationURL(raw string, result bool) (string, string, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", "", &ProtocolError{fmt.Sprintf("maps: operation URL %q is not an absolute URL", clip(raw))}
	}
	p := u.Path
	if result {
		if !strings.HasSuffix(p, "/result") {
			return "", "", &ProtocolError{fmt.Sprintf("maps: result URL path %q does not end in /result", clip(p))}
		}
		p = strings.TrimSuffix(p, "/result")
	}
	i := strings.LastIndex(p, pathRouteOperations)
	id := ""
	if i >= 0 {
		id = p[i+len(pathRouteOperations):]
	}
	if id == "" || strings.Contains(id, "/") {
		return "", "", &ProtocolError{fmt.Sprintf("maps: operation URL path %q is not …/route/operations/{id}", clip(u.Path))}
	}
	ep, err := url.Parse(c.endpoint)
	if err != nil {
		return "", "", err
	}
	if !strings.EqualFold(u.Scheme, "https") || !sameService(u.Host, ep.Host) {
		// Never send the credential elsewhere: ask the client's own
		// endpoint for the same operation.
		u.Scheme, u.Host = ep.Scheme, ep.Host
	}
	u.User, u.Fragment, u.RawFragment = nil, "", ""
	q := u.Query()
	q.Set("api-version", APIVersion)
	u.RawQuery = q.Encode()
	return u.String(), id, nil
}

// sameService reports whether host a is b or a geography of the same Azure
// Maps service: atlas.microsoft.com, us.atlas.microsoft.com and
// eu.atlas.microsoft.com are one service; so are the sovereign clouds' own.
func sameService(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	domain := func(h string) string {
		h = strings.ToLower(h)
		if strings.HasPrefix(h, "atlas.") {
			return h
		}
		if i := strings.Index(h, ".atlas."); i >= 0 && !strings.Contains(h[:i], ".") {
			return h[i+1:]
		}
		return ""
	}
	da := domain(a)
	return da != "" && da == domain(b)
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// ProtocolError is a 2xx answer that does not follow the API: a submission
// without an Operation-Location, a status that is not JSON, an operation URL
// of another shape.
type ProtocolError struct{ msg string }

func (e *ProtocolError) Error() string { return e.msg }

// NonRetriable tells azcore's retry policy not to retry: the engine decides.
func (*ProtocolError) NonRetriable() {}

// IsNotFound reports whether err is Azure Maps' 404: for an operation, that
// it is unknown or expired (the service keeps operations 24 hours).
func IsNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
