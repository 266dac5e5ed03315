package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// DecodeEnvelope reads the text of a poison message.
func DecodeEnvelope(text, messageID string) Envelope {
	var env Envelope
	if err := json.Unmarshal([]byte(text), &env); err != nil || env.Message == "" && env.MessageBlob == "" && env.Error.Class == "" {
		return Envelope{Message: text, MessageID: messageID, Error: ErrorInfo{Class: "unknown", Message: "not a mapsworker poison envelope"}}
	}
	return env
}

// ReplayOptions configure Storage.Replay.
type ReplayOptions struct {
	// Hide is how long a poison message looked at and left in place stays
	// invisible during the replay, so that it is not looked at twice.
	// Default 10m. At the end of the replay they are made visible again.
	Hide time.Duration
	// MaxRemembered bounds the memory of the replay: the ids of the
	// messages it left in place (about 100 bytes each), and up to
	// MaxRemembered/2 KiB of their texts, which making them visible again
	// needs. Past that, such messages come back when Hide runs out.
	// Default 100,000: at most about 60 MB.
	MaxRemembered int
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Replayed int // moved back to the request queue
	Skipped  int // left in place: not matching, or poisoned after the start
}

// Replay moves the poison messages that match back to the request queue,
// each once: those that were in the poison queue when it started. Messages
// poisoned again while it runs (a worker failing a replayed request again)
// are left for the next replay, so it ends even while workers run. The
// original text goes back exactly as sent (from the envelope, or the blob it
// names), marked with the result name of a request that had no id of its
// own, so that its result keeps its name. Each poison message is deleted only
// after its text is back on the request queue: a failure between the two
// duplicates, never loses.
func (s *Storage) Replay(ctx context.Context, match func(Envelope) bool, opts *ReplayOptions) (ReplayResult, error) {
	o := ReplayOptions{Hide: 10 * time.Minute, MaxRemembered: 100_000}
	if opts != nil && opts.Hide > 0 {
		o.Hide = opts.Hide
	}
	if opts != nil && opts.MaxRemembered > 0 {
		o.MaxRemembered = opts.MaxRemembered
	}
	var res ReplayResult
	pq := s.Poison.c
	// The service's clock, not ours, tells what was poisoned before now.
	props, err := pq.GetProperties(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("reading the poison queue: %w", redactErr(err))
	}
	start := time.Now()
	if props.Date != nil {
		start = *props.Date
	}
	// The service keeps times to the second. Waiting one makes every
	// message poisoned from now on fall in a later second than start, so
	// that nothing this replay sends back is taken for one that was there.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	// A bound on the work, whatever happens to the queue meanwhile.
	budget := 2*deref64(props.ApproximateMessagesCount) + 1000

	type left struct{ id, pop, text string }
	seen := make(map[string]struct{})
	var hidden []left
	textBudget := o.MaxRemembered / 2 * 1024
	defer func() {
		// Make what was left in place visible again, at once.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, h := range hidden {
			// UpdateMessage always sends the text: send it unchanged.
			pq.UpdateMessage(uctx, h.id, h.pop, h.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(int32(0))})
		}
	}()
	skip := func(id, pop, text string) {
		res.Skipped++
		if len(seen) < o.MaxRemembered {
			seen[id] = struct{}{}
		}
		if textBudget >= len(text) {
			textBudget -= len(text)
			hidden = append(hidden, left{id, pop, text})
		}
	}
	for budget > 0 {
		resp, err := pq.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
			NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(seconds(o.Hide, 1)),
		})
		if err != nil {
			return res, fmt.Errorf("reading the poison queue: %w", redactErr(err))
		}
		if len(resp.Messages) == 0 {
			return res, nil
		}
		fresh := 0
		for i, m := range resp.Messages {
			budget--
			id, pop, text := deref(m.MessageID), deref(m.PopReceipt), deref(m.MessageText)
			if _, ok := seen[id]; ok {
				continue
			}
			fresh++
			if m.InsertionTime != nil && m.InsertionTime.After(start) {
				skip(id, pop, text) // poisoned again since the replay began
				continue
			}
			env := DecodeEnvelope(text, id)
			if !match(env) {
				skip(id, pop, text)
				continue
			}
			if err := s.replayOne(ctx, env); err != nil {
				// This one and the rest of the batch stay where they were.
				for _, r := range resp.Messages[i:] {
					skip(deref(r.MessageID), deref(r.PopReceipt), deref(r.MessageText))
				}
				return res, err
			}
			if _, err := pq.DeleteMessage(context.WithoutCancel(ctx), id, pop, nil); err != nil {
				return res, fmt.Errorf("message %s was re-enqueued but its poison message could not be removed: %w", env.MessageID, redactErr(err))
			}
			if env.MessageBlob != "" {
				// The text is back in the queue; its blob has served.
				s.results.NewBlobClient(env.MessageBlob).Delete(context.WithoutCancel(ctx), nil)
			}
			res.Replayed++
		}
		if fresh == 0 {
			// Everything visible has been looked at already.
			return res, nil
		}
	}
	return res, nil
}

// replayOne puts one envelope's original text back on the request queue:
// sent invisible, then marked with its new id and the result name, and made
// visible, so that no worker sees it unmarked.
func (s *Storage) replayOne(ctx context.Context, env Envelope) error {
	text := env.Message
	if env.MessageBlob != "" {
		var err error
		if text, err = s.Results.Text(ctx, env.MessageBlob); err != nil {
			return fmt.Errorf("reading the original text of %s from %s: %w", env.MessageID, env.MessageBlob, err)
		}
	}
	name := env.Name
	if name == "" {
		name = env.MessageID
	}
	q := s.Requests.c
	resp, err := q.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{
		VisibilityTimeout: to.Ptr(int32(30)), TimeToLive: to.Ptr(int32(-1)),
	})
	if err != nil {
		return fmt.Errorf("re-enqueueing %s: %w", env.MessageID, redactErr(err))
	}
	if len(resp.Messages) == 0 {
		return nil
	}
	m := resp.Messages[0]
	marked := MarkForReplay(text, deref(m.MessageID), name)
	if len(marked) > maxMessageText || strings.ContainsAny(name, ";=\n") {
		marked = text
	}
	// If this fails, the text comes back by itself in 30 s, unmarked: its
	// result is then named by its new id.
	q.UpdateMessage(ctx, deref(m.MessageID), deref(m.PopReceipt), marked, &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(int32(0))})
	return nil
}

func deref64(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}
