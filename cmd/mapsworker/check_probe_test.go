package main

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// A probe message that check leaves behind (it died before the delete) is
// never given to a worker while hidden, and is gone a second after.
func TestCheckProbeLeftBehindVanishes(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	q := te.storage.Requests.Client()
	ctx := context.Background()
	if _, err := enqueueProbe(ctx, q, "mapsworker-check-left", 2); err != nil {
		t.Fatal(err)
	}
	dequeue := func() int {
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Messages)
	}
	if n := dequeue(); n != 0 {
		t.Fatalf("a worker got %d probe message(s) while hidden", n)
	}
	time.Sleep(3500 * time.Millisecond)
	if n := dequeue(); n != 0 {
		t.Fatalf("the probe message is still there after it expired: %d", n)
	}
}
