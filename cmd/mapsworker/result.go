package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"mapsworker/jobs"
	"mapsworker/worker"
)

func cmdResult(args []string) error {
	fs := flag.NewFlagSet("result", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the whole result document")
	fs.Usage = usageFor(fs, "result [--json] <kind> <id>",
		"Show the result of a request: its summary, or why it failed.\nExit status 0 when it succeeded, 1 when it failed, 4 when there is no result yet.",
		"mapsworker result geocode order-42",
		"mapsworker result route trip-9 --json")
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return &exitError{2, ""}
	}
	a, err := newApp(false)
	if err != nil {
		return err
	}
	r, doc, err := a.storage.Result(context.Background(), fs.Arg(0), fs.Arg(1))
	if errors.Is(err, worker.ErrNoResult) {
		return &exitError{4, fmt.Sprintf("no result for %s %s yet (still queued, in flight, or never sent)", fs.Arg(0), fs.Arg(1))}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		os.Stdout.Write(doc)
		fmt.Println()
	} else {
		printResult(os.Stdout, r)
	}
	if r.Status == worker.StatusFailed {
		return &exitError{1, ""}
	}
	return nil
}

func printResult(w io.Writer, r *worker.Result) {
	fmt.Fprintf(w, "%s %s: %s at %s (delivery %d)\n", r.Kind, r.ID, r.Status,
		r.CompletedAt.Local().Format(time.DateTime), r.DequeueCount)
	if r.Error != nil {
		fmt.Fprintf(w, "  error: %s", r.Error.Class)
		if r.Error.Code != "" && !strings.Contains(r.Error.Message, r.Error.Code) {
			fmt.Fprintf(w, " (%s)", r.Error.Code)
		}
		fmt.Fprintf(w, ": %s\n", r.Error.Message)
		return
	}
	fmt.Fprintf(w, "  %s\n", summaryLine(r))
}

// summaryLine renders a result's summary on one line.
func summaryLine(r *worker.Result) string {
	raw, _ := json.Marshal(r.Summary)
	return jobs.DescribeSummary(r.Kind, raw)
}
