package main

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// mapsCounter is an azcore per-retry policy that counts the HTTP requests
// made to Azure Maps and the 429s among them, for the worker's summary line:
// the engine knows messages, not Maps calls.
type mapsCounter struct {
	calls, throttled atomic.Int64
	mu               sync.Mutex
	last             [2]int64
}

// Do implements policy.Policy.
func (c *mapsCounter) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	c.calls.Add(1)
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	return resp, err
}

// summaryAttrs returns the calls and 429s since its last call, as attributes
// for the engine's summary line.
func (c *mapsCounter) summaryAttrs() []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := [2]int64{c.calls.Load(), c.throttled.Load()}
	d := [2]int64{cur[0] - c.last[0], cur[1] - c.last[1]}
	c.last = cur
	return []any{"mapsCalls", d[0], "maps429", d[1]}
}
