package mapstest

import (
	"bytes"
	"crypto/subtle"
	"io"
	"mapsworker/jobs/maps/catalog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// APIVersion is the only api-version the Maps side accepts.
	APIVersion = "2025-01-01"

	unauthorizedMessage = "Access denied, please inspect WWW-Authenticate header."
	codeBadRequest      = "400 BadRequest"
	codeUnavailable     = "503 ServiceUnavailable"
	maxBodyBytes        = 8 << 20
	maxBatchItems       = 100
)

// Header values shared by all answers; net/http only reads them.
var (
	ctGeoJSON    = []string{"application/geo+json"}
	ctJSON       = []string{"application/json; charset=utf-8"}
	wwwBearer    = []string{"Bearer"}
	retryAfter1  = []string{"1"}
	body401      = errorBody("Unauthorized", unauthorizedMessage)
	body404      = errorBody("404 NotFound", "Resource not found.")
	body405      = errorBody("405 MethodNotAllowed", "The HTTP method is not allowed for this resource.")
	body429      = errorBody("429 TooManyRequests", "Rate limit is exceeded. Try again in 1 second.")
	bodyTooLarge = errorBody(codeBadRequest, "Request body is too large.")
	bodyInvalid  = errorBody(codeBadRequest, "Request body is invalid or empty")
)

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// serveMaps answers the Maps side. The order of the checks follows the
// real service as seen from a client: authentication, then outages and
// throttling, then the request itself.
func (s *Server) serveMaps(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if h := s.hook.Load(); h != nil {
		(*h)(r)
	}
	now := time.Now()
	api := apiOfPath(r.URL.Path)
	st := s.stats.Load()
	st.arrive(api, now)

	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	if !s.authorized(r, now) {
		w.Header()["Www-Authenticate"] = wwwBearer
		s.reply(w, st, http.StatusUnauthorized, ctJSON, body401)
		return
	}
	if api < 0 {
		s.reply(w, st, http.StatusNotFound, ctJSON, body404)
		return
	}
	if want := catalog.APIs[api].Method; r.Method != want {
		w.Header()["Allow"] = []string{want}
		s.reply(w, st, http.StatusMethodNotAllowed, ctJSON, body405)
		return
	}
	if f := s.fault.Load(); f != nil && f.mask&(1<<api) != 0 {
		if f.retryAfter != nil {
			w.Header()["Retry-After"] = f.retryAfter
		}
		if f.status == http.StatusUnauthorized {
			w.Header()["Www-Authenticate"] = wwwBearer
		}
		s.reply(w, st, f.status, ctJSON, f.body)
		return
	}
	if l := s.limits[api].Load(); l != nil && !l.allow(now) {
		w.Header()["Retry-After"] = retryAfter1
		s.reply(w, st, http.StatusTooManyRequests, ctJSON, body429)
		return
	}

	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.badRequest(w, st, "The query string is malformed.")
		return
	}
	switch v := q.Get("api-version"); v {
	case APIVersion:
	case "":
		s.badRequest(w, st, "The api-version query parameter is missing; this API requires api-version="+APIVersion+".")
		return
	default:
		s.badRequest(w, st, "The api-version '"+v+"' is not supported; use "+APIVersion+".")
		return
	}

	var body []byte
	if r.Method == http.MethodPost {
		buf := bodyPool.Get().(*bytes.Buffer)
		buf.Reset()
		defer bodyPool.Put(buf)
		n, err := buf.ReadFrom(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			s.reply(w, st, http.StatusBadRequest, ctJSON, bodyInvalid)
			return
		}
		if n > maxBodyBytes {
			s.reply(w, st, http.StatusRequestEntityTooLarge, ctJSON, bodyTooLarge)
			return
		}
		body = buf.Bytes()
	}
	answer := answers[catalog.APIs[api].Name]
	if answer == nil {
		s.reply(w, st, http.StatusNotFound, ctJSON, body404)
		return
	}
	answer(s, w, &request{st: st, q: q, body: body, header: r.Header, path: r.URL.Path})
}

// request is what an answer reads of a request: its query, its body (POST)
// and its headers, and the counters it answers into.
type request struct {
	st     *counters
	q      url.Values
	body   []byte
	header http.Header
	path   string // the URL path, for APIs with an {id} in it
}

// answers holds what answers each API of catalog.APIs, by its name: the one
// place a new API joins the emulator.
var answers = map[string]func(s *Server, w http.ResponseWriter, c *request){
	catalog.Geocode:        func(s *Server, w http.ResponseWriter, c *request) { s.geocode(w, c.st, c.q) },
	catalog.ReverseGeocode: func(s *Server, w http.ResponseWriter, c *request) { s.reverseGeocode(w, c.st, c.q) },
	catalog.Route:          func(s *Server, w http.ResponseWriter, c *request) { s.route(w, c) },
	catalog.GeocodeBatch:   func(s *Server, w http.ResponseWriter, c *request) { s.geocodeBatch(w, c.st, c.body) },
	catalog.RouteBatch:     func(s *Server, w http.ResponseWriter, c *request) { s.routeBatch(w, c) },
	catalog.ReverseGeocodeBatch: func(s *Server, w http.ResponseWriter, c *request) {
		s.reverseGeocodeBatch(w, c.st, c.body)
	},
	catalog.RouteMatrix:          func(s *Server, w http.ResponseWriter, c *request) { s.routeMatrix(w, c.st, c.body) },
	catalog.RouteMatrixAsync:     func(s *Server, w http.ResponseWriter, c *request) { s.routeMatrixAsync(w, c.st, c.body) },
	catalog.RouteOperation:       func(s *Server, w http.ResponseWriter, c *request) { s.routeOperation(w, c.st, c.path) },
	catalog.RouteOperationResult: func(s *Server, w http.ResponseWriter, c *request) { s.routeOperationResult(w, c.st, c.path) },
}

// authorized reports whether r carries the current shared key, or a valid
// token of this server together with the account's Client ID.
func (s *Server) authorized(r *http.Request, now time.Time) bool {
	// Canonical header names: direct map reads, no allocation.
	if k := r.Header["Subscription-Key"]; len(k) > 0 {
		want := s.sharedKey.Load()
		return want != nil && subtle.ConstantTimeCompare([]byte(k[0]), []byte(*want)) == 1
	}
	a := r.Header["Authorization"]
	if len(a) == 0 || len(a[0]) < 8 || !strings.EqualFold(a[0][:7], "Bearer ") {
		return false
	}
	if id := r.Header["X-Ms-Client-Id"]; len(id) == 0 || id[0] != s.ClientID {
		return false
	}
	return s.validMapsToken(a[0][7:], now.Unix())
}

// reply writes a complete answer and counts it.
func (s *Server) reply(w http.ResponseWriter, st *counters, status int, contentType []string, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Ms-Request-Id"] = []string{s.requestID()}
	w.WriteHeader(status)
	w.Write(body)
	st.answered(status)
}

func (s *Server) badRequest(w http.ResponseWriter, st *counters, msg string) {
	s.reply(w, st, http.StatusBadRequest, ctJSON, errorBody(codeBadRequest, msg))
}

// replyFeatures answers 200 with a GeoJSON FeatureCollection whose members
// after "type" write writes: the shape of every single call's answer.
func (s *Server) replyFeatures(w http.ResponseWriter, st *counters, write func(j *jbuf)) {
	j := getBuf()
	defer putBuf(j)
	j.raw(`{"type":"FeatureCollection",`)
	write(j)
	j.raw(`}`)
	s.reply(w, st, http.StatusOK, ctGeoJSON, j.b)
}
