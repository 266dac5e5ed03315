package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mapsworker/worker"
	"mapsworker/worker/azurite"
)

// fakeHandler decodes {"id","kind","fail"} and fails as asked; it counts runs.
type fakeHandler struct {
	runs  sync.Map // id -> *atomic.Int64
	delay time.Duration
}

type fakeReq struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Fail string `json:"fail"`
}

type fakeTask struct {
	h   *fakeHandler
	req fakeReq
	raw []byte
}

func (h *fakeHandler) Decode(body []byte, msgID string) (worker.Task, error) {
	var r fakeReq
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, worker.Invalidf("InvalidJSON", "not JSON: %v", err)
	}
	if r.ID == "" {
		r.ID = msgID
	}
	t := &fakeTask{h: h, req: r, raw: body}
	if r.Fail == "invalid" {
		return t, worker.Invalidf("Bad", "asked to be invalid")
	}
	return t, nil
}

func (h *fakeHandler) count(id string) int64 {
	v, _ := h.runs.LoadOrStore(id, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (t *fakeTask) ID() string               { return t.req.ID }
func (t *fakeTask) Kind() string             { return t.req.Kind }
func (t *fakeTask) Request() json.RawMessage { return t.raw }
func (t *fakeTask) Run(ctx context.Context) (*worker.Output, error) {
	v, _ := t.h.runs.LoadOrStore(t.req.ID, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if t.h.delay > 0 {
		select {
		case <-time.After(t.h.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch t.req.Fail {
	case "rejected":
		return nil, worker.Rejected("400 BadRequest", errors.New("refused"))
	case "transient":
		return nil, worker.Transient("503", errors.New("unavailable"))
	}
	return &worker.Output{Summary: map[string]int{"n": 1}, Response: json.RawMessage(`{"ok":true}`)}, nil
}

func newStorage(t *testing.T) *worker.Storage {
	t.Helper()
	az := azurite.New(t, nil)
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{Queue: "requests", Container: "results"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ensure(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestEngineSmoke(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	for i := range 50 {
		if err := st.Requests.Send(ctx, fmt.Sprintf(`{"id":"m%d","kind":"k"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Requests.Send(ctx, `{"id":"bad","kind":"k","fail":"invalid"}`)
	var outcomes sync.Map
	var n atomic.Int64
	h := &fakeHandler{}
	e := worker.New(st.Requests, st.Poison, st.Results, h, &worker.Options{
		MaxPollInterval: 200 * time.Millisecond,
		OnOutcome: func(o worker.Outcome) {
			outcomes.Store(o.ID, o.Result)
			n.Add(1)
		},
	})
	go e.Run(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for n.Load() < 51 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 51 {
		t.Fatalf("outcomes = %d, want 51", got)
	}
	if r, _ := outcomes.Load("bad"); r != worker.OutcomePoisoned {
		t.Fatalf("bad: %v", r)
	}
}
