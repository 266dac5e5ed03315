package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// ledgerMax bounds the ledger: past it, the oldest entries are dropped, and
// those messages' next deliveries count (the limit on deliveries still ends
// them).
const ledgerMax = 10000

// ledger remembers, per message id, deliveries that were not the message's
// fault but could not be written into its mark: the release that would
// have marked it failed, or the mark did not fit in 64 KiB. It is this
// instance's memory only; another instance counts those deliveries.
type ledger struct {
	mu    sync.Mutex
	n     map[string]int64
	order []string
}

func (g *ledger) add(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = make(map[string]int64)
	}
	if _, ok := g.n[id]; !ok {
		if len(g.order) >= ledgerMax {
			delete(g.n, g.order[0])
			g.order = g.order[1:]
		}
		g.order = append(g.order, id)
	}
	g.n[id]++
}

func (g *ledger) get(id string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n[id]
}

func (g *ledger) forget(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.n[id]; ok {
		delete(g.n, id)
		for i, v := range g.order {
			if v == id {
				g.order = append(g.order[:i], g.order[i+1:]...)
				break
			}
		}
	}
}

// flight is the work on one result name in this instance.
type flight struct {
	done      chan struct{}
	succeeded atomic.Bool
}

// flights coalesces messages with the same result name in flight at once:
// the first works, the others wait for its outcome and, when it succeeded,
// are acknowledged as duplicates without calling the downstream.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// join returns the flight for name and whether the caller leads it.
func (fs *flights) join(name string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[name]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = make(map[string]*flight)
	}
	f := &flight{done: make(chan struct{})}
	fs.m[name] = f
	return f, true
}

func (fs *flights) leave(name string, f *flight) {
	fs.mu.Lock()
	delete(fs.m, name)
	fs.mu.Unlock()
	close(f.done)
}

// health tells, per kind of task, whether its downstream is up: from the
// messages of that kind that succeed, and where none has lately, from a
// probe. A transient failure counts against its message only when the
// downstream answered some other request of the kind after the failed
// attempt began; otherwise it is an outage, and nothing is counted.
type health struct {
	mu     sync.Mutex
	lastOK map[string]time.Time
	runs   map[string]*probeRun
}

type probeRun struct {
	done chan struct{}
	err  error
}

// healthSlack is how far before an attempt a success may be and still show
// the downstream up for it.
const healthSlack = 2 * time.Second

// ok records a success of kind.
func (h *health) ok(kind string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastOK == nil {
		h.lastOK = make(map[string]time.Time)
	}
	h.lastOK[kind] = time.Now()
}

// up reports whether the downstream of task is up for an attempt that began
// at began: nil when a request of its kind succeeded since then, else the
// outcome of a probe (one at a time per kind; callers meanwhile share it). A
// task that cannot probe is taken to be at fault itself.
func (h *health) up(e *Engine, task Task, began time.Time) error {
	kind := task.Kind()
	h.mu.Lock()
	if h.lastOK[kind].After(began.Add(-healthSlack)) {
		h.mu.Unlock()
		return nil
	}
	p, ok := task.(Prober)
	if !ok {
		h.mu.Unlock()
		return nil
	}
	if h.runs == nil {
		h.runs = make(map[string]*probeRun)
	}
	if r := h.runs[kind]; r != nil {
		h.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &probeRun{done: make(chan struct{})}
	h.runs[kind] = r
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.workCtx), e.opts.TryTimeout)
	r.err = runProbe(ctx, p.Probe)
	cancel()
	e.stats.Probes.Add(1)
	if r.err != nil {
		e.stats.ProbeFailures.Add(1)
	} else {
		h.ok(kind)
	}
	h.mu.Lock()
	delete(h.runs, kind)
	h.mu.Unlock()
	close(r.done)
	return r.err
}
