package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

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
		depth, oldest, err := queueStats(ctx, q)
		if err != nil {
			return err
		}
		age := "-"
		if !oldest.IsZero() {
			age = time.Since(oldest).Round(time.Second).String()
		}
		fmt.Fprintf(w, "queue %s\t%d messages\toldest %s\n", q.Name(), depth, age)
	}
	ok, failed, scanned, err := recentResults(ctx, a.storage.Results.Client(), time.Hour)
	if err != nil {
		return err
	}
	more := ""
	if scanned >= statsScanLimit {
		more = fmt.Sprintf(" (first %d results scanned)", scanned)
	}
	fmt.Fprintf(w, "results, last hour\t%d succeeded\t%d failed%s\n", ok, failed, more)
	return w.Flush()
}

// queueStats returns a queue's approximate depth and the insertion time of
// the first visible message.
func queueStats(ctx context.Context, q *worker.AzureQueue) (int64, time.Time, error) {
	props, err := q.Client().GetProperties(ctx, nil)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue %s: %s", q.Name(), shortErr(err))
	}
	peek, err := q.Client().PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(1))})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("queue %s: %s", q.Name(), shortErr(err))
	}
	var oldest time.Time
	if len(peek.Messages) > 0 && peek.Messages[0].InsertionTime != nil {
		oldest = *peek.Messages[0].InsertionTime
	}
	return deref64(props.ApproximateMessagesCount), oldest, nil
}

// recentResults counts results modified within d, by their status metadata.
func recentResults(ctx context.Context, c *container.Client, d time.Duration) (ok, failed, scanned int, err error) {
	since := time.Now().Add(-d)
	pager := c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() && scanned < statsScanLimit {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return ok, failed, scanned, fmt.Errorf("listing results: %s", shortErr(err))
		}
		for _, b := range page.Segment.BlobItems {
			scanned++
			if b.Name == nil || !worker.IsResult(*b.Name) {
				continue
			}
			if b.Properties == nil || b.Properties.LastModified == nil || b.Properties.LastModified.Before(since) {
				continue
			}
			failedBlob := false
			for k, v := range b.Metadata {
				if (k == "status" || k == "Status") && v != nil && *v == worker.StatusFailed {
					failedBlob = true
				}
			}
			if failedBlob {
				failed++
			} else {
				ok++
			}
		}
	}
	return ok, failed, scanned, nil
}
