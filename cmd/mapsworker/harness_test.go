package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"mapsworker/internal/azurite"
	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/internal/azurite/procgroup"
	"mapsworker/jobs/maps/catalog"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// testEnv is a local Azure: a real Azurite and the Maps emulator with its
// managed identity endpoint, and the settings that point mapsworker at them.
type testEnv struct {
	t       *testing.T
	az      *azurite.Server
	emu     *mapstest.Server
	storage *worker.Storage
	env     map[string]string // settings for the worker and the commands
}

// newTestEnv starts Azurite and the emulator for one test. Each test gets its
// own managed identity client id: azidentity caches tokens process-wide by
// identity and resource.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, azuritetest.New(t, nil))
}

// newTestEnvWith is newTestEnv with an Azurite the test started itself.
func newTestEnvWith(t *testing.T, az *azurite.Server) *testEnv {
	t.Helper()
	emu := mapstest.NewServer(nil)
	t.Cleanup(emu.Close)
	te := &testEnv{t: t, az: az, emu: emu, env: map[string]string{
		"AzureWebJobsStorage":    az.ConnectionString(),
		"AZURE_MAPS_ENDPOINT":    emu.URL,
		"AZURE_MAPS_CLIENT_ID":   emu.ClientID,
		"IDENTITY_ENDPOINT":      emu.IdentityEndpoint,
		"IDENTITY_HEADER":        emu.IdentityHeader,
		"AZURE_CLIENT_ID":        "mi-" + randomHex(8),
		"SSL_CERT_FILE":          emu.CAFile(),
		"MAPS_QUEUE":             "maps-requests",
		"MAPS_RESULTS_CONTAINER": "maps-results",
		"MAPS_MAX_POLL_INTERVAL": "500ms",
		"MAPS_LOG_LEVEL":         "info",
	}}
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ensure(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	te.storage = st
	return te
}

// environ returns the settings as a child process's environment.
func (te *testEnv) environ() []string {
	env := os.Environ()
	for k, v := range te.env {
		env = append(env, k+"="+v)
	}
	return env
}

// send enqueues raw message texts.
func (te *testEnv) send(texts ...string) {
	te.t.Helper()
	for _, s := range texts {
		if _, err := te.storage.Requests.Enqueue(context.Background(), s); err != nil {
			te.t.Fatal(err)
		}
	}
}

// result reads a result document, or nil.
func (te *testEnv) result(kind, id string) *worker.Result {
	te.t.Helper()
	r, _, err := te.storage.Result(context.Background(), kind, id)
	if errors.Is(err, worker.ErrNoResult) {
		return nil
	}
	if err != nil {
		te.t.Fatal(err)
	}
	return r
}

// dequeueAll takes every visible message of q for ten minutes.
func (te *testEnv) dequeueAll(q *azqueue.QueueClient) []*azqueue.DequeuedMessage {
	te.t.Helper()
	var out []*azqueue.DequeuedMessage
	for {
		resp, err := q.DequeueMessages(context.Background(), &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(int32(600))})
		if err != nil {
			te.t.Fatal(err)
		}
		if len(resp.Messages) == 0 {
			return out
		}
		out = append(out, resp.Messages...)
	}
}

// poisoned drains the poison queue's envelopes (those visible now).
func (te *testEnv) poisoned() []worker.Envelope {
	te.t.Helper()
	var out []worker.Envelope
	for _, m := range te.dequeueAll(te.storage.Poison.Client()) {
		var e worker.Envelope
		if err := json.Unmarshal([]byte(*m.MessageText), &e); err != nil {
			te.t.Fatalf("poison message is not an envelope: %v: %s", err, *m.MessageText)
		}
		out = append(out, e)
	}
	return out
}

// queueDepth is the approximate number of messages in the request queue.
func (te *testEnv) queueDepth() int64 {
	te.t.Helper()
	return te.depth(te.storage.Requests.Client())
}

// depth is the approximate number of messages in q.
func (te *testEnv) depth(q *azqueue.QueueClient) int64 {
	te.t.Helper()
	p, err := q.GetProperties(context.Background(), nil)
	if err != nil {
		te.t.Fatal(err)
	}
	return *p.ApproximateMessagesCount
}

// waitFor polls cond until it holds or the limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds mapsworker once per test process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mapsworker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "mapsworker")
		if runtime.GOOS == "windows" {
			builtBin += ".exe" // exec finds nothing without it
		}
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildFailure{string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

type buildFailure struct{ out string }

func (b *buildFailure) Error() string { return "go build: " + b.out }

// proc is a mapsworker child process with its output captured. It runs in
// a process group of its own, so that stop works as the WebJobs runner's
// does on every OS, and so that a killed test process leaves no worker.
type proc struct {
	cmd   *exec.Cmd
	group *procgroup.Group
	out   *syncBuffer
	done  chan struct{}
	err   error
}

// start runs the built binary with the test settings plus extra ones.
func (te *testEnv) start(extra map[string]string, args ...string) *proc {
	te.t.Helper()
	cmd := exec.Command(binary(te.t), args...)
	cmd.Env = te.environ()
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	g, err := procgroup.Start(cmd)
	if err != nil {
		te.t.Fatal(err)
	}
	p.group = g
	go func() { p.err = cmd.Wait(); close(p.done) }()
	te.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		g.Release()
	})
	return p
}

// wait waits for the process to exit, up to limit.
func (p *proc) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("process did not exit within %v; output:\n%s", limit, p.out.String())
	}
}

// stop asks the worker to stop, with SIGTERM as the Linux WebJobs runner
// does (CTRL_BREAK on Windows), waits for the exit up to limit, and returns
// how long the stop took.
func (p *proc) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	if err := p.group.Interrupt(); err != nil {
		t.Fatalf("stopping the worker: %v", err)
	}
	p.wait(t, limit)
	return time.Since(began)
}

// stopWorker stops a worker and fails the test unless it exits 0.
func stopWorker(t *testing.T, p *proc) {
	t.Helper()
	p.stop(t, 30*time.Second)
	if p.err != nil {
		t.Fatalf("worker exit: %v\n%s", p.err, p.out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines counts the non-empty lines of s.
func lines(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

func uniqueID(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// mapsWork counts the requests Azure Maps worked on: single calls, plus the
// items of batch calls in place of the batch calls themselves.
func (te *testEnv) mapsWork() int64 {
	st := te.emu.Stats()
	n := st.Requests + st.BatchItems
	for _, a := range catalog.APIs {
		if strings.HasSuffix(a.Path, ":batch") {
			n -= st.PerPath[a.Name]
		}
	}
	return n
}
