package maps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// KeySource supplies the Azure Maps shared key, typically from a Key Vault
// secret so that the key can be rotated without redeploying.
//
// Key returns the current key and is called for every request, so it should
// answer from memory. Refresh re-reads the key from its store and returns it;
// the client calls it when Maps refuses the key (401 or 403). Many requests
// may be refused at once after a rotation, so an implementation should let
// concurrent Refresh calls share one read. Errors must not contain the key.
type KeySource interface {
	Key(ctx context.Context) (string, error)
	Refresh(ctx context.Context) (string, error)
}

// keyPolicy authorizes requests with the shared key and, when Maps refuses
// it, retries once with a refreshed key: after a rotation the first refusal
// is the only sign that the key changed.
type keyPolicy struct {
	keys KeySource
}

// Do implements policy.Policy.
func (p *keyPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	// NewClientWithKey checked the endpoint; this guards against a request
	// redirected or rewritten to plain HTTP by another policy.
	if !strings.EqualFold(raw.URL.Scheme, "https") {
		return nil, errors.New("maps: refusing to send the shared key over a non-https connection")
	}
	ctx := raw.Context()
	key, err := p.keys.Key(ctx)
	if err != nil {
		return nil, &TokenError{Err: fmt.Errorf("reading the Azure Maps shared key: %w", err)}
	}
	if key == "" {
		return nil, &TokenError{Err: errors.New("the Azure Maps shared key is empty")}
	}
	raw.Header.Set(headerSubscriptionKey, key)
	resp, err := req.Next()
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}

	// Refused. Another request may have refreshed the key already; if not,
	// refresh it now.
	fresh, err := p.keys.Key(ctx)
	if err != nil || fresh == key || fresh == "" {
		fresh, err = p.keys.Refresh(ctx)
	}
	if err != nil {
		runtime.Drain(resp)
		return nil, &TokenError{Err: fmt.Errorf("refreshing the Azure Maps shared key after a %d answer: %w", resp.StatusCode, err)}
	}
	if fresh == key || fresh == "" {
		// Nothing new to try: the refusal stands.
		return resp, nil
	}
	if err := req.RewindBody(); err != nil {
		return resp, nil
	}
	runtime.Drain(resp)
	raw.Header.Set(headerSubscriptionKey, fresh)
	return req.Next()
}
