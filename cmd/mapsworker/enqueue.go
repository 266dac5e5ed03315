package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"mapsworker/jobs"
	"mapsworker/worker"
)

func cmdEnqueue(args []string) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	file := fs.String("file", "", "read requests from a JSON-lines `file` (- for stdin)")
	encoding := fs.String("encoding", "base64", "message encoding: base64 (as Functions producers write) or raw")
	id := fs.String("id", "", "request id (default: the queue message id)")
	mode := fs.String("mode", "", "route travel mode: driving, truck or walking")
	top := fs.Int("top", 0, "geocode: number of matches (1-20)")
	parallel := fs.Int("parallel", 16, "messages sent at once")
	fields := fieldsFlag{}
	fs.Var(fields, "set", "a further request `field=value`, the value JSON or else a string (repeatable):\n--set avoid='[\"tollRoads\"]' --set maxRouteCount=2 --set language=de-DE")
	var examples []string
	for _, e := range jobs.KindExamples() {
		examples = append(examples, "mapsworker enqueue "+e)
	}
	examples = append(examples, `mapsworker enqueue route 47.6303,-122.1387 47.6101,-122.2015 --mode truck --set 'avoid=["tollRoads"]' --set maxRouteCount=2`,
		`mapsworker enqueue --file requests.jsonl`, `cat requests.jsonl | mapsworker enqueue --file -`)
	fs.Usage = usageFor(fs, "enqueue [flags] <kind> <args…> | enqueue --file requests.jsonl",
		"Validate requests exactly as the worker does and send them to the request queue.\nPrints one line per message: the request id (the queue message id when the request has none).",
		examples...)
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *encoding != "base64" && *encoding != "raw" {
		return &exitError{2, "--encoding must be base64 or raw"}
	}
	var lines []line
	switch {
	case *file != "" && fs.NArg() > 0:
		return &exitError{2, "give either --file or a request on the command line"}
	case *file != "":
		var r io.Reader = os.Stdin
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		var err error
		if lines, err = readLines(r); err != nil {
			return err
		}
	case fs.NArg() > 0:
		body, err := jobs.RequestFromArgs(fs.Arg(0), fs.Args()[1:], *id, jobs.ArgOptions{Top: *top, TravelMode: *mode, Fields: fields})
		if err != nil {
			return &exitError{2, err.Error()}
		}
		lines = []line{{1, body}}
	default:
		fs.Usage()
		return &exitError{2, ""}
	}

	// Validate everything before sending anything.
	h := jobs.NewHandler(nil, nil)
	bad := 0
	for _, l := range lines {
		if _, err := h.Decode(l.body, "00000000-0000-0000-0000-000000000000"); err != nil {
			fmt.Fprintf(os.Stderr, "line %d: %s (%s)\n", l.n, err, worker.CodeOf(err))
			bad++
		}
	}
	if bad > 0 {
		return &exitError{1, fmt.Sprintf("%d of %d requests are invalid; nothing was sent", bad, len(lines))}
	}

	a, err := newApp(false)
	if err != nil {
		return err
	}
	ctx := context.Background()
	ids := make([]string, len(lines))
	var firstErr error
	var mu sync.Mutex
	var sent atomic.Int64
	progress := newProgress(len(lines))
	sem := make(chan struct{}, max(1, *parallel))
	var wg sync.WaitGroup
	for i, l := range lines {
		text := string(l.body)
		if *encoding == "base64" {
			text = base64.StdEncoding.EncodeToString(l.body)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			msgID, err := a.storage.Requests.Enqueue(ctx, text)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("line %d: %w", l.n, err)
				}
				mu.Unlock()
				return
			}
			ids[i] = requestID(l.body, msgID)
			progress.set(sent.Add(1))
		})
	}
	wg.Wait()
	progress.done()
	for _, id := range ids {
		if id != "" {
			fmt.Println(id)
		}
	}
	if firstErr != nil {
		if queueerror.HasCode(firstErr, queueerror.QueueNotFound) {
			return fmt.Errorf("%d of %d sent: queue %s does not exist: start `mapsworker run` once (it creates the queues) or create it", sent.Load(), len(lines), a.s.Queue)
		}
		return fmt.Errorf("%d of %d sent: %w", sent.Load(), len(lines), firstErr)
	}
	return nil
}

type line struct {
	n    int
	body []byte
}

func readLines(r io.Reader) ([]line, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var out []line
	for n := 1; sc.Scan(); n++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		out = append(out, line{n, bytes.Clone(b)})
	}
	return out, sc.Err()
}

// fieldsFlag collects --set name=value flags.
type fieldsFlag map[string]string

func (f fieldsFlag) String() string { return "" }

func (f fieldsFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not name=value", s)
	}
	f[strings.TrimSpace(name)] = value
	return nil
}

// requestID is the id a request's result is named by.
func requestID(body []byte, msgID string) string {
	var r struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &r) == nil && r.ID != "" {
		return r.ID
	}
	return msgID
}

// parseInterspersed parses flags that may come after positional arguments
// (`enqueue route A B --mode truck`). An argument that starts with a minus
// and a digit is a coordinate, not a flag (`reverse-geocode -33.86,151.21`);
// everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) < 2 || a[0] != '-' || a[1] >= '0' && a[1] <= '9' || a[1] == '.':
			pos = append(pos, a)
		default:
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			f := fs.Lookup(name)
			if f == nil {
				continue // fs.Parse reports it
			}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	if err := fs.Parse(flags); err != nil {
		return err
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// progress draws a bar on a terminal for large inputs, and nothing otherwise.
type progress struct {
	total int
	on    bool
	last  time.Time
	mu    sync.Mutex
}

func newProgress(total int) *progress {
	fi, err := os.Stderr.Stat()
	return &progress{total: total, on: total >= 100 && err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) set(n int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && int(n) != p.total {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := int(n) * width / p.total
	fmt.Fprintf(os.Stderr, "\r[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(os.Stderr)
	}
}
