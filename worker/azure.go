package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"mapsworker/internal/redact"
)

// Storage is the engine's view of an Azure Storage account: the request
// queue, its poison queue and the results container.
type Storage struct {
	queues    *azqueue.ServiceClient
	Requests  *AzureQueue
	Poison    *AzureQueue
	results   *container.Client
	Results   *AzureResults
	blobURL   string
	queueName string
	container string
}

// The names of the request queue and the results container where the
// configuration gives none.
const (
	DefaultQueue     = "maps-requests"
	DefaultContainer = "maps-results"
)

// StorageOptions configure NewStorage.
type StorageOptions struct {
	// Queue is the request queue; the poison queue is Queue + "-poison".
	// Default DefaultQueue.
	Queue string
	// Container holds the results. Default DefaultContainer.
	Container string
	// ClientOptions apply to both clients (transport, retry, logging). A
	// zero Retry.TryTimeout becomes DefaultStorageTryTimeout, and a nil
	// Transport one that never follows a redirect.
	ClientOptions azcore.ClientOptions
}

// DefaultStorageTryTimeout bounds each try of a storage request, so that a
// storage front end that accepts a request and never answers costs a try,
// not the worker.
const DefaultStorageTryTimeout = 15 * time.Second

// clientOptions returns the azcore options with the defaults filled in.
func (o *StorageOptions) clientOptions() azcore.ClientOptions {
	var co azcore.ClientOptions
	if o != nil {
		co = o.ClientOptions
	}
	if co.Retry.TryTimeout == 0 {
		co.Retry.TryTimeout = DefaultStorageTryTimeout
	}
	if co.Transport == nil {
		co.Transport = NoRedirectClient()
	}
	return co
}

// NoRedirectClient returns an HTTP client that never follows a redirect: a
// 3xx answer is returned as it is. Go's client forwards headers on a
// redirect to the same host even over plain http, and custom headers (a
// shared key) to any host; Azure's data planes do not redirect, so no
// credential has a reason to cross one.
func NoRedirectClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Enough idle connections for a full prefetch in flight at once.
	tr.MaxIdleConnsPerHost = 128
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (o *StorageOptions) names() (queue, container string) {
	queue, container = DefaultQueue, DefaultContainer
	if o != nil && o.Queue != "" {
		queue = o.Queue
	}
	if o != nil && o.Container != "" {
		container = o.Container
	}
	return queue, container
}

// NewStorageFromConnectionString connects with a storage connection string
// (Azurite's, or an account key for development).
func NewStorageFromConnectionString(conn string, opts *StorageOptions) (*Storage, error) {
	co := opts.clientOptions()
	qs, err := azqueue.NewServiceClientFromConnectionString(conn, &azqueue.ClientOptions{ClientOptions: co})
	if err != nil {
		return nil, fmt.Errorf("AzureWebJobsStorage: %w", redactErr(err))
	}
	bs, err := azblob.NewClientFromConnectionString(conn, &azblob.ClientOptions{ClientOptions: co})
	if err != nil {
		return nil, fmt.Errorf("AzureWebJobsStorage: %w", redactErr(err))
	}
	return newStorage(qs, bs, opts), nil
}

// NewStorage connects to the queue and blob services with an Entra
// credential (identity-based connection: no secret in configuration).
func NewStorage(queueServiceURL, blobServiceURL string, cred azcore.TokenCredential, opts *StorageOptions) (*Storage, error) {
	co := opts.clientOptions()
	qs, err := azqueue.NewServiceClient(queueServiceURL, cred, &azqueue.ClientOptions{ClientOptions: co})
	if err != nil {
		return nil, err
	}
	bs, err := azblob.NewClient(blobServiceURL, cred, &azblob.ClientOptions{ClientOptions: co})
	if err != nil {
		return nil, err
	}
	return newStorage(qs, bs, opts), nil
}

func newStorage(qs *azqueue.ServiceClient, bs *azblob.Client, opts *StorageOptions) *Storage {
	qn, cn := opts.names()
	cc := bs.ServiceClient().NewContainerClient(cn)
	return &Storage{
		queues:    qs,
		Requests:  &AzureQueue{c: qs.NewQueueClient(qn), name: qn},
		Poison:    &AzureQueue{c: qs.NewQueueClient(qn + "-poison"), name: qn + "-poison"},
		results:   cc,
		Results:   &AzureResults{c: cc},
		blobURL:   bs.URL(),
		queueName: qn,
		container: cn,
	}
}

// Ensure creates the queues and the container where they are missing. Where
// the identity may not create them (403), it says so once and carries on
// with what exists: least-privilege roles do not include creating.
func (s *Storage) Ensure(ctx context.Context, log *slog.Logger) error {
	denied := []string{}
	for _, q := range []*AzureQueue{s.Requests, s.Poison} {
		_, err := q.c.Create(ctx, nil)
		switch {
		case err == nil, queueerror.HasCode(err, queueerror.QueueAlreadyExists):
		case isForbidden(err):
			denied = append(denied, "queue "+q.name)
		default:
			return fmt.Errorf("creating queue %s: %w", q.name, redactErr(err))
		}
	}
	_, err := s.results.Create(ctx, nil)
	switch {
	case err == nil, bloberror.HasCode(err, bloberror.ContainerAlreadyExists):
	case isForbidden(err):
		denied = append(denied, "container "+s.container)
	default:
		return fmt.Errorf("creating container %s: %w", s.container, redactErr(err))
	}
	if len(denied) > 0 {
		log.Warn("not allowed to create storage resources; using them as they exist",
			"resources", strings.Join(denied, ", "))
	}
	return nil
}

func isForbidden(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// AzureQueue is a Storage queue. It implements Queue and PoisonQueue.
type AzureQueue struct {
	c    *azqueue.QueueClient
	name string
}

// Name returns the queue's name.
func (q *AzureQueue) Name() string { return q.name }

// Client returns the underlying azqueue client, for tests and tools that
// need more of the service than Storage offers.
func (q *AzureQueue) Client() *azqueue.QueueClient { return q.c }

// Receive implements Queue.
func (q *AzureQueue) Receive(ctx context.Context, n int, visibility time.Duration) ([]*Message, error) {
	resp, err := q.c.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
		NumberOfMessages:  to.Ptr(int32(min(max(n, 1), 32))),
		VisibilityTimeout: to.Ptr(seconds(visibility, 1)),
	})
	if err != nil {
		return nil, redactErr(err)
	}
	out := make([]*Message, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		out = append(out, newMessage(m.MessageID, m.PopReceipt, m.MessageText, m.DequeueCount, m.InsertionTime, m.ExpirationTime))
	}
	return out, nil
}

// newMessage makes a Message of the fields the service answered with.
func newMessage(id, pop, text *string, dequeues *int64, inserted, expires *time.Time) *Message {
	msg := &Message{ID: deref(id), PopReceipt: deref(pop), Text: deref(text)}
	if dequeues != nil {
		msg.DequeueCount = *dequeues
	}
	if inserted != nil {
		msg.InsertedAt = inserted.UTC()
	}
	if expires != nil && expires.Year() < neverExpires {
		msg.ExpiresAt = expires.UTC()
	}
	return msg
}

// neverExpires is the year from which an expiry time means "never": the
// service reports 9999-12-31 for a time-to-live of -1.
const neverExpires = 9999

// Peek implements Queue.
func (q *AzureQueue) Peek(ctx context.Context, n int) ([]*Message, error) {
	resp, err := q.c.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(min(max(n, 1), 32)))})
	if err != nil {
		return nil, redactErr(err)
	}
	out := make([]*Message, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		out = append(out, newMessage(m.MessageID, nil, m.MessageText, m.DequeueCount, m.InsertionTime, m.ExpirationTime))
	}
	return out, nil
}

// Update implements Queue. azcore's retry is off for it: an update whose
// answer was lost may have changed the pop receipt, and a retry with the old
// one would be refused as if the message were gone.
func (q *AzureQueue) Update(ctx context.Context, id, popReceipt, text string, visibility time.Duration) (string, error) {
	ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1, TryTimeout: DefaultStorageTryTimeout})
	resp, err := q.c.UpdateMessage(ctx, id, popReceipt, text, &azqueue.UpdateMessageOptions{
		VisibilityTimeout: to.Ptr(seconds(visibility, 0)),
	})
	if err != nil {
		return "", lostOr(err)
	}
	return deref(resp.PopReceipt), nil
}

// Delete implements Queue.
func (q *AzureQueue) Delete(ctx context.Context, id, popReceipt string) error {
	_, err := q.c.DeleteMessage(ctx, id, popReceipt, nil)
	if err != nil {
		return lostOr(err)
	}
	return nil
}

// Send implements PoisonQueue.
func (q *AzureQueue) Send(ctx context.Context, text string) error {
	_, err := q.Enqueue(ctx, text)
	return err
}

// Enqueue adds a message that never expires and returns its id.
func (q *AzureQueue) Enqueue(ctx context.Context, text string) (string, error) {
	resp, err := q.c.EnqueueMessage(ctx, text, &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(-1))})
	if err != nil {
		return "", redactErr(err)
	}
	if len(resp.Messages) == 0 {
		return "", nil
	}
	return deref(resp.Messages[0].MessageID), nil
}

func lostOr(err error) error {
	if queueerror.HasCode(err, queueerror.MessageNotFound, queueerror.PopReceiptMismatch) {
		return fmt.Errorf("%w: %s", ErrMessageLost, errorCode(err))
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %s", ErrMessageLost, errorCode(err))
	}
	return redactErr(err)
}

// AzureResults is the results container. It implements Results.
type AzureResults struct {
	c *container.Client
}

// Client returns the underlying container client, for tests and tools that
// need more of the service than Storage offers.
func (r *AzureResults) Client() *container.Client { return r.c }

// statusKey is the blob metadata that tells a failed result from a
// succeeded one without reading the body.
const statusKey = "status"

// Put implements Results. The conditional create (If-None-Match: *) makes
// writing idempotent at no extra cost: 409 BlobAlreadyExists means done.
// A failed result gives way to any later outcome (a replayed message) and a
// succeeded one is final; every replacement is conditional on the ETag just
// read, and a lost race is decided again on what the winner wrote, so a
// success is never overwritten by a failure.
func (r *AzureResults) Put(ctx context.Context, name string, doc []byte, failed bool) error {
	status := StatusSucceeded
	if failed {
		status = StatusFailed
	}
	b := r.c.NewBlockBlobClient(name)
	opts := &blockblob.UploadOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
		Metadata:    map[string]*string{statusKey: to.Ptr(status)},
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
			IfNoneMatch: to.Ptr(azcore.ETagAny),
		}},
	}
	_, err := b.Upload(ctx, streaming.NopCloser(bytes.NewReader(doc)), opts)
	for range 8 {
		switch {
		case err == nil:
			return nil
		case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || isStatus(err, http.StatusPreconditionFailed):
		case bloberror.HasCode(err, bloberror.BlobNotFound):
			// Deleted since we looked: create it again.
			opts.AccessConditions.ModifiedAccessConditions = &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}
			_, err = b.Upload(ctx, streaming.NopCloser(bytes.NewReader(doc)), opts)
			continue
		default:
			return redactErr(err)
		}
		// Written by someone else: decide on what is there now.
		props, perr := b.GetProperties(ctx, nil)
		if perr != nil {
			if bloberror.HasCode(perr, bloberror.BlobNotFound) || isStatus(perr, http.StatusNotFound) {
				err = perr
				continue
			}
			return redactErr(perr)
		}
		if metaStatus(props.Metadata) != StatusFailed {
			return ErrResultExists
		}
		opts.AccessConditions.ModifiedAccessConditions = &blob.ModifiedAccessConditions{IfMatch: props.ETag}
		_, err = b.Upload(ctx, streaming.NopCloser(bytes.NewReader(doc)), opts)
	}
	return fmt.Errorf("storage: result %s kept changing under concurrent writers", name)
}

// PutText implements Results.
func (r *AzureResults) PutText(ctx context.Context, name, text string) error {
	_, err := r.c.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(strings.NewReader(text)), &blockblob.UploadOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain; charset=utf-8")},
	})
	return redactErr(err)
}

// Text returns the text of a blob PutText wrote.
func (r *AzureResults) Text(ctx context.Context, name string) (string, error) {
	resp, err := r.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return "", redactErr(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	return b.String(), nil
}

// Succeeded implements Results.
func (r *AzureResults) Succeeded(ctx context.Context, name string) (bool, error) {
	props, err := r.c.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) || isStatus(err, http.StatusNotFound) {
			return false, nil
		}
		return false, redactErr(err)
	}
	return metaStatus(props.Metadata) != StatusFailed, nil
}

func metaStatus(md map[string]*string) string {
	for k, v := range md {
		if strings.EqualFold(k, statusKey) && v != nil {
			return *v
		}
	}
	return ""
}

func isStatus(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

func errorCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		return http.StatusText(re.StatusCode)
	}
	return "error"
}

// redactErr shortens a storage error to its status, code and request id.
// azcore's ResponseError text carries the whole response and the request
// URL, which may hold a SAS token; it never reaches a log or an envelope.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		var ue *url.Error
		if errors.As(err, &ue) {
			// A transport error names the request URL, whose query may
			// hold a SAS signature or a pop receipt.
			return &cleanErr{msg: "storage " + ue.Op + " " + redact.URL(ue.URL) + ": " + redact.Text(ue.Err.Error()), err: err}
		}
		return err
	}
	op := ""
	if re.RawResponse != nil && re.RawResponse.Request != nil {
		op = re.RawResponse.Request.Method + " " + re.RawResponse.Request.URL.Path
	}
	rid := ""
	if re.RawResponse != nil {
		rid = re.RawResponse.Header.Get("x-ms-request-id")
	}
	return &storageErr{status: re.StatusCode, code: re.ErrorCode, op: op, requestID: rid, err: re}
}

type storageErr struct {
	status    int
	code, op  string
	requestID string
	err       *azcore.ResponseError
}

func (e *storageErr) Error() string {
	s := fmt.Sprintf("storage %s: %d %s", e.op, e.status, e.code)
	if e.requestID != "" {
		s += " (request id " + e.requestID + ")"
	}
	return s
}

func (e *storageErr) Unwrap() error { return e.err }

// Is reports a refusal of the request for what it is: 400 (bad request,
// e.g. an invalid text) and 413 (too large). Sending it again cannot help.
func (e *storageErr) Is(target error) bool {
	return target == ErrRefused && (e.status == http.StatusBadRequest || e.status == http.StatusRequestEntityTooLarge)
}

// cleanErr is an error with a message of our own making.
type cleanErr struct {
	msg string
	err error
}

func (e *cleanErr) Error() string { return e.msg }
func (e *cleanErr) Unwrap() error { return e.err }

func seconds(d time.Duration, floor int32) int32 {
	s := int32((d + time.Second - 1) / time.Second)
	return max(s, floor)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
