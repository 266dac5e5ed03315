package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"mapsworker/worker"
)

// exitUnhealthy is status's exit status when no instance is healthy or the
// oldest waiting message is older than --max-age: usable as a probe or an
// alert script.
const exitUnhealthy = 1

// statusForget is how long status documents of stopped or silent instances
// are kept; status deletes older ones as it lists them.
const statusForget = 24 * time.Hour

func cmdStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	maxAge := fs.Duration("max-age", 15*time.Minute, "unhealthy when the oldest waiting request is older than this (0: never)")
	fs.Usage = usageFor(fs, "status [--max-age D]",
		"Show every worker instance (from the status documents they keep in the results container), flag\n"+
			"stale ones, and the request queue's depth and oldest message. Exit status 1 when no instance is\n"+
			"healthy (running, updating, not paused for a fault) or the oldest request waited longer than --max-age.",
		"mapsworker status", "mapsworker status --max-age 5m || page-the-on-call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(false)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sts, err := a.storage.Statuses(ctx, statusForget)
	if err != nil {
		return fmt.Errorf("%s", shortErr(err))
	}
	q, err := a.storage.Requests.Stats(ctx)
	if err != nil {
		return err
	}
	return reportStatus(os.Stdout, sts, q.Depth, q.Oldest, *maxAge, time.Now())
}

// reportStatus prints the instances and the queue, and returns an exit
// error when the deployment is not healthy.
func reportStatus(out io.Writer, sts []*worker.InstanceStatus, depth int64, oldest time.Time, maxAge time.Duration, now time.Time) error {
	sort.Slice(sts, func(i, j int) bool { return sts[i].Started.After(sts[j].Started) })
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "INSTANCE\tSTATE\tVERSION\tUP\tUPDATED\tSUCCEEDED\tPOISONED\tRELEASED\tIN FLIGHT\tLAST SUCCESS")
	healthy := 0
	for _, s := range sts {
		state := "running"
		switch {
		case s.Stopped:
			state = "stopped"
		case s.Stale(now):
			state = "STALE"
		case s.Paused:
			state = "paused"
		}
		if s.Healthy(now) {
			healthy++
		}
		last := "-"
		if !s.LastOK.IsZero() {
			last = ago(now, s.LastOK)
		}
		up := s.Updated.Sub(s.Started).Round(time.Second)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Instance, state, s.Version, up, ago(now, s.Updated),
			s.Counts.Succeeded+s.Counts.Duplicates, s.Counts.Poisoned, s.Counts.Released+s.Counts.Paused, s.InFlight, last)
	}
	age := "-"
	if !oldest.IsZero() {
		age = now.Sub(oldest).Round(time.Second).String()
	}
	w.Flush()
	fmt.Fprintf(out, "%d of %d instances healthy; queue %d messages, oldest %s\n", healthy, len(sts), depth, age)
	switch {
	case healthy == 0:
		return &exitError{exitUnhealthy, "unhealthy: no instance is running and dequeuing"}
	case maxAge > 0 && !oldest.IsZero() && now.Sub(oldest) > maxAge:
		return &exitError{exitUnhealthy, fmt.Sprintf("unhealthy: the oldest request has waited %s, more than %s", age, maxAge)}
	}
	return nil
}

func ago(now, t time.Time) string {
	return now.Sub(t).Round(time.Second).String() + " ago"
}
