package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mapsworker/worker"
)

// memQueue is an in-memory Storage queue with the semantics the engine
// relies on: visibility, pop receipts, dequeue counts, time-to-live and the
// 64 KiB limit on a message. Under testing/synctest its clock is the
// bubble's. It counts the messages the queue deleted at expiry, unseen.
type memQueue struct {
	mu      sync.Mutex
	msgs    []*memMsg
	seq     int
	expired []string // texts deleted by expiry
	// failReceive, when set, fails receives and peeks.
	failReceive atomic.Bool
	// failReleases fails this many updates that change the text (the
	// engine's marked releases; renewals send the text unchanged).
	failReleases atomic.Int64
	receives     atomic.Int64
	// onDelete, when set, sees the context of each delete.
	onDelete func(context.Context)
}

type memMsg struct {
	id, text, pop       string
	dq                  int64
	inserted, visibleAt time.Time
	expires             time.Time // zero: never
}

const maxText = 64 * 1024

var errTooLarge = fmt.Errorf("%w: 413 RequestBodyTooLarge", worker.ErrRefused)

// add enqueues text with a time-to-live (0: never expires) and returns its id.
func (q *memQueue) add(text string, ttl time.Duration) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	now := time.Now()
	m := &memMsg{id: fmt.Sprintf("msg-%04d", q.seq), text: text, inserted: now, visibleAt: now}
	if ttl > 0 {
		m.expires = now.Add(ttl)
	}
	q.msgs = append(q.msgs, m)
	return m.id
}

// expireLocked deletes expired messages, as the service does.
func (q *memQueue) expireLocked(now time.Time) {
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if !m.expires.IsZero() && !now.Before(m.expires) {
			q.expired = append(q.expired, m.text)
			continue
		}
		kept = append(kept, m)
	}
	q.msgs = kept
}

func (m *memMsg) message() *worker.Message {
	return &worker.Message{ID: m.id, PopReceipt: m.pop, Text: m.text, DequeueCount: m.dq, InsertedAt: m.inserted, ExpiresAt: m.expires}
}

func (q *memQueue) Receive(ctx context.Context, n int, vis time.Duration) ([]*worker.Message, error) {
	q.receives.Add(1)
	if q.failReceive.Load() {
		return nil, errors.New("storage unreachable")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	q.expireLocked(now)
	var out []*worker.Message
	for _, m := range q.msgs {
		if len(out) == n {
			break
		}
		if m.visibleAt.After(now) {
			continue
		}
		q.seq++
		m.dq++
		m.pop = "pop-" + strconv.Itoa(q.seq)
		m.visibleAt = now.Add(vis)
		out = append(out, m.message())
	}
	return out, nil
}

func (q *memQueue) Peek(ctx context.Context, n int) ([]*worker.Message, error) {
	if q.failReceive.Load() {
		return nil, errors.New("storage unreachable")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	q.expireLocked(now)
	var out []*worker.Message
	for _, m := range q.msgs {
		if len(out) < n && !m.visibleAt.After(now) {
			mm := m.message()
			mm.PopReceipt = ""
			out = append(out, mm)
		}
	}
	return out, nil
}

func (q *memQueue) find(id, pop string) (*memMsg, int) {
	for i, m := range q.msgs {
		if m.id == id && m.pop == pop {
			return m, i
		}
	}
	return nil, -1
}

func (q *memQueue) Update(ctx context.Context, id, pop, text string, vis time.Duration) (string, error) {
	if len(text) > maxText {
		return "", errTooLarge
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(time.Now())
	m, _ := q.find(id, pop)
	if m == nil {
		return "", worker.ErrMessageLost
	}
	if text != m.text && q.failReleases.Add(-1) >= 0 {
		return "", errors.New("storage unreachable")
	}
	q.seq++
	m.text, m.pop, m.visibleAt = text, "pop-"+strconv.Itoa(q.seq), time.Now().Add(vis)
	return m.pop, nil
}

func (q *memQueue) Delete(ctx context.Context, id, pop string) error {
	if q.onDelete != nil {
		q.onDelete(ctx)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(time.Now())
	_, i := q.find(id, pop)
	if i < 0 {
		return worker.ErrMessageLost
	}
	q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
	return nil
}

func (q *memQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(time.Now())
	return len(q.msgs)
}

// memPoison is a poison queue that refuses texts over 64 KiB, as the
// service does.
type memPoison struct {
	mu    sync.Mutex
	texts []string
}

func (p *memPoison) Send(ctx context.Context, text string) error {
	if len(text) > maxText {
		return errTooLarge
	}
	p.mu.Lock()
	p.texts = append(p.texts, text)
	p.mu.Unlock()
	return nil
}

func (p *memPoison) envelopes() []worker.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]worker.Envelope, len(p.texts))
	for i, t := range p.texts {
		if err := json.Unmarshal([]byte(t), &out[i]); err != nil {
			panic(err)
		}
	}
	return out
}

// memResults keeps result documents and their status.
type memResults struct {
	mu    sync.Mutex
	docs  map[string]string
	ok    map[string]bool
	texts map[string]string
}

func newMemResults() *memResults {
	return &memResults{docs: map[string]string{}, ok: map[string]bool{}, texts: map[string]string{}}
}

func (r *memResults) Put(ctx context.Context, name string, doc []byte, failed bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ok[name] {
		return worker.ErrResultExists
	}
	r.docs[name], r.ok[name] = string(doc), !failed
	return nil
}

func (r *memResults) Succeeded(ctx context.Context, name string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok[name], nil
}

func (r *memResults) PutText(ctx context.Context, name, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.texts[name] = text
	return nil
}

func (r *memResults) succeeded() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ok := range r.ok {
		if ok {
			n++
		}
	}
	return n
}

// downstream is a scripted Maps: behave decides each call's error by the
// request's mode and the call's time; it counts calls and probes.
type downstream struct {
	behave func(mode string) error
	calls  atomic.Int64
	probes atomic.Int64
	runs   sync.Map // id -> *atomic.Int64
}

type dsHandler struct{ ds *downstream }

type dsTask struct {
	ds       *downstream
	id, mode string
	raw      []byte
}

func (h dsHandler) Decode(body []byte, msgID string) (worker.Task, error) {
	var r struct{ ID, Mode string }
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, worker.Invalidf("InvalidJSON", "not JSON: %v", err)
	}
	if r.ID == "" {
		r.ID = msgID
	}
	t := &dsTask{ds: h.ds, id: r.ID, mode: r.Mode, raw: body}
	if r.Mode == "invalid" {
		return t, worker.Invalidf("Bad", "asked to be invalid")
	}
	return t, nil
}

func (t *dsTask) ID() string               { return t.id }
func (t *dsTask) Kind() string             { return "test" }
func (t *dsTask) Request() json.RawMessage { return t.raw }

func (t *dsTask) Run(ctx context.Context) (*worker.Output, error) {
	t.ds.calls.Add(1)
	v, _ := t.ds.runs.LoadOrStore(t.id, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if err := t.ds.call(ctx, t.mode); err != nil {
		return nil, err
	}
	return &worker.Output{Summary: map[string]string{"ok": t.id}, Response: json.RawMessage(`{}`)}, nil
}

// Probe asks the downstream with a known-good request.
func (t *dsTask) Probe(ctx context.Context) error {
	t.ds.probes.Add(1)
	return t.ds.call(ctx, "")
}

// call answers as behave says; errHang makes it wait for its context.
func (ds *downstream) call(ctx context.Context, mode string) error {
	if ds.behave == nil {
		return nil
	}
	err := ds.behave(mode)
	if errors.Is(err, errHang) {
		<-ctx.Done()
		return worker.Transient("Timeout", ctx.Err())
	}
	return err
}

func (ds *downstream) runsOf(id string) int64 {
	v, ok := ds.runs.Load(id)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

var errHang = errors.New("hang until the context ends")

var (
	err429 = worker.Environmental("429 TooManyRequests", errors.New("Azure Maps answered 429"), time.Second)
	err503 = worker.Transient("503 ServiceUnavailable", errors.New("Azure Maps answered 503"))
)
