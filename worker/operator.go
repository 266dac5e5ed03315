package worker

// The operator's view of the storage: what `mapsworker result`, `poison`,
// `stats`, `status` and `check` read and do, so that no command reaches
// past Storage to the SDK's clients.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// ErrNoResult is the error of Storage.Result for a request that has no
// result yet: still queued, in flight, or never sent.
var ErrNoResult = errors.New("no result")

// Endpoints returns the URLs of the queue and blob services.
func (s *Storage) Endpoints() (queueService, blobService string) {
	return s.queues.URL(), s.blobURL
}

// Result reads the result of the request of kind with id: decoded, and the
// document as it is stored. It returns ErrNoResult when there is none, the
// results container itself missing included (no worker has run yet).
func (s *Storage) Result(ctx context.Context, kind, id string) (*Result, []byte, error) {
	name := ResultName(kind, id)
	resp, err := s.results.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, nil, ErrNoResult
		}
		return nil, nil, fmt.Errorf("reading the result %s: %w", name, redactErr(err))
	}
	defer resp.Body.Close()
	doc, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the result %s: %w", name, err)
	}
	var r Result
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, nil, fmt.Errorf("the result %s is not a valid result document: %w", name, err)
	}
	return &r, doc, nil
}

// PoisonMessage is one message of the poison queue.
type PoisonMessage struct {
	// Envelope is the message's envelope; a text that is not a mapsworker
	// envelope (moved there by another tool) is its own original text.
	Envelope Envelope
	// ID is the poison queue's id for the message.
	ID string
	// Text is the message's text as stored: the envelope's JSON.
	Text string
}

// PeekPoison returns up to n (at most 32, the most a peek returns) messages
// at the front of the poison queue, leaving them as they are.
func (s *Storage) PeekPoison(ctx context.Context, n int) ([]PoisonMessage, error) {
	msgs, err := s.Poison.Peek(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("reading the poison queue: %w", err)
	}
	out := make([]PoisonMessage, len(msgs))
	for i, m := range msgs {
		out[i] = PoisonMessage{Envelope: DecodeEnvelope(m.Text, m.ID), ID: m.ID, Text: m.Text}
	}
	return out, nil
}

// PurgePoison deletes every message of the poison queue. The blobs that
// hold the texts of oversized envelopes stay: a message poisoned again
// meanwhile may still name one.
func (s *Storage) PurgePoison(ctx context.Context) error {
	if _, err := s.Poison.c.ClearMessages(ctx, nil); err != nil {
		return fmt.Errorf("purging the poison queue: %w", redactErr(err))
	}
	return nil
}

// QueueStats is a queue's backlog.
type QueueStats struct {
	// Depth is the service's approximate count of messages, invisible
	// ones included.
	Depth int64
	// Oldest is when the first visible message was sent; zero when none
	// is visible.
	Oldest time.Time
}

// Depth returns the queue's approximate number of messages.
func (q *AzureQueue) Depth(ctx context.Context) (int64, error) {
	props, err := q.c.GetProperties(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", q.name, redactErr(err))
	}
	return deref64(props.ApproximateMessagesCount), nil
}

// Stats returns the queue's depth and the age of its front: two requests.
func (q *AzureQueue) Stats(ctx context.Context) (QueueStats, error) {
	depth, err := q.Depth(ctx)
	if err != nil {
		return QueueStats{}, err
	}
	front, err := q.Peek(ctx, 1)
	if err != nil {
		return QueueStats{}, fmt.Errorf("queue %s: %w", q.name, err)
	}
	st := QueueStats{Depth: depth}
	if len(front) > 0 {
		st.Oldest = front[0].InsertedAt
	}
	return st, nil
}

// ResultCounts are the results CountResults counted, by status.
type ResultCounts struct {
	Succeeded, Failed int
	// Scanned is how many blobs the listing went through.
	Scanned int
}

// CountResultsOptions configure CountResults.
type CountResultsOptions struct {
	// Since counts only the results written at or after it; zero counts
	// all.
	Since time.Time
	// MaxScan bounds the listing, which costs one transaction per 5,000
	// blobs. Default DefaultMaxScan.
	MaxScan int
}

// DefaultMaxScan is how many blobs CountResults lists at most, unless told.
const DefaultMaxScan = 50_000

// CountResults counts the results of the container by the status in their
// metadata, from one listing: no result is read.
func (s *Storage) CountResults(ctx context.Context, opts *CountResultsOptions) (ResultCounts, error) {
	o := CountResultsOptions{MaxScan: DefaultMaxScan}
	if opts != nil {
		o.Since = opts.Since
		if opts.MaxScan > 0 {
			o.MaxScan = opts.MaxScan
		}
	}
	var n ResultCounts
	pager := s.results.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Include: container.ListBlobsInclude{Metadata: true},
		// A page holds up to 5,000 blobs: a smaller bound is one page.
		MaxResults: to.Ptr(int32(min(o.MaxScan, 5000))),
	})
	for pager.More() && n.Scanned < o.MaxScan {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("listing results: %w", redactErr(err))
		}
		for _, b := range page.Segment.BlobItems {
			n.Scanned++
			if b.Name == nil || !IsResult(*b.Name) {
				continue
			}
			if b.Properties == nil || b.Properties.LastModified == nil || b.Properties.LastModified.Before(o.Since) {
				continue
			}
			if metaStatus(b.Metadata) == StatusFailed {
				n.Failed++
			} else {
				n.Succeeded++
			}
		}
	}
	return n, nil
}

// EnqueueHidden adds a message that stays invisible for hidden and expires
// a second after it could be seen, so that no worker ever takes it: the
// probe of `mapsworker check`. It returns the message with its pop receipt.
func (q *AzureQueue) EnqueueHidden(ctx context.Context, text string, hidden time.Duration) (*Message, error) {
	h := seconds(hidden, 1)
	resp, err := q.c.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{
		VisibilityTimeout: to.Ptr(h), TimeToLive: to.Ptr(h + 1),
	})
	if err != nil {
		return nil, redactErr(err)
	}
	if len(resp.Messages) == 0 {
		return nil, errors.New("storage: the enqueue returned no message")
	}
	m := resp.Messages[0]
	return newMessage(m.MessageID, m.PopReceipt, &text, nil, m.InsertionTime, m.ExpirationTime), nil
}

// ProbeName is the name of a blob `mapsworker check` writes and deletes
// again; IsResult does not count it.
func ProbeName(probe string) string { return checkPrefix + probe + ".json" }

// checkPrefix is where `mapsworker check` writes its probe blobs.
const checkPrefix = "_check/"

// Delete deletes a blob of the container; one that is not there is no
// error.
func (r *AzureResults) Delete(ctx context.Context, name string) error {
	_, err := r.c.NewBlobClient(name).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) && !isStatus(err, http.StatusNotFound) {
		return redactErr(err)
	}
	return nil
}
