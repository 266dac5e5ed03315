package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"mapsworker/worker"
)

// statsScanLimit bounds the blob listing that counts recent results: a
// listing costs one transaction per 5,000 blobs.
const statsScanLimit = 50_000

func cmdStats(args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.Usage = usageFor(fs, "stats", "Show the request and poison queue depths, the age of the oldest waiting message,\nand the results written in the last hour (counted from the container listing, up to 50,000 blobs).",
		"mapsworker stats")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(false)
	if err != nil {
		return err
	}
	ctx := context.Background()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, q := range []*worker.AzureQueue{a.storage.Requests, a.storage.Poison} {
		st, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		age := "-"
		if !st.Oldest.IsZero() {
			age = time.Since(st.Oldest).Round(time.Second).String()
		}
		fmt.Fprintf(w, "queue %s\t%d messages\toldest %s\n", q.Name(), st.Depth, age)
	}
	n, err := a.storage.CountResults(ctx, &worker.CountResultsOptions{Since: time.Now().Add(-time.Hour), MaxScan: statsScanLimit})
	if err != nil {
		return err
	}
	more := ""
	if n.Scanned >= statsScanLimit {
		more = fmt.Sprintf(" (first %d results scanned)", n.Scanned)
	}
	fmt.Fprintf(w, "results, last hour\t%d succeeded\t%d failed%s\n", n.Succeeded, n.Failed, more)
	return w.Flush()
}
