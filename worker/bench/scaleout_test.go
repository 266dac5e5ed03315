package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"mapsworker/jobs"
	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// The bench binary doubles as a worker process for the scale-out scenario:
// started with BENCH_CHILD set, it runs one engine on the queue it is given
// and prints a line per settled message ("<result> <id>") until SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_CHILD") != "" {
		os.Exit(child())
	}
	if os.Getenv("BENCH_EMULATOR") != "" {
		os.Exit(emulatorChild())
	}
	code := m.Run()
	closeShared()
	os.Exit(code)
}

func child() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "bench child:", err); return 1 }
	st, err := worker.NewStorageFromConnectionString(os.Getenv("BENCH_CHILD_CONN"), &worker.StorageOptions{
		Queue: os.Getenv("BENCH_CHILD_QUEUE"), Container: os.Getenv("BENCH_CHILD_QUEUE"),
	})
	if err != nil {
		return fail(err)
	}
	// The emulator's token endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER) and
	// CA (SSL_CERT_FILE) come from the environment, as on App Service.
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		return fail(err)
	}
	// BENCH_CHILD_ACCOUNT_QPS, when set, is the Maps account's geocode
	// limit, shared with the other children as mapsworker run shares it:
	// each takes 1/N, N counted from the status documents.
	accountQPS, _ := strconv.Atoi(os.Getenv("BENCH_CHILD_ACCOUNT_QPS"))
	client, err := maps.NewClient(os.Getenv("BENCH_CHILD_MAPS"), cred, &maps.ClientOptions{
		ClientID: os.Getenv("BENCH_CHILD_CLIENTID"), DisableRateLimits: accountQPS == 0,
		RateLimits: map[string]int{maps.APIGeocode: accountQPS},
	})
	if err != nil {
		return fail(err)
	}
	conc, _ := strconv.Atoi(os.Getenv("BENCH_CHILD_CONCURRENCY"))
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	eng := worker.New(st.Requests, st.Poison, st.Results, jobs.NewHandler(client, nil), &worker.Options{
		Concurrency:     conc,
		MaxPollInterval: time.Second,
		SummaryInterval: -1,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnOutcome: func(o worker.Outcome) {
			mu.Lock()
			fmt.Fprintf(out, "%s %s\n", o.Result, o.ID)
			out.Flush()
			mu.Unlock()
		},
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if accountQPS > 0 {
		status := worker.NewStatusWriter(st, eng, &worker.StatusOptions{Every: time.Second, Peers: client.SetRateShare})
		status.Start()
		defer status.Stop()
	}
	go eng.Run(context.Background())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = eng.Shutdown(sctx)
	return 0
}

// scaleOut runs procs worker processes of concurrency conc on one backlog of
// n messages with the emulator answering after latency.
func (e *env) scaleOut(b *testing.B, name string, procs, conc, n int, latency time.Duration) (row, int) {
	return e.processes(b, name, procs, conc, n, latency, 0)
}

// processes runs procs worker processes of concurrency conc on one backlog
// of n messages with the emulator answering after latency. With accountQPS,
// the backlog is geocodes, the emulator throttles geocodes above accountQPS,
// and the processes share that limit; the backlog is sent once they have
// counted each other.
func (e *env) processes(b *testing.B, name string, procs, conc, n int, latency time.Duration, accountQPS int) (row, int) {
	if skipped(name) {
		return row{name: name, skipped: true}, 0
	}
	st := e.storage(b, nil)
	kinds := []string{jobs.KindGeocode, jobs.KindReverseGeocode, jobs.KindRoute}
	if accountQPS > 0 {
		kinds = []string{jobs.KindGeocode}
	}
	run := fmt.Sprintf("s%d", e.seq.Add(1))
	if accountQPS == 0 {
		enqueue(b, st, run, n, kinds)
	}
	check(b, e.emu.setLatency(latency))
	check(b, e.emu.setGen2Limits(false))
	if accountQPS > 0 {
		_, err := e.emu.do(fmt.Sprintf("limit %s %d", maps.APIGeocode, accountQPS))
		check(b, err)
	}
	check(b, e.emu.resetStats())
	type line struct{ result, id string }
	lines := make(chan line, 1024)
	var cmds []*exec.Cmd
	start := time.Now()
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"BENCH_CHILD=1",
			"BENCH_CHILD_CONN="+e.az.ConnectionString(),
			"BENCH_CHILD_QUEUE="+st.Requests.Name(),
			"BENCH_CHILD_MAPS="+e.emu.URL,
			"BENCH_CHILD_CLIENTID="+e.emu.ClientID,
			"BENCH_CHILD_CONCURRENCY="+strconv.Itoa(conc),
			"BENCH_CHILD_ACCOUNT_QPS="+strconv.Itoa(accountQPS),
			"IDENTITY_ENDPOINT="+e.emu.IdentityEndpoint,
			"IDENTITY_HEADER="+e.emu.IdentityHeader,
			"SSL_CERT_FILE="+e.emu.CAFile,
		)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if r, id, ok := strings.Cut(sc.Text(), " "); ok {
					lines <- line{r, id}
				}
			}
		}()
	}
	if accountQPS > 0 {
		// The status documents are rewritten every second: by 3 s each
		// child has counted the others.
		time.Sleep(3 * time.Second)
		check(b, e.emu.resetStats())
		start = time.Now()
		enqueue(b, st, run, n, kinds)
	}
	seen := map[string]int{}
	ok, dupResults, settled := 0, 0, 0
	var last time.Time
	timeout := time.After(15 * time.Minute)
wait:
	for settled < n {
		select {
		case l := <-lines:
			switch l.result {
			case worker.OutcomeSucceeded:
				if ok == 0 && accountQPS > 0 {
					// The pace of a shared limit is timed from the
					// first success, not from the enqueue.
					start = time.Now()
				}
				ok++
				settled++
				seen[l.id]++
				if seen[l.id] > 1 {
					dupResults++
				}
			case worker.OutcomeDuplicate, worker.OutcomePoisoned:
				settled++
			}
			last = time.Now()
		case <-timeout:
			b.Errorf("%s: %d of %d settled", name, settled, n)
			break wait
		}
	}
	for _, cmd := range cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range cmds {
		_ = cmd.Wait()
	}
	ms, err := e.emu.stats()
	check(b, err)
	if accountQPS > 0 {
		// The emulator serves the rows after this one too.
		_, err := e.emu.do(fmt.Sprintf("limit %s 0", maps.APIGeocode))
		check(b, err)
	}
	fmt.Printf("  %-26s %5d of %5d succeeded in %8v: %6.1f msg/s\n", name, ok, n, last.Sub(start).Round(time.Millisecond), float64(ok)/last.Sub(start).Seconds())
	return row{name: name, n: n, ok: ok, elapsed: last.Sub(start), mapsReq: ms.Requests, status429: ms.Status429}, dupResults
}
