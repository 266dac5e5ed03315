package worker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// checkpointPrefix is where checkpoints are kept in the results container.
// Their names end without ".json", so that nothing takes them for results
// (IsResult), whatever folder a kind uses.
const checkpointPrefix = "mapsworker-ops/"

// maxCheckpointBytes bounds what Get reads: a checkpoint is a few hundred
// bytes.
const maxCheckpointBytes = 64 << 10

// CheckpointStore keeps the checkpoints of long-running requests (the
// operation of an asynchronous route matrix between its submission and its
// result) as blobs of the results container, under mapsworker-ops/<name>:
// they outlive the process that wrote them, so that the next delivery of the
// message, in any instance, resumes the work. It implements
// jobs.Checkpoints and is safe for concurrent use.
type CheckpointStore struct {
	c *container.Client
}

// Checkpoints returns the store of checkpoints in the results container.
func (s *Storage) Checkpoints() *CheckpointStore { return &CheckpointStore{c: s.results} }

// CheckpointBlobName is the blob that holds the checkpoint name.
func CheckpointBlobName(name string) string { return checkpointPrefix + name }

// checkName refuses a name that could leave the checkpoints' folder.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("storage: checkpoint name %q is not a relative blob name", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("storage: checkpoint name %q has an empty, . or .. segment", name)
		}
	}
	return nil
}

// Get returns the checkpoint name, or nil and no error when there is none
// (the container missing included).
func (cs *CheckpointStore) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	resp, err := cs.c.NewBlobClient(CheckpointBlobName(name)).DownloadStream(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the checkpoint %s: %w", name, redactErr(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckpointBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint %s: %w", name, err)
	}
	if len(b) > maxCheckpointBytes {
		return nil, fmt.Errorf("the checkpoint %s is larger than %d bytes", name, maxCheckpointBytes)
	}
	return b, nil
}

// Put writes the checkpoint name, replacing any.
func (cs *CheckpointStore) Put(ctx context.Context, name string, b []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := cs.c.NewBlockBlobClient(CheckpointBlobName(name)).Upload(ctx, streaming.NopCloser(bytes.NewReader(b)), &blockblob.UploadOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
	})
	if err != nil {
		return fmt.Errorf("writing the checkpoint %s: %w", name, redactErr(err))
	}
	return nil
}

// Delete removes the checkpoint name; one that does not exist is no error.
func (cs *CheckpointStore) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := cs.c.NewBlobClient(CheckpointBlobName(name)).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return fmt.Errorf("deleting the checkpoint %s: %w", name, redactErr(err))
	}
	return nil
}
