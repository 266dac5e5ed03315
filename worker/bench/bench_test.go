// Package bench measures mapsworker's throughput against the storage floor
// (`make bench`). It starts Azurite and the Azure Maps emulator in-process,
// counts every storage and Maps HTTP request, and prints a table. It holds
// only benchmarks, so `make test` (go test ./...) never times anything.
//
// Settings (environment): BENCH_MESSAGES, the backlog per scenario (default
// 5000; the concurrency-1 scenario uses min(300, BENCH_MESSAGES));
// BENCH_ONLY, a substring of the names of the worker scenarios to run (the
// floor and the idle measurement always run).
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/jobs"
	"mapsworker/jobs/maps"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
	"mapsworker/worker/azurite"
)

// countingTransport counts the HTTP requests sent through it.
type countingTransport struct {
	c *http.Client
	n atomic.Int64
}

func newCountingTransport() *countingTransport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 256 // as azcore's default transport keeps enough for 64 in flight
	return &countingTransport{c: &http.Client{Transport: tr}}
}

func (t *countingTransport) Do(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.c.Do(req)
}

type env struct {
	az  *azurite.Server
	emu *mapstest.Server
	log *slog.Logger
	seq atomic.Int64
}

// storage returns a new queue and container on a fresh Azurite: each
// scenario starts from an empty, idle Azurite, as Azurite (single-threaded,
// in memory) slows as its data grows.
func (e *env) storage(tb testing.TB, tr *countingTransport) *worker.Storage {
	tb.Helper()
	if e.az != nil {
		e.az.Close()
	}
	az, err := azurite.Start(nil)
	if err != nil {
		tb.Fatal(err)
	}
	e.az = az
	n := e.seq.Add(1)
	opts := &worker.StorageOptions{Queue: fmt.Sprintf("bench%d", n), Container: fmt.Sprintf("bench%d", n)}
	if tr != nil {
		opts.ClientOptions = azcore.ClientOptions{Transport: tr}
	}
	st, err := worker.NewStorageFromConnectionString(e.az.ConnectionString(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Ensure(context.Background(), e.log); err != nil {
		tb.Fatal(err)
	}
	return st
}

// message returns the i-th message of the mixed backlog (geocode, reverse,
// route in turn) and its id. The id carries the scenario and the index.
func message(run string, i int, kinds []string) (id, text string) {
	id = fmt.Sprintf("%s-%d", run, i)
	switch kinds[i%len(kinds)] {
	case jobs.KindGeocode:
		return id, fmt.Sprintf(`{"id":%q,"kind":"geocode","query":"%d NE 24th Street, Redmond, WA","top":1}`, id, 100+i)
	case jobs.KindReverseGeocode:
		return id, fmt.Sprintf(`{"id":%q,"kind":"reverse-geocode","position":{"lat":%.5f,"lon":%.5f}}`, id, 47.6+float64(i%1000)*1e-4, -122.1-float64(i%700)*1e-4)
	default:
		return id, fmt.Sprintf(`{"id":%q,"kind":"route","waypoints":[{"lat":47.6303,"lon":%.4f},{"lat":47.6101,"lon":-122.2015}],"travelMode":"driving"}`, id, -122.1387+float64(i%500)*1e-4)
	}
}

// enqueue puts n messages on st's queue with 32 goroutines and returns the
// enqueue time of each, by index.
func enqueue(tb testing.TB, st *worker.Storage, run string, n int, kinds []string) []time.Time {
	tb.Helper()
	at := make([]time.Time, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				_, text := message(run, i, kinds)
				at[i] = time.Now()
				if _, err := st.Requests.Enqueue(context.Background(), text); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
	return at
}

type row struct {
	name                string
	n, ok               int
	elapsed             time.Duration
	p50, p99            time.Duration
	mapsReq, storageReq int64
	mapsPerGeocode      float64
	geocodes            int
	rss                 int64 // VmHWM, bytes
	status429           int64
}

func (r row) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// resetPeakRSS asks Linux to reset VmHWM (clear_refs 5, since 4.0), so that
// each scenario reports its own peak. It is the whole bench process's peak:
// Azurite runs in its own process and is not included, the emulator and the
// storage floor's helpers are.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

// floor runs the minimal storage loop: one receiver dequeuing 32 at a time,
// conc workers each writing a ~1 KB blob and deleting the message.
func (e *env) floor(b *testing.B, n, conc int) row {
	tr := newCountingTransport()
	st := e.storage(b, tr)
	at := enqueue(b, st, "floor", n, []string{jobs.KindGeocode})
	doc := []byte(`{"status":"succeeded","pad":"` + strings.Repeat("x", 1000) + `"}`)
	ch := make(chan *worker.Message, 32)
	var done atomic.Int64
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	resetPeakRSS()
	base := tr.n.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			ctx := context.Background()
			for m := range ch {
				i := strings.LastIndexByte(m.Text, '-')
				j := strings.IndexByte(m.Text[i:], '"')
				idx, _ := strconv.Atoi(m.Text[i+1 : i+j])
				if err := st.Results.Put(ctx, "floor/"+m.ID+".json", doc, false); err != nil {
					b.Error(err)
				}
				if err := st.Requests.Delete(ctx, m.ID, m.PopReceipt); err != nil {
					b.Error(err)
				}
				d := time.Since(at[idx])
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	received := 0
	for received < n {
		msgs, err := st.Requests.Receive(context.Background(), 32, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, m := range msgs {
			ch <- m
		}
		received += len(msgs)
	}
	close(ch)
	wg.Wait()
	el := time.Since(start)
	return row{name: fmt.Sprintf("storage floor c=%d", conc), n: n, ok: int(done.Load()), elapsed: el,
		p50: percentile(lat, .5), p99: percentile(lat, .99), storageReq: tr.n.Load() - base, rss: peakRSS()}
}

type scenario struct {
	name    string
	n, conc int
	latency time.Duration
	batch   bool
	kinds   []string
	// gen2 turns on the client's rate limits (the Gen2 defaults) and the
	// emulator's, at the same figures. Otherwise neither limits: a mixed
	// backlog under the Gen2 limits cannot pass 150 msg/s (route: 50 QPS),
	// which would hide the worker's own costs.
	gen2 bool
}

func (e *env) engine(b *testing.B, sc scenario) row {
	if only := os.Getenv("BENCH_ONLY"); only != "" && !strings.Contains(sc.name, only) {
		return row{name: sc.name + " (skipped)", elapsed: time.Second}
	}
	tr := newCountingTransport()
	st := e.storage(b, tr)
	run := fmt.Sprintf("r%d", e.seq.Add(1))
	at := enqueue(b, st, run, sc.n, sc.kinds)
	client, err := maps.NewClient(e.emu.URL, e.emu.Credential(), &maps.ClientOptions{
		ClientID:          e.emu.ClientID,
		ClientOptions:     azcore.ClientOptions{Transport: e.emu.Client()},
		DisableRateLimits: !sc.gen2,
	})
	if err != nil {
		b.Fatal(err)
	}
	h := jobs.NewHandler(client, handlerOptions(sc))
	e.emu.SetLatency(sc.latency)
	defer e.emu.SetLatency(0)
	if sc.gen2 {
		for api, qps := range maps.DefaultRateLimits() {
			e.emu.SetRateLimit(api, qps)
		}
		defer func() {
			for api := range maps.DefaultRateLimits() {
				e.emu.SetRateLimit(api, 0)
			}
		}()
	}

	var mu sync.Mutex
	lat := make([]time.Duration, 0, sc.n)
	var settled, ok atomic.Int64
	var last atomic.Int64
	allDone := make(chan struct{})
	eng := worker.New(st.Requests, st.Poison, st.Results, h, &worker.Options{
		Concurrency:     sc.conc,
		MaxPollInterval: time.Second,
		Logger:          e.log,
		SummaryInterval: -1,
		OnOutcome: func(o worker.Outcome) {
			now := time.Now()
			if o.Result == worker.OutcomeSucceeded {
				ok.Add(1)
				if i := strings.LastIndexByte(o.ID, '-'); i >= 0 {
					if idx, err := strconv.Atoi(o.ID[i+1:]); err == nil && idx < len(at) {
						mu.Lock()
						lat = append(lat, now.Sub(at[idx]))
						mu.Unlock()
					}
				}
			}
			last.Store(now.UnixNano())
			if settled.Add(1) == int64(sc.n) {
				close(allDone)
			}
		},
	})
	e.emu.ResetStats()
	resetPeakRSS()
	base := tr.n.Load()
	start := time.Now()
	go eng.Run(context.Background())
	select {
	case <-allDone:
	case <-time.After(20 * time.Minute):
		b.Errorf("%s: %d of %d settled in 20m", sc.name, settled.Load(), sc.n)
	}
	el := time.Unix(0, last.Load()).Sub(start)
	storageReq := tr.n.Load() - base
	ms := e.emu.Stats()
	rss := peakRSS()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = eng.Shutdown(ctx)
	r := row{name: sc.name, n: sc.n, ok: int(ok.Load()), elapsed: el,
		p50: percentile(lat, .5), p99: percentile(lat, .99),
		mapsReq: ms.Requests, storageReq: storageReq, rss: rss, status429: ms.Status429}
	g := 0
	for i := range sc.n {
		if sc.kinds[i%len(sc.kinds)] == jobs.KindGeocode {
			g++
		}
	}
	r.geocodes = g
	if g > 0 {
		r.mapsPerGeocode = float64(ms.PerPath[mapstest.APIGeocode]+ms.PerPath[mapstest.APIGeocodeBatch]) / float64(g)
	}
	return r
}

// idle measures the storage requests of an engine polling an empty queue.
// The poll schedule (MinPollInterval doubling with ±20% jitter up to
// MaxPollInterval) is run 60 times faster (Min 100ms/60, Max 1m/60 = 1s), so
// that 20 s stand for 20 min; the requests counted once the backoff has
// reached its ceiling, scaled back, give the steady-state cost per hour.
func (e *env) idle(b *testing.B) (perHour float64, ramp int64) {
	tr := newCountingTransport()
	st := e.storage(b, tr)
	const scale = 60
	eng := worker.New(st.Requests, st.Poison, st.Results, jobs.NewHandler(nil, nil), &worker.Options{
		MinPollInterval: 100 * time.Millisecond / scale,
		MaxPollInterval: time.Minute / scale,
		Logger:          e.log,
		SummaryInterval: -1,
	})
	go eng.Run(context.Background())
	time.Sleep(5 * time.Second) // the ramp: ~10 polls up to the ceiling
	ramp = tr.n.Load()
	const window = 15 * time.Second
	time.Sleep(window)
	steady := tr.n.Load() - ramp
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = eng.Shutdown(ctx)
	realWindow := window * scale
	return float64(steady) * float64(time.Hour) / float64(realWindow), ramp
}

func messages() int {
	if v, err := strconv.Atoi(os.Getenv("BENCH_MESSAGES")); err == nil && v > 0 {
		return v
	}
	return 5000
}

func BenchmarkThroughput(b *testing.B) {
	emu := mapstest.NewServer(nil)
	defer emu.Close()
	e := &env{emu: emu, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer func() {
		if e.az != nil {
			e.az.Close()
		}
	}()
	n := messages()
	mixed := []string{jobs.KindGeocode, jobs.KindReverseGeocode, jobs.KindRoute}
	for b.Loop() {
		var rows []row
		fl := e.floor(b, n, 16)
		rows = append(rows, fl)
		progress(fl)
		for _, sc := range []scenario{
			{name: "worker c=1", n: min(300, n), conc: 1, kinds: mixed},
			{name: "worker c=16", n: n, conc: 16, kinds: mixed},
			{name: "worker c=64", n: n, conc: 64, kinds: mixed},
			{name: "worker c=64 50ms", n: n, conc: 64, latency: 50 * time.Millisecond, kinds: mixed},
		} {
			rows = append(rows, progress(e.engine(b, sc)))
		}
		rows = append(rows, batchScenarios(b, e, n)...)
		// Scale-out: worker processes of concurrency 2 with 50 ms Maps
		// latency, so that Maps latency, not storage, bounds one process.
		son := min(n, 900)
		one, _ := e.scaleOut(b, "1 process c=2 50ms", 1, 2, son, 50*time.Millisecond)
		progress(one)
		three, dups := e.scaleOut(b, "3 processes c=2 50ms", 3, 2, son, 50*time.Millisecond)
		progress(three)
		perHour, ramp := e.idle(b)
		var sb strings.Builder
		fmt.Fprintf(&sb, "\nmapsworker bench %s, %d CPUs, backlog %d (c=1: %d)\n", time.Now().UTC().Format(time.DateOnly), nproc(), n, min(300, n))
		fmt.Fprintf(&sb, "%-22s %6s %8s %6s %8s %8s %9s %9s %9s %7s %5s\n",
			"scenario", "ok", "msg/s", "floor", "p50", "p99", "maps/msg", "geo/msg", "stor/msg", "RSS MB", "429")
		for _, r := range rows {
			ratio := r.rate() / fl.rate()
			if strings.Contains(r.name, "50ms") {
				ratio = r.rate() / min(fl.rate(), 64/0.05)
			}
			fmt.Fprintf(&sb, "%-22s %6d %8.1f %6.2f %8s %8s %9.3f %9.3f %9.3f %7.1f %5d\n",
				r.name, r.ok, r.rate(), ratio, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond),
				float64(r.mapsReq)/float64(max(r.ok, 1)), r.mapsPerGeocode,
				float64(r.storageReq)/float64(max(r.ok, 1)), float64(r.rss)/(1<<20), r.status429)
		}
		fmt.Fprintf(&sb, "scale-out (separate processes, mixed backlog %d, c=2 each, 50ms Maps latency): 1 process %.1f msg/s, 3 processes %.1f msg/s = %.2fx; duplicate results %d; duplicate Maps calls %.2f%%\n",
			son, one.rate(), three.rate(), three.rate()/one.rate(), dups, 100*float64(three.mapsReq-int64(three.ok))/float64(max(three.ok, 1)))
		fmt.Fprintf(&sb, "idle: %.0f storage requests/hour at MAPS_MAX_POLL_INTERVAL 1m (steady state, poll schedule run 60x faster; %d requests in the 5 min ramp)\n", perHour, ramp)
		fmt.Fprintf(&sb, "notes: floor ratio of the 50ms row is to min(floor, 64/0.05s); latency is enqueue->result with the whole backlog enqueued before timing; RSS is the peak (VmHWM) of the whole bench process (worker + emulator, not Azurite)\n")
		fmt.Print(sb.String())
	}
}

// progress prints a row as soon as it is measured.
func progress(r row) row {
	fmt.Printf("  done: %-22s %d ok of %d in %v (%.1f msg/s)\n", r.name, r.ok, r.n, r.elapsed.Round(time.Millisecond), r.rate())
	return r
}

func nproc() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}
