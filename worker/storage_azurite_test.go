package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/internal/azurite"
	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/worker"
)

// rejectingHandler fails every request as rejected while reject is set, and
// succeeds otherwise. A request without an id is named by its message id.
type rejectingHandler struct {
	reject atomic.Bool
	fakeHandler
}

func (h *rejectingHandler) Decode(body []byte, msgID string) (worker.Task, error) {
	t, err := h.fakeHandler.Decode(body, msgID)
	if err != nil {
		return t, err
	}
	ft := t.(*fakeTask)
	if h.reject.Load() {
		ft.req.Fail = "rejected"
	} else {
		ft.req.Fail = ""
	}
	return ft, nil
}

// A replay while a worker runs and poisons again everything it replays
// moves each message that was in the poison queue when it began exactly
// once, and ends.
func TestReplayEndsWhileWorkerRepoisons(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	const n = 40
	for i := range n {
		if err := st.Requests.Send(ctx, fmt.Sprintf(`{"id":"r%d","kind":"k"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	h := &rejectingHandler{}
	h.reject.Store(true)
	e, _ := runEngine(t, st, h, &worker.Options{})
	waitUntil(t, 30*time.Second, "all poisoned", func() bool { return e.Stats().Poisoned.Load() == n })

	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := st.Replay(rctx, func(worker.Envelope) bool { return true }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != n {
		t.Fatalf("replayed %d, want each of the %d once", res.Replayed, n)
	}
	waitUntil(t, 30*time.Second, "all poisoned again", func() bool { return e.Stats().Poisoned.Load() == 2*n })
}

// A filtered replay over a poison queue whose skipped messages reappear
// during it (a short hide) still ends, replays each match once, and leaves
// the others visible.
func TestFilteredReplayEnds(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	for i := range 150 {
		env, _ := json.Marshal(worker.Envelope{Message: fmt.Sprintf(`{"id":"p%d"}`, i), MessageID: fmt.Sprintf("m%d", i),
			Error: worker.ErrorInfo{Class: map[bool]string{true: "transient", false: "invalid-request"}[i%10 == 0]}})
		if err := st.Poison.Send(ctx, string(env)); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := st.Replay(rctx, func(env worker.Envelope) bool {
		time.Sleep(5 * time.Millisecond) // long enough for the hide to end
		return env.Error.Class == "transient"
	}, &worker.ReplayOptions{Hide: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 15 {
		t.Fatalf("replayed %d, want 15", res.Replayed)
	}
	msgs, err := st.Poison.Peek(ctx, 32)
	if err != nil || len(msgs) != 32 {
		t.Fatalf("poison messages visible after the replay: %d (%v)", len(msgs), err)
	}
	if got := countRequests(t, st); got != 15 {
		t.Fatalf("%d requests queued, want 15", got)
	}
}

func countRequests(t *testing.T, st *worker.Storage) int {
	t.Helper()
	n := 0
	for {
		msgs, err := st.Requests.Receive(context.Background(), 32, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return n
		}
		n += len(msgs)
	}
}

// A request without an id keeps its result name through a replay, which
// gives its message a new id.
func TestReplayKeepsTheResultName(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	if err := st.Requests.Send(ctx, `{"kind":"k"}`); err != nil {
		t.Fatal(err)
	}
	h := &rejectingHandler{}
	h.reject.Store(true)
	e, stop := runEngine(t, st, h, &worker.Options{})
	waitUntil(t, 30*time.Second, "poisoned", func() bool { return e.Stats().Poisoned.Load() == 1 })
	stop()
	msgs, err := st.Poison.Peek(ctx, 1)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	first := worker.DecodeEnvelope(msgs[0].Text, msgs[0].ID).MessageID

	if _, err := st.Replay(ctx, func(worker.Envelope) bool { return true }, nil); err != nil {
		t.Fatal(err)
	}
	h.reject.Store(false)
	e, stop = runEngine(t, st, h, &worker.Options{})
	waitUntil(t, 30*time.Second, "succeeded", func() bool { return e.Stats().Succeeded.Load() == 1 })
	stop()
	if ok, err := st.Results.Succeeded(ctx, worker.ResultName("k", first)); err != nil || !ok {
		t.Fatalf("no succeeded result under the first message id %s (%v)", first, err)
	}
}

// An envelope too large for a queue message keeps the original text in a
// blob, exactly as sent, against Azurite's real 64 KiB limit; replay puts
// the text back as it was.
func TestEnvelopeSpillsOnAzurite(t *testing.T) {
	st := newStorage(t)
	ctx := context.Background()
	big := base64.StdEncoding.EncodeToString([]byte(`{"id":"big","pad":"` + strings.Repeat("x", 48000) + `"`)) // not JSON
	lt := `{"id":"lt","junk":"` + strings.Repeat("<", 11000) + `",`
	for _, text := range []string{big, lt} {
		if err := st.Requests.Send(ctx, text); err != nil {
			t.Fatal(err)
		}
	}
	e, stop := runEngine(t, st, &fakeHandler{}, &worker.Options{})
	waitUntil(t, 30*time.Second, "both poisoned", func() bool { return e.Stats().Poisoned.Load() == 2 })
	stop()
	if r := e.Stats().Receives.Load(); r > 20 {
		t.Fatalf("%d receives: the poison move looped", r)
	}
	got := map[string]bool{}
	for _, env := range poisonEnvelopesPeek(t, st) {
		text := env.Message
		if env.MessageBlob != "" {
			var err error
			if text, err = st.Results.Text(ctx, env.MessageBlob); err != nil {
				t.Fatal(err)
			}
		}
		got[text] = true
	}
	if !got[big] || !got[lt] {
		t.Fatalf("originals not recoverable exactly (%d found)", len(got))
	}
	if _, err := st.Replay(ctx, func(worker.Envelope) bool { return true }, nil); err != nil {
		t.Fatal(err)
	}
	back := map[string]bool{}
	msgs, err := st.Requests.Receive(ctx, 32, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		back[m.Original()] = true
	}
	if !back[big] || !back[lt] {
		t.Fatalf("replay did not put back the exact texts (%d back)", len(back))
	}
}

func poisonEnvelopesPeek(t *testing.T, st *worker.Storage) []worker.Envelope {
	t.Helper()
	msgs, err := st.Poison.Peek(context.Background(), 32)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]worker.Envelope, len(msgs))
	for i, m := range msgs {
		out[i] = worker.DecodeEnvelope(m.Text, m.ID)
	}
	return out
}

// hookTransport sends requests on, counting them; before, when set, may
// answer instead, and after sees each response.
type hookTransport struct {
	n      atomic.Int64
	before func(*http.Request) (*http.Response, error)
	after  func(*http.Request, *http.Response)
}

func (h *hookTransport) Do(req *http.Request) (*http.Response, error) {
	h.n.Add(1)
	resp, err := http.DefaultClient.Do(req)
	if h.after != nil && err == nil {
		h.after(req, resp)
	}
	if h.before != nil {
		if r, err := h.before(req); r != nil || err != nil {
			return r, err
		}
	}
	return resp, err
}

func hookedStorage(t *testing.T, az *azurite.Server, tr *hookTransport) *worker.Storage {
	t.Helper()
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{
		Queue: "requests", Container: "results", ClientOptions: azcore.ClientOptions{Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ensure(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	return st
}

// An update whose answer is lost is not retried by azcore: the retry would
// carry the old pop receipt, and the message, renewed by the lost try, would
// look lost.
func TestUpdateIsNotRetried(t *testing.T) {
	az := azuritetest.New(t, nil)
	tr := &hookTransport{}
	st := hookedStorage(t, az, tr)
	ctx := context.Background()
	if err := st.Requests.Send(ctx, `{"id":"u"}`); err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Requests.Receive(ctx, 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	tr.before = func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut {
			return nil, errors.New("connection reset after the request was sent")
		}
		return nil, nil
	}
	before := tr.n.Load()
	_, err = st.Requests.Update(ctx, msgs[0].ID, msgs[0].PopReceipt, msgs[0].Text, time.Minute)
	if err == nil || errors.Is(err, worker.ErrMessageLost) {
		t.Fatalf("Update = %v, want the transport error", err)
	}
	if sent := tr.n.Load() - before; sent != 1 {
		t.Fatalf("the update was sent %d times", sent)
	}
}

// A success and a failure written at once never leave the failure: the
// success's conditional replace, beaten by the failure, decides again.
func TestPutRaceKeepsTheSuccess(t *testing.T) {
	az := azuritetest.New(t, nil)
	other := newStorageOn(t, az)
	ctx := context.Background()
	const name = "k/race.json"
	if err := other.Results.Put(ctx, name, []byte(`{"status":"failed","n":1}`), true); err != nil {
		t.Fatal(err)
	}
	tr := &hookTransport{}
	var raced atomic.Bool
	tr.after = func(r *http.Request, resp *http.Response) {
		// After the success's writer read the failed result's ETag, a
		// failure replaces it.
		if r.Method == http.MethodHead && strings.HasSuffix(r.URL.Path, name) && raced.CompareAndSwap(false, true) {
			if err := other.Results.Put(ctx, name, []byte(`{"status":"failed","n":2}`), true); err != nil {
				t.Error(err)
			}
		}
	}
	st := hookedStorage(t, az, tr)
	if err := st.Results.Put(ctx, name, []byte(`{"status":"succeeded"}`), false); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if !raced.Load() {
		t.Fatal("the race was not staged")
	}
	if ok, err := st.Results.Succeeded(ctx, name); err != nil || !ok {
		t.Fatalf("after the race the result is not the success (%v)", err)
	}
}

func newStorageOn(t *testing.T, az *azurite.Server) *worker.Storage {
	t.Helper()
	return hookedStorage(t, az, &hookTransport{})
}

// A status writer stopped while storage does not answer returns within its
// last write's 2 s, not after the writes under way time out.
func TestStatusWriterStopsAtOnceWhenStorageHangs(t *testing.T) {
	az := azuritetest.New(t, nil)
	hang := make(chan struct{})
	tr := &hookTransport{}
	st := hookedStorage(t, az, tr)
	tr.before = func(r *http.Request) (*http.Response, error) {
		if strings.Contains(r.URL.Path, "mapsworker-status") || r.URL.Query().Get("comp") == "list" {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return nil, r.Context().Err()
		}
		return nil, nil
	}
	defer close(hang)
	e := worker.New(st.Requests, st.Poison, st.Results, &fakeHandler{}, &worker.Options{})
	w := worker.NewStatusWriter(st, e, &worker.StatusOptions{Every: time.Second, Peers: func(int) {}})
	w.Start()
	time.Sleep(500 * time.Millisecond) // a write is under way, hanging
	began := time.Now()
	w.Stop()
	if took := time.Since(began); took > 4*time.Second {
		t.Fatalf("Stop took %v with storage hanging", took)
	}
}
