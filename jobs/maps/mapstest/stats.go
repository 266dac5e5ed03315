package mapstest

import (
	"fmt"
	"mapsworker/jobs/maps/catalog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Names of the Azure Maps APIs the emulator serves (those of catalog.APIs), as
// used by Stats, SetRateLimit and Fault.Paths. Those functions also accept
// the URL paths ("/geocode", "/route/directions:batch", …).
const (
	APIGeocode        = catalog.Geocode
	APIReverseGeocode = catalog.ReverseGeocode
	APIRoute          = catalog.Route
	APIGeocodeBatch   = catalog.GeocodeBatch
	APIRouteBatch     = catalog.RouteBatch
)

// maxAPIs bounds len(catalog.APIs), for the counters' fixed arrays.
const maxAPIs = 32

var numAPIs = len(catalog.APIs)

func init() {
	if numAPIs > maxAPIs {
		panic("mapstest: more APIs in catalog.APIs than maxAPIs")
	}
}

// apiOfPath returns the index in catalog.APIs of the API served at a request
// path, or -1. The path must be the API's exactly: the emulator serves the
// APIs at its root, so a longer path that merely ends like one is not it.
func apiOfPath(p string) int {
	a := catalog.Of(p)
	if a == nil || strings.Count(p, "/") != strings.Count(a.Path, "/") {
		return -1
	}
	for i := range catalog.APIs {
		if &catalog.APIs[i] == a {
			return i
		}
	}
	return -1
}

// apiIndex resolves an API name or URL path given by a caller. It panics on
// an unknown name: that is a mistake in a test or a flag, better seen at once.
func apiIndex(name string) int {
	var names []string
	for i, a := range catalog.APIs {
		if strings.EqualFold(name, a.Name) || name == a.Path {
			return i
		}
		names = append(names, a.Name)
	}
	panic(fmt.Sprintf("mapstest: unknown API %q (want one of %s or a URL path)", name, strings.Join(names, ", ")))
}

// Stats is a snapshot of the requests the Maps side received since the
// server started or since the last ResetStats.
type Stats struct {
	// Since is when counting started.
	Since time.Time
	// Requests counts every Maps request, whatever its path or answer.
	Requests int64
	// PerPath counts requests per API: the keys are APIGeocode,
	// APIReverseGeocode, APIRoute, APIGeocodeBatch and APIRouteBatch.
	PerPath map[string]int64
	// Answers by status class. Status4xx counts every 4xx but 429, which
	// Status429 counts; Unauthorized counts the 401s among Status4xx.
	Status2xx, Status4xx, Status429, Status5xx int64
	Unauthorized                               int64
	// BatchItems counts the items of the batch requests answered 200.
	BatchItems int64

	perSecond [maxAPIs + 1][]int
}

// PerSecond returns the number of requests to path (an API name or URL path;
// "" for all Maps requests) that arrived in each wall-clock second, index 0
// being the second in which counting started. Seconds without requests are 0.
// It panics on an unknown path.
func (st Stats) PerSecond(path string) []int {
	i := maxAPIs
	if path != "" {
		i = apiIndex(path)
	}
	return st.perSecond[i]
}

// counters are the live counts behind Stats. ResetStats swaps in a new set,
// so that counting never takes a global lock.
type counters struct {
	start    time.Time
	startSec int64

	total      atomic.Int64
	perAPI     [maxAPIs]atomic.Int64
	s2xx       atomic.Int64
	s4xx       atomic.Int64
	s401       atomic.Int64
	s429       atomic.Int64
	s5xx       atomic.Int64
	batchItems atomic.Int64

	secs [maxAPIs + 1]secondCounts
}

// secondCounts counts arrivals per wall-clock second.
type secondCounts struct {
	mu sync.Mutex
	n  []int32
}

// maxSeconds bounds the per-second history (a day); later seconds are not
// recorded per second, only in the totals.
const maxSeconds = 24 * 60 * 60

func (c *secondCounts) add(i int) {
	if i < 0 || i >= maxSeconds {
		return
	}
	c.mu.Lock()
	if i >= len(c.n) {
		if i < cap(c.n) {
			c.n = c.n[:i+1]
		} else {
			n := make([]int32, i+1, 2*(i+1)+16)
			copy(n, c.n)
			c.n = n
		}
	}
	c.n[i]++
	c.mu.Unlock()
}

func (c *secondCounts) snapshot(upTo int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if upTo > maxSeconds {
		upTo = maxSeconds
	}
	if upTo < len(c.n) {
		upTo = len(c.n)
	}
	out := make([]int, upTo)
	for i, v := range c.n {
		out[i] = int(v)
	}
	return out
}

func newCounters(now time.Time) *counters {
	return &counters{start: now, startSec: now.Unix()}
}

// arrive counts a request to api (-1 for an unknown path) arriving at now.
func (c *counters) arrive(api int, now time.Time) {
	c.total.Add(1)
	sec := int(now.Unix() - c.startSec)
	c.secs[maxAPIs].add(sec)
	if api >= 0 {
		c.perAPI[api].Add(1)
		c.secs[api].add(sec)
	}
}

// answered counts an answer by its status.
func (c *counters) answered(status int) {
	switch {
	case status < 300:
		c.s2xx.Add(1)
	case status == http.StatusTooManyRequests:
		c.s429.Add(1)
	case status < 500:
		c.s4xx.Add(1)
		if status == http.StatusUnauthorized {
			c.s401.Add(1)
		}
	default:
		c.s5xx.Add(1)
	}
}

func (c *counters) snapshot(now time.Time) Stats {
	st := Stats{
		Since:        c.start,
		Requests:     c.total.Load(),
		PerPath:      make(map[string]int64, numAPIs),
		Status2xx:    c.s2xx.Load(),
		Status4xx:    c.s4xx.Load(),
		Status429:    c.s429.Load(),
		Status5xx:    c.s5xx.Load(),
		Unauthorized: c.s401.Load(),
		BatchItems:   c.batchItems.Load(),
	}
	for i := range numAPIs {
		st.PerPath[catalog.APIs[i].Name] = c.perAPI[i].Load()
	}
	upTo := int(now.Unix()-c.startSec) + 1
	for i := range c.secs {
		st.perSecond[i] = c.secs[i].snapshot(upTo)
	}
	return st
}

// limiter enforces a per-API requests-per-second limit over wall-clock
// one-second windows, the way Azure Maps' per-account QPS limits behave as
// seen from a client: over the limit, 429 with Retry-After: 1.
type limiter struct {
	qps int
	mu  sync.Mutex
	sec int64
	n   int
}

func (l *limiter) allow(now time.Time) bool {
	sec := now.Unix()
	l.mu.Lock()
	if sec != l.sec {
		l.sec, l.n = sec, 0
	}
	l.n++
	ok := l.n <= l.qps
	l.mu.Unlock()
	return ok
}

// Fault makes the Maps side answer every request (or those to Paths) with an
// error, after authentication, as the real service does in an outage or
// when it throttles.
type Fault struct {
	// Status is the HTTP status, e.g. 503, 403 or 429.
	Status int
	// Code and Message fill the error body. Empty values default to what
	// Azure Maps sends: "403 Forbidden" / "Permission, capacity, or
	// authentication issues." for 403, "Unauthorized" for 401, and
	// "<status> <StatusText without spaces>" otherwise.
	Code, Message string
	// RetryAfter, when positive, is sent as Retry-After in whole seconds,
	// rounded up.
	RetryAfter time.Duration
	// Paths limits the fault to these APIs (names or URL paths); empty means
	// all Maps paths.
	Paths []string
}

// faultState is a Fault prepared once, so that answering costs nothing.
type faultState struct {
	status     int
	mask       uint64 // bit i: catalog.APIs[i]
	body       []byte
	retryAfter []string
}

func newFaultState(f *Fault) *faultState {
	code, msg := f.Code, f.Message
	switch f.Status {
	case http.StatusUnauthorized:
		code, msg = orDefault(code, "Unauthorized"), orDefault(msg, unauthorizedMessage)
	case http.StatusForbidden:
		code, msg = orDefault(code, "403 Forbidden"), orDefault(msg, "Permission, capacity, or authentication issues.")
	default:
		code = orDefault(code, strconv.Itoa(f.Status)+" "+strings.ReplaceAll(http.StatusText(f.Status), " ", ""))
		msg = orDefault(msg, http.StatusText(f.Status))
	}
	fs := &faultState{status: f.Status, body: errorBody(code, msg)}
	if len(f.Paths) == 0 {
		fs.mask = 1<<numAPIs - 1
	}
	for _, p := range f.Paths {
		fs.mask |= 1 << apiIndex(p)
	}
	if f.RetryAfter > 0 {
		secs := (f.RetryAfter + time.Second - 1) / time.Second
		fs.retryAfter = []string{strconv.FormatInt(int64(secs), 10)}
	}
	return fs
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
