// Command localrun is `make run`: it starts Azurite, the local Azure Maps
// emulator (with its managed identity token endpoint) and bin/mapsworker run,
// enqueues the sample requests of docs/samples.jsonl with `mapsworker
// enqueue`, prints their results as a table, and keeps the worker running
// until Ctrl-C. It then stops every process it started and exits 0.
//
// While it runs, .run/env holds the settings for the operator commands and
// .run/pid its process id; both go when it stops. A second localrun with the
// same -state folder refuses to start.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"mapsworker/internal/azurite"
	"mapsworker/internal/azurite/procgroup"
	"mapsworker/jobs"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	binFlag := flag.String("bin", "bin/mapsworker", "the mapsworker binary")
	samples := flag.String("samples", "docs/samples.jsonl", "the requests to enqueue")
	stateFlag := flag.String("state", ".run", "where the emulator's certificate and the settings file go")
	flag.Parse()
	bin, _ := filepath.Abs(*binFlag)
	stateDir, _ := filepath.Abs(*stateFlag)
	release, err := claim(stateDir, *stateFlag)
	if err != nil {
		return err
	}
	defer release()
	envFile := filepath.Join(stateDir, "env")
	defer os.Remove(envFile) // its settings are good only while this runs

	fmt.Println("starting Azurite (storage emulator)…")
	az, err := azurite.Start(nil)
	if err != nil {
		return err
	}
	defer az.Close()

	// Create the queues and the container before the worker and the
	// enqueue below race for them.
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		return err
	}
	if err := st.Ensure(ctx, slog.Default()); err != nil {
		return err
	}

	fmt.Println("starting the Azure Maps emulator and managed identity endpoint…")
	emu, err := mapstest.Start(&mapstest.Options{CertDir: stateDir})
	if err != nil {
		return err
	}
	defer emu.Close()

	env := append(os.Environ(),
		"AzureWebJobsStorage="+az.ConnectionString(),
		"AZURE_MAPS_ENDPOINT="+emu.URL,
		"AZURE_MAPS_CLIENT_ID="+emu.ClientID,
		"IDENTITY_ENDPOINT="+emu.IdentityEndpoint,
		"IDENTITY_HEADER="+emu.IdentityHeader,
		"SSL_CERT_FILE="+emu.CAFile(),
		// A request typed in another terminal is picked up within a
		// second; polling a local Azurite costs nothing.
		"MAPS_MAX_POLL_INTERVAL=1s",
	)
	fmt.Printf("  storage  %s\n  maps     %s\n  identity %s\n\n", az.QueueURL(), emu.URL, emu.IdentityEndpoint)

	fmt.Printf("starting the worker (%s run)…\n", *binFlag)
	w, err := startWorker(bin, env)
	if err != nil {
		return err
	}
	defer w.stop()

	fmt.Printf("$ mapsworker enqueue --file %s\n", *samples)
	enq := exec.Command(bin, "enqueue", "--file", *samples)
	enq.Env = env
	enq.Stderr = os.Stderr
	out, err := enq.Output()
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	fmt.Print(string(out))
	kinds, err := sampleKinds(*samples)
	if err != nil {
		return err
	}

	fmt.Println("waiting for their results…")
	if err := printResults(ctx, az.ConnectionString(), kinds, w.exited); err != nil {
		return err
	}
	if err := writeEnv(envFile, env[len(os.Environ()):]); err != nil {
		return err
	}
	fmt.Println("\nThe worker keeps running. In another terminal, with the same settings:")
	fmt.Printf("  set -a; . %s; set +a; export PATH=\"$PWD/bin:$PATH\"\n", filepath.ToSlash(filepath.Join(*stateFlag, "env")))
	fmt.Println(`  mapsworker enqueue geocode "1 Main St, Springfield" --id my-1`)
	fmt.Println("  mapsworker result geocode my-1; mapsworker stats; mapsworker poison list")
	fmt.Println("Press Ctrl-C to stop everything.")
	select {
	case <-ctx.Done():
	case err := <-w.exited:
		w.exited <- err
		return fmt.Errorf("the worker exited: %v", err)
	}
	return nil
}

// workerProc is `mapsworker run` in a process group of its own: a Ctrl-C
// reaches this program alone, which then stops the worker as the WebJobs
// runner would, giving it its drain time.
type workerProc struct {
	cmd    *exec.Cmd
	group  *procgroup.Group
	exited chan error
}

func startWorker(bin string, env []string) (*workerProc, error) {
	cmd := exec.Command(bin, "run")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = prefixed("worker | "), prefixed("worker | ")
	g, err := procgroup.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	w := &workerProc{cmd: cmd, group: g, exited: make(chan error, 1)}
	go func() { w.exited <- cmd.Wait() }()
	return w, nil
}

// stop asks the worker to stop and waits for it up to a minute (its drain
// budget is 45 s), then kills it.
func (w *workerProc) stop() {
	defer w.group.Release()
	select {
	case err := <-w.exited:
		w.exited <- err
		return
	default:
	}
	fmt.Println("\nstopping the worker…")
	limit := time.Minute
	if w.group.Interrupt() != nil {
		limit = 0
	}
	select {
	case <-w.exited:
	case <-time.After(limit):
		w.group.Kill()
		<-w.exited
	}
}

type sample struct{ id, kind string }

func sampleKinds(path string) ([]sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ ID, Kind string }
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.ID != "" {
			out = append(out, sample{r.ID, r.Kind})
		}
	}
	return out, sc.Err()
}

// printResults waits for each sample's result and prints them as a table.
func printResults(ctx context.Context, conn string, samples []sample, exited chan error) error {
	client, err := azblob.NewClientFromConnectionString(conn, nil)
	if err != nil {
		return err
	}
	c := client.ServiceClient().NewContainerClient("maps-results")
	results := make([]*worker.Result, len(samples))
	deadline := time.Now().Add(60 * time.Second)
	for pending := len(samples); pending > 0 && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the worker exited: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		for i, s := range samples {
			if results[i] != nil {
				continue
			}
			resp, err := c.NewBlobClient(worker.ResultName(s.kind, s.id)).DownloadStream(ctx, nil)
			if err != nil {
				if !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
					return err
				}
				continue
			}
			var r worker.Result
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(b, &r) == nil {
				results[i] = &r
				pending--
			}
		}
	}
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tID\tSTATUS\tSUMMARY")
	for i, s := range samples {
		r := results[i]
		if r == nil {
			fmt.Fprintf(w, "%s\t%s\t(no result yet)\t\n", s.kind, s.id)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.kind, s.id, r.Status, summarize(r))
	}
	return w.Flush()
}

func summarize(r *worker.Result) string {
	if r.Error != nil {
		return r.Error.Class + ": " + r.Error.Message
	}
	raw, _ := json.Marshal(r.Summary)
	return jobs.DescribeSummary(r.Kind, raw)
}

// writeEnv writes settings as shell assignments, single-quoted (the
// connection string holds semicolons).
func writeEnv(path string, kv []string) error {
	var b strings.Builder
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&b, "%s='%s'\n", k, strings.ReplaceAll(v, "'", `'\''`))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// prefixed writes a child's output line by line behind a prefix.
func prefixed(prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			fmt.Println(prefix + sc.Text())
		}
	}()
	return pw
}
