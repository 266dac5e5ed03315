package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// InstanceStatus is the document each running instance keeps at
// <container>/mapsworker-status/<instance>.json, so that one command can
// tell how every instance is doing.
type InstanceStatus struct {
	Instance string    `json:"instance"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	Stopped  bool      `json:"stopped,omitempty"`
	Every    Duration  `json:"every"` // the cadence of updates: stale past three of them
	LastOK   time.Time `json:"lastSuccess,omitzero"`
	Paused   bool      `json:"paused"` // dequeuing paused for an environment fault
	InFlight int64     `json:"inFlight"`
	Counts   Counts    `json:"counts"`
	Outages  int64     `json:"outages"`
	Renewals int64     `json:"renewals"`
	Extra    any       `json:"extra,omitempty"` // the host's own figures (Maps calls by API)
}

// Counts are deliveries by outcome since the instance started.
type Counts struct {
	Succeeded, Duplicates, Poisoned, Released, Paused, Stopped, Lost int64
}

// Duration is a time.Duration that reads and writes as "30s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Stale reports whether the instance missed three updates at now without
// saying it stopped: it crashed, or cannot reach storage.
func (s *InstanceStatus) Stale(now time.Time) bool {
	return !s.Stopped && now.Sub(s.Updated) > 3*time.Duration(s.Every)
}

// Live reports whether the instance is running and updating.
func (s *InstanceStatus) Live(now time.Time) bool { return !s.Stopped && !s.Stale(now) }

// Healthy reports whether the instance is live and dequeuing.
func (s *InstanceStatus) Healthy(now time.Time) bool { return s.Live(now) && !s.Paused }

// statusPrefix is where the status documents are kept in the results
// container; no kind of request is named so.
const statusPrefix = "mapsworker-status/"

// DefaultInstance names this process: App Service's WEBSITE_INSTANCE_ID (the
// VM) or the host name, and the process id, as one host may run several.
func DefaultInstance() string {
	base := os.Getenv("WEBSITE_INSTANCE_ID")
	if base == "" {
		base, _ = os.Hostname()
	}
	if len(base) > 16 {
		base = base[:16]
	}
	safe := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-':
			return r
		}
		return '-'
	}, base)
	return safe + "-" + strconv.Itoa(os.Getpid())
}

// PutStatus writes an instance's status document.
func (s *Storage) PutStatus(ctx context.Context, st *InstanceStatus) error {
	doc, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.results.NewBlockBlobClient(statusPrefix+st.Instance+".json").Upload(ctx,
		streaming.NopCloser(bytes.NewReader(doc)), &blockblob.UploadOptions{
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
			// In the listing, so that counting live instances reads no
			// document.
			Metadata: map[string]*string{"stopped": to.Ptr(strconv.FormatBool(st.Stopped))},
		})
	return redactErr(err)
}

// LiveInstances counts the instances whose status document was updated
// within stale of the newest one (this instance's, just written: the
// service's clock, not ours) and that did not stop. One listing request.
func (s *Storage) LiveInstances(ctx context.Context, stale time.Duration) (int, error) {
	type doc struct {
		at      time.Time
		stopped bool
	}
	var docs []doc
	var newest time.Time
	pager := s.results.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: to.Ptr(statusPrefix), Include: container.ListBlobsInclude{Metadata: true},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("listing instance status: %w", redactErr(err))
		}
		for _, it := range page.Segment.BlobItems {
			if it.Properties == nil || it.Properties.LastModified == nil {
				continue
			}
			d := doc{at: *it.Properties.LastModified}
			for k, v := range it.Metadata {
				if strings.EqualFold(k, "stopped") && v != nil && *v == "true" {
					d.stopped = true
				}
			}
			docs = append(docs, d)
			if d.at.After(newest) {
				newest = d.at
			}
		}
	}
	n := 0
	for _, d := range docs {
		if !d.stopped && newest.Sub(d.at) <= stale {
			n++
		}
	}
	return max(n, 1), nil
}

// Statuses reads every instance's status document, newest first. Documents
// of instances stopped or silent for longer than forget are deleted.
func (s *Storage) Statuses(ctx context.Context, forget time.Duration) ([]*InstanceStatus, error) {
	var out []*InstanceStatus
	pager := s.results.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(statusPrefix)})
	now := time.Now()
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing instance status: %w", redactErr(err))
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil {
				continue
			}
			b := s.results.NewBlobClient(*it.Name)
			if forget > 0 && it.Properties != nil && it.Properties.LastModified != nil && now.Sub(*it.Properties.LastModified) > forget {
				b.Delete(ctx, nil)
				continue
			}
			resp, err := b.DownloadStream(ctx, nil)
			if err != nil {
				continue // deleted meanwhile
			}
			data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			var st InstanceStatus
			if err != nil || json.Unmarshal(data, &st) != nil {
				continue
			}
			out = append(out, &st)
		}
	}
	return out, nil
}

// StatusOptions configure a StatusWriter.
type StatusOptions struct {
	// Instance names this instance; default DefaultInstance().
	Instance string
	// Version is the worker's version.
	Version string
	// Every is the cadence of updates. Default DefaultStatusEvery.
	Every time.Duration
	// Extra, when set, adds the host's figures to each document.
	Extra func() any
	// Logger receives a warning when writes fail (once per burst).
	Logger *slog.Logger
	// Peers, when set, is told after each write how many instances are
	// live (this one included), so that they share what is per account.
	Peers func(n int)
}

// DefaultStatusEvery is the default cadence of status updates: a write
// and, with Peers, a listing every 10 s (0.2 requests a second), so that a
// joining or stopping instance is counted within 10 s, a crashed one within
// 30 s.
const DefaultStatusEvery = 10 * time.Second

// StatusWriter keeps an instance's status document up to date while its
// engine runs.
type StatusWriter struct {
	st  *Storage
	e   *Engine
	o   StatusOptions
	doc InstanceStatus
	// ctx ends at Stop, cutting a periodic write or count under way: the
	// stop must not wait on storage that does not answer.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewStatusWriter returns a writer for e's status; Start it, and Stop it
// when the engine has stopped.
func NewStatusWriter(st *Storage, e *Engine, opts *StatusOptions) *StatusWriter {
	o := StatusOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Instance == "" {
		o.Instance = DefaultInstance()
	}
	if o.Every <= 0 {
		o.Every = DefaultStatusEvery
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &StatusWriter{st: st, e: e, o: o, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		doc: InstanceStatus{Instance: o.Instance, Version: o.Version, Started: time.Now().UTC(), Every: Duration(o.Every)}}
}

// Instance is the name of this instance's document.
func (w *StatusWriter) Instance() string { return w.o.Instance }

// Start writes the document now and then every Every.
func (w *StatusWriter) Start() {
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.o.Every)
		defer t.Stop()
		for {
			w.write(w.ctx, false)
			w.countPeers()
			select {
			case <-w.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop writes the document a last time, saying the instance stopped.
func (w *StatusWriter) Stop() {
	w.cancel()
	<-w.done
	w.write(context.Background(), true)
}

func (w *StatusWriter) write(parent context.Context, stopped bool) {
	s := w.e.Stats()
	d := &w.doc
	d.Updated, d.Stopped = time.Now().UTC(), stopped
	d.Paused = w.e.Paused()
	d.InFlight = s.InFlight.Load()
	d.Counts = Counts{s.Succeeded.Load(), s.Duplicates.Load(), s.Poisoned.Load(), s.Released.Load(),
		s.Paused.Load(), s.Stopped.Load(), s.Lost.Load()}
	d.Outages, d.Renewals = s.Outages.Load(), s.Renewals.Load()
	if at := w.e.lastOK.Load(); at != 0 {
		d.LastOK = time.Unix(0, at).UTC()
	}
	if w.o.Extra != nil {
		d.Extra = w.o.Extra()
	}
	timeout := w.e.opts.StorageTimeout
	if stopped {
		// The last write comes after the drain; it must not hold the exit
		// the WebJobs runner is waiting for.
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	if err := w.st.PutStatus(ctx, d); err != nil && parent.Err() == nil && w.e.budget.allow("statusWrites") {
		w.o.Logger.Warn("could not write this instance's status document", "err", err)
	}
}

// countPeers tells Peers how many instances are live.
func (w *StatusWriter) countPeers() {
	if w.o.Peers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.e.opts.StorageTimeout)
	defer cancel()
	if n, err := w.st.LiveInstances(ctx, 3*w.o.Every); err == nil {
		w.o.Peers(n)
	}
}
