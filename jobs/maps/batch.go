package maps

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// BatchResponse is the answer to a batch call: one item per request item, in
// the order of the request.
type BatchResponse struct {
	StatusCode int
	RequestID  string
	// Summary counts the items the service answered and those that succeeded.
	Summary BatchSummary
	// Items holds the answer for request item i at index i.
	Items []BatchItem
	// Body is the whole response body, verbatim.
	Body json.RawMessage
}

// BatchSummary is the summary of a batch answer.
type BatchSummary struct {
	SuccessfulRequests int `json:"successfulRequests"`
	TotalRequests      int `json:"totalRequests"`
}

// BatchItem is the answer to one item of a batch: either Body, the item's
// FeatureCollection verbatim (as the single call would answer it, plus the
// optionalId the client set), or Err.
type BatchItem struct {
	Body json.RawMessage
	Err  *ItemError
}

// doBatch sends req and splits the answer into n items, placed by the
// optionalId the client gave each item (its index) so that the order does
// not depend on the service's.
func (c *Client) doBatch(req *policy.Request, n int) (*BatchResponse, error) {
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Summary    BatchSummary      `json:"summary"`
		BatchItems []json.RawMessage `json:"batchItems"`
	}
	if err := json.Unmarshal(resp.Body, &doc); err != nil {
		return nil, fmt.Errorf("maps: decoding the batch answer (x-ms-request-id %s): %w", resp.RequestID, err)
	}
	if len(doc.BatchItems) != n {
		return nil, fmt.Errorf("maps: batch answer has %d items for %d requested (x-ms-request-id %s)", len(doc.BatchItems), n, resp.RequestID)
	}
	br := &BatchResponse{
		StatusCode: resp.StatusCode,
		RequestID:  resp.RequestID,
		Summary:    doc.Summary,
		Items:      make([]BatchItem, n),
		Body:       resp.Body,
	}
	items := make([]BatchItem, n)
	target := make([]int, n) // index of the request item each answer belongs to, or -1
	claimed := make([]bool, n)
	for pos, raw := range doc.BatchItems {
		var head struct {
			OptionalID string     `json:"optionalId"`
			Error      *ItemError `json:"error"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("maps: decoding batch item %d (x-ms-request-id %s): %w", pos, resp.RequestID, err)
		}
		items[pos] = BatchItem{Err: head.Error}
		if head.Error == nil {
			items[pos].Body = raw
		}
		target[pos] = -1
		if i, err := strconv.Atoi(head.OptionalID); err == nil && i >= 0 && i < n && !claimed[i] {
			target[pos], claimed[i] = i, true
		}
	}
	// Items without a usable optionalId (error items may lack it) fill the
	// remaining slots in the order the service gave them.
	free := 0
	for pos, i := range target {
		if i < 0 {
			for claimed[free] {
				free++
			}
			i, claimed[free] = free, true
		}
		br.Items[i] = items[pos]
	}
	return br, nil
}
