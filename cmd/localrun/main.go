// Command localrun is `make run`: it starts Azurite, the local Azure Maps
// emulator with its managed identity token endpoint (bin/mapsdev emulate:
// the worker's binary carries no emulator) and bin/mapsworker run,
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
	"errors"
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

	"mapsworker/internal/azurite"
	"mapsworker/internal/azurite/procgroup"
	"mapsworker/jobs"
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
	devFlag := flag.String("dev", "", "the mapsdev binary, whose `emulate` serves the Azure Maps emulator (default: mapsdev beside -bin)")
	samples := flag.String("samples", "docs/samples.jsonl", "the requests to enqueue")
	stateFlag := flag.String("state", ".run", "where the emulator's certificate and the settings file go")
	flag.Parse()
	bin, _ := filepath.Abs(*binFlag)
	dev := *devFlag
	if dev == "" {
		dev = filepath.Join(filepath.Dir(bin), "mapsdev"+filepath.Ext(bin))
	}
	dev, _ = filepath.Abs(dev)
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

	fmt.Printf("starting the Azure Maps emulator and managed identity endpoint (%s emulate)…\n", filepath.Base(dev))
	emu, emuEnv, err := startEmulator(dev, stateDir)
	if err != nil {
		return err
	}
	defer emu.stop(10 * time.Second)

	env := append(os.Environ(), "AzureWebJobsStorage="+az.ConnectionString())
	for _, k := range emulatorSettings {
		env = append(env, k+"="+emuEnv[k])
	}
	// A request typed in another terminal is picked up within a second;
	// polling a local Azurite costs nothing.
	env = append(env, "MAPS_MAX_POLL_INTERVAL=1s")
	fmt.Printf("  storage  %s\n  maps     %s\n  identity %s\n\n", az.QueueURL(), emuEnv["AZURE_MAPS_ENDPOINT"], emuEnv["IDENTITY_ENDPOINT"])

	fmt.Printf("starting the worker (%s run)…\n", *binFlag)
	w, err := startChild("the worker", bin, []string{"run"}, env, "worker | ", nil)
	if err != nil {
		return fmt.Errorf("starting the worker: %w", err)
	}
	// The worker's drain budget is 45 s.
	defer w.stop(time.Minute)

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
	if err := printResults(ctx, st, kinds, w.exited); err != nil {
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

// child is a process localrun started, in a process group of its own: a
// Ctrl-C reaches localrun alone, which then stops the child as the WebJobs
// runner would, giving it its drain time.
type child struct {
	name   string // for the line that says it is being stopped; "" says nothing
	cmd    *exec.Cmd
	group  *procgroup.Group
	exited chan error
}

// startChild starts bin with args and env, its stderr (and its stdout,
// unless stdout is set) printed line by line behind prefix. name is what
// stop calls it.
func startChild(name, bin string, args, env []string, prefix string, stdout io.Writer) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = prefixed(prefix), prefixed(prefix)
	if stdout != nil {
		cmd.Stdout = stdout
	}
	g, err := procgroup.Start(cmd)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, group: g, exited: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		// Whoever reads its output sees the end of it.
		for _, w := range []io.Writer{cmd.Stdout, cmd.Stderr} {
			if pw, ok := w.(*io.PipeWriter); ok {
				pw.Close()
			}
		}
		c.exited <- err
	}()
	return c, nil
}

// stop asks the child to stop and waits for it up to limit, then kills it.
func (c *child) stop(limit time.Duration) {
	defer c.group.Release()
	select {
	case err := <-c.exited:
		c.exited <- err
		return
	default:
	}
	if c.name != "" {
		fmt.Printf("\nstopping %s…\n", c.name)
	}
	if c.group.Interrupt() != nil {
		limit = 0
	}
	select {
	case <-c.exited:
	case <-time.After(limit):
		c.group.Kill()
		<-c.exited
	}
}

// emulatorSettings are the settings `mapsdev emulate` prints, the last one
// last.
var emulatorSettings = []string{"AZURE_MAPS_ENDPOINT", "AZURE_MAPS_CLIENT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "SSL_CERT_FILE"}

// startEmulator runs `mapsdev emulate`, its certificate kept in stateDir,
// and returns the settings it prints once it serves.
func startEmulator(dev, stateDir string) (*child, map[string]string, error) {
	pr, pw := io.Pipe()
	c, err := startChild("", dev, []string{"emulate", "--cert-dir", stateDir}, os.Environ(), "emulator | ", pw)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the Azure Maps emulator (%s; `make build` builds it): %w", dev, err)
	}
	got := make(chan map[string]string, 1)
	go func() {
		env := map[string]string{}
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				env[k] = v
			}
			if _, ok := env[emulatorSettings[len(emulatorSettings)-1]]; ok {
				break
			}
		}
		got <- env
		io.Copy(io.Discard, pr) // whatever else it says
	}()
	select {
	case env := <-got:
		for _, k := range emulatorSettings {
			if env[k] == "" {
				c.stop(0)
				return nil, nil, fmt.Errorf("the Azure Maps emulator stopped before it printed %s", k)
			}
		}
		return c, env, nil
	case <-time.After(30 * time.Second):
		c.stop(0)
		return nil, nil, errors.New("the Azure Maps emulator did not start within 30 s")
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
func printResults(ctx context.Context, st *worker.Storage, samples []sample, exited chan error) error {
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
			r, _, err := st.Result(ctx, s.kind, s.id)
			switch {
			case errors.Is(err, worker.ErrNoResult):
				continue
			case err != nil:
				return err
			}
			results[i] = r
			pending--
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
