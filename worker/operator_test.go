package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/worker"
)

// Result reads what the engine wrote under ResultName, and says
// ErrNoResult for a result not written and for a container not created.
func TestStorageResult(t *testing.T) {
	t.Parallel()
	st := newStorage(t)
	ctx := context.Background()
	if _, _, err := st.Result(ctx, "geocode", "none"); !errors.Is(err, worker.ErrNoResult) {
		t.Errorf("missing result: %v, want ErrNoResult", err)
	}
	doc := `{"id":"a-1","kind":"geocode","status":"failed","dequeueCount":2,"request":{},"error":{"class":"maps-rejected","message":"no"}}`
	if err := st.Results.Put(ctx, worker.ResultName("geocode", "a-1"), []byte(doc), true); err != nil {
		t.Fatal(err)
	}
	r, raw, err := st.Result(ctx, "geocode", "a-1")
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != doc || r.ID != "a-1" || r.Status != worker.StatusFailed || r.DequeueCount != 2 || r.Error == nil || r.Error.Class != "maps-rejected" {
		t.Errorf("result %+v, document %s", r, raw)
	}
	if _, _, err := st.Result(ctx, "route", "a-1"); !errors.Is(err, worker.ErrNoResult) {
		t.Errorf("another kind's result: %v, want ErrNoResult", err)
	}
	if err := st.Results.PutText(ctx, worker.ResultName("geocode", "bad"), "not json"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Result(ctx, "geocode", "bad"); err == nil || errors.Is(err, worker.ErrNoResult) {
		t.Errorf("a document that is not JSON: %v", err)
	}

	// No worker has run: no container either.
	az := azuritetest.New(t, nil)
	bare, err := worker.NewStorageFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bare.Result(ctx, "geocode", "a-1"); !errors.Is(err, worker.ErrNoResult) {
		t.Errorf("no container: %v, want ErrNoResult", err)
	}
	q, b := bare.Endpoints()
	if !strings.HasPrefix(q, az.QueueURL()) || !strings.HasPrefix(b, az.BlobURL()) {
		t.Errorf("endpoints %s %s, Azurite at %s %s", q, b, az.QueueURL(), az.BlobURL())
	}
}

// PeekPoison shows the poison queue without taking anything; PurgePoison
// empties it.
func TestStoragePeekAndPurgePoison(t *testing.T) {
	t.Parallel()
	st := newStorage(t)
	ctx := context.Background()
	if msgs, err := st.PeekPoison(ctx, 32); err != nil || len(msgs) != 0 {
		t.Fatalf("empty poison queue: %v %v", msgs, err)
	}
	env := `{"message":"{\"id\":\"g-1\",\"kind\":\"geocode\"}","messageId":"m-1","dequeueCount":5,"poisonedAt":"2026-12-01T10:00:00Z","error":{"class":"transient","code":"TooManyDeliveries","message":"x"}}`
	for _, text := range []string{env, env, "moved here by another tool"} {
		if err := st.Poison.Send(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := st.PeekPoison(ctx, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("peeked %d, want 3", len(msgs))
	}
	if m := msgs[0]; m.Text != env || m.ID == "" || m.Envelope.MessageID != "m-1" || m.Envelope.Error.Class != "transient" || m.Envelope.DequeueCount != 5 {
		t.Errorf("first: %+v", m)
	}
	if m := msgs[2]; m.Envelope.Message != "moved here by another tool" || m.Envelope.Error.Class != "unknown" || m.Envelope.MessageID != m.ID {
		t.Errorf("a text that is no envelope: %+v", m)
	}
	if msgs, _ := st.PeekPoison(ctx, 2); len(msgs) != 2 {
		t.Errorf("PeekPoison(2) gave %d", len(msgs))
	}
	if n, err := st.Poison.Depth(ctx); err != nil || n != 3 {
		t.Errorf("depth %d %v after peeks, want 3", n, err)
	}
	if err := st.PurgePoison(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Poison.Depth(ctx); err != nil || n != 0 {
		t.Errorf("depth %d %v after the purge", n, err)
	}
}

func TestQueueStats(t *testing.T) {
	t.Parallel()
	st := newStorage(t)
	ctx := context.Background()
	s, err := st.Requests.Stats(ctx)
	if err != nil || s.Depth != 0 || !s.Oldest.IsZero() {
		t.Fatalf("empty queue: %+v %v", s, err)
	}
	before := time.Now().Add(-2 * time.Second) // the service keeps seconds
	for range 2 {
		if _, err := st.Requests.Enqueue(ctx, "x"); err != nil {
			t.Fatal(err)
		}
	}
	s, err = st.Requests.Stats(ctx)
	if err != nil || s.Depth != 2 || s.Oldest.Before(before) || s.Oldest.After(time.Now().Add(2*time.Second)) {
		t.Errorf("two messages: %+v %v", s, err)
	}
	if s, err := st.Poison.Stats(ctx); err != nil || s.Depth != 0 {
		t.Errorf("poison queue: %+v %v", s, err)
	}
}

// CountResults counts results by status and nothing of the engine's own.
func TestCountResults(t *testing.T) {
	t.Parallel()
	st := newStorage(t)
	ctx := context.Background()
	for name, failed := range map[string]bool{
		worker.ResultName("geocode", "a"): false, worker.ResultName("route", "b"): false, worker.ResultName("geocode", "c"): true,
	} {
		if err := st.Results.Put(ctx, name, []byte(`{}`), failed); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{worker.PoisonTextName("m-1"), worker.ProbeName("probe-1")} {
		if err := st.Results.PutText(ctx, name, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.CountResults(ctx, nil)
	if err != nil || n.Succeeded != 2 || n.Failed != 1 || n.Scanned != 5 {
		t.Errorf("all: %+v %v", n, err)
	}
	n, err = st.CountResults(ctx, &worker.CountResultsOptions{Since: time.Now().Add(time.Hour)})
	if err != nil || n.Succeeded+n.Failed != 0 {
		t.Errorf("since an hour ahead: %+v %v", n, err)
	}
	if n, err := st.CountResults(ctx, &worker.CountResultsOptions{Since: time.Now().Add(-time.Hour), MaxScan: 1}); err != nil || n.Scanned != 1 {
		t.Errorf("bounded scan: %+v %v", n, err)
	}
}

// A message enqueued hidden, as check's probe is, is never given to a
// worker while hidden and is gone a second after; while there, it can be
// updated and deleted with the receipts it came with.
func TestEnqueueHidden(t *testing.T) {
	t.Parallel()
	st := newStorage(t)
	ctx := context.Background()
	dequeue := func() int {
		resp, err := st.Requests.Client().DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Messages)
	}
	m, err := st.Requests.EnqueueHidden(ctx, "mapsworker-check-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.PopReceipt == "" || m.Text != "mapsworker-check-1" {
		t.Fatalf("enqueued %+v", m)
	}
	pop, err := st.Requests.Update(ctx, m.ID, m.PopReceipt, m.Text, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Requests.Delete(ctx, m.ID, pop); err != nil {
		t.Fatal(err)
	}

	// One left behind (check died before the delete).
	if _, err := st.Requests.EnqueueHidden(ctx, "mapsworker-check-left", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := dequeue(); n != 0 {
		t.Fatalf("a worker got %d probe message(s) while hidden", n)
	}
	time.Sleep(3500 * time.Millisecond)
	if n := dequeue(); n != 0 {
		t.Fatalf("the probe message is still there after it expired: %d", n)
	}
}

func TestResultsDelete(t *testing.T) {
	t.Parallel()
	st := newStorage(t)
	ctx := context.Background()
	name := worker.ProbeName("p")
	if worker.IsResult(name) {
		t.Errorf("the probe blob %s counts as a result", name)
	}
	if err := st.Results.PutText(ctx, name, `{"check":true}`); err != nil {
		t.Fatal(err)
	}
	if err := st.Results.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Results.Text(ctx, name); err == nil {
		t.Error("the blob is still there")
	}
	if err := st.Results.Delete(ctx, name); err != nil {
		t.Errorf("deleting what is not there: %v", err)
	}
}
