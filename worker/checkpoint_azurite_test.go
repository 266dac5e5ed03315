package worker_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/worker"
)

// Checkpoints are blobs of the results container under mapsworker-ops/:
// written, read, replaced and deleted by name; reading or deleting one that
// is not there is no error; no result listing counts them.
func TestCheckpointStore(t *testing.T) {
	st := newStorage(t)
	cs := st.Checkpoints()
	ctx := context.Background()
	const name = "route-matrix/plan-42"
	if b, err := cs.Get(ctx, name); b != nil || err != nil {
		t.Fatalf("before any: %q, %v", b, err)
	}
	if err := cs.Put(ctx, name, []byte(`{"operation":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := cs.Put(ctx, name, []byte(`{"operation":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if b, err := cs.Get(ctx, name); string(b) != `{"operation":"b"}` || err != nil {
		t.Fatalf("after two writes: %q, %v", b, err)
	}
	blob := worker.CheckpointBlobName(name)
	if blob != "mapsworker-ops/route-matrix/plan-42" || worker.IsResult(blob) {
		t.Errorf("checkpoint blob %q (a result: %v)", blob, worker.IsResult(blob))
	}
	props, err := st.Results.Client().NewBlobClient(blob).GetProperties(ctx, nil)
	if err != nil || props.ContentType == nil || *props.ContentType != "application/json" {
		t.Errorf("blob properties: %v, %v", props.ContentType, err)
	}
	if _, err := st.Results.Client().NewBlobClient(worker.ResultName("route-matrix", "plan-42")).GetProperties(ctx, nil); err == nil {
		t.Error("a checkpoint stands where its request's result goes")
	}
	if err := cs.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if b, err := cs.Get(ctx, name); b != nil || err != nil {
		t.Fatalf("after delete: %q, %v", b, err)
	}
	if err := cs.Delete(ctx, name); err != nil {
		t.Errorf("deleting again: %v", err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", `a\b`, "."} {
		if err := cs.Put(ctx, bad, []byte("{}")); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

// Before the worker has created its container, there is no checkpoint:
// nothing to resume, not an error.
func TestCheckpointStoreWithoutContainer(t *testing.T) {
	az := azuritetest.New(t, nil)
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{Container: "not-yet"})
	if err != nil {
		t.Fatal(err)
	}
	cs := st.Checkpoints()
	ctx := context.Background()
	if b, err := cs.Get(ctx, "route-matrix/x"); b != nil || err != nil {
		t.Errorf("get: %q, %v", b, err)
	}
	if err := cs.Delete(ctx, "route-matrix/x"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := cs.Put(ctx, "route-matrix/x", []byte("{}")); err == nil || strings.Contains(err.Error(), "AccountKey") {
		t.Errorf("put without a container: %v", err)
	}
	if err := st.Ensure(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if err := cs.Put(ctx, "route-matrix/x", []byte("{}")); err != nil {
		t.Errorf("put once the container exists: %v", err)
	}
}
