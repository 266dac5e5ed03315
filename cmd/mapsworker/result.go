package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

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
	doc, r, err := fetchResult(context.Background(), a.storage, fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	if doc == nil {
		return &exitError{4, fmt.Sprintf("no result for %s %s yet (still queued, in flight, or never sent)", fs.Arg(0), fs.Arg(1))}
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

// fetchResult reads a result document; (nil, nil, nil) when there is none.
func fetchResult(ctx context.Context, st *worker.Storage, kind, id string) ([]byte, *worker.Result, error) {
	resp, err := st.Results.Client().NewBlobClient(worker.ResultName(kind, id)).DownloadStream(ctx, nil)
	if err != nil {
		// No container yet (no worker has run) is no result yet, too.
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("reading the result: %s", shortErr(err))
	}
	defer resp.Body.Close()
	doc, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	var r worker.Result
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, nil, fmt.Errorf("result document is not valid: %w", err)
	}
	return doc, &r, nil
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
