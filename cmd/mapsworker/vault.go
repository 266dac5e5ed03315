package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// vaultKeys holds the Azure Maps shared key read from a Key Vault secret. It
// caches the key and reads the secret again when Maps refuses it, so that a
// rotation (regenerate the unused key, store it in the secret, retire the
// old one) needs no restart.
type vaultKeys struct {
	c             *azsecrets.Client
	name, version string

	mu  sync.Mutex
	key string
	// reading is the read of the secret under way, shared by every Refresh
	// that asks meanwhile: a rotation makes all requests in flight refuse
	// the old key at once, and one read serves them all.
	reading *vaultRead
}

type vaultRead struct {
	done chan struct{}
	key  string
	err  error
}

// newVaultKeys parses a secret URI such as
// https://myvault.vault.azure.net/secrets/maps-key[/version].
func newVaultKeys(secretURI string, cred azcore.TokenCredential) (*vaultKeys, error) {
	return newVaultKeysWithOptions(secretURI, cred, nil)
}

// isLoopbackHost reports whether host (without port) is this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newVaultKeysWithOptions(secretURI string, cred azcore.TokenCredential, opts *azsecrets.ClientOptions) (*vaultKeys, error) {
	u, err := url.Parse(secretURI)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, &settingError{"AZURE_MAPS_KEY_SECRET_URI", "must be https://<vault>.vault.azure.net/secrets/<name>"}
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" || parts[1] == "" {
		return nil, &settingError{"AZURE_MAPS_KEY_SECRET_URI", "must be https://<vault>.vault.azure.net/secrets/<name>"}
	}
	o := azsecrets.ClientOptions{}
	if opts != nil {
		o = *opts
	}
	o.ClientOptions = outbound(o.ClientOptions)
	opts = &o
	if isLoopbackHost(u.Hostname()) {
		// azsecrets checks that the resource named in Key Vault's 401
		// challenge is a parent domain of the vault's host (vault.azure.net
		// for myvault.vault.azure.net), so that a vault URI can never make
		// the worker hand out a token for some other resource. A loopback
		// vault (a local test vault or emulator) has no such domain, so the
		// check is turned off for loopback hosts only: the host is this
		// machine, and the secret URI is the operator's own https:// setting.
		// Every real vault keeps the check.
		opts.DisableChallengeResourceVerification = true
	}
	c, err := azsecrets.NewClient("https://"+u.Host, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("key vault client: %w", err)
	}
	k := &vaultKeys{c: c, name: parts[1]}
	if len(parts) == 3 {
		k.version = parts[2]
	}
	return k, nil
}

// Key returns the cached key, reading the secret the first time.
func (k *vaultKeys) Key(ctx context.Context) (string, error) {
	k.mu.Lock()
	key := k.key
	k.mu.Unlock()
	if key != "" {
		return key, nil
	}
	return k.Refresh(ctx)
}

// Refresh reads the secret again; concurrent calls share one read.
func (k *vaultKeys) Refresh(ctx context.Context) (string, error) {
	k.mu.Lock()
	r := k.reading
	if r == nil {
		r = &vaultRead{done: make(chan struct{})}
		k.reading = r
		k.mu.Unlock()
		// The read serves callers other than this one: a caller leaving
		// does not cut it short; its own deadline bounds it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*tokenTryTimeout)
		r.key, r.err = k.read(rctx)
		cancel()
		k.mu.Lock()
		k.reading = nil
		k.mu.Unlock()
		close(r.done)
	} else {
		k.mu.Unlock()
	}
	select {
	case <-r.done:
		return r.key, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// read reads the secret and caches its value.
func (k *vaultKeys) read(ctx context.Context) (string, error) {
	resp, err := k.c.GetSecret(ctx, k.name, k.version, nil)
	if err != nil {
		// azcore's error text holds the response; keep only what helps.
		ve := &vaultError{msg: fmt.Sprintf("reading the Maps key from Key Vault secret %q: %s", k.name, shortErr(err))}
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			ve.status, ve.code = re.StatusCode, re.ErrorCode
			ve.msg = fmt.Sprintf("reading the Maps key from Key Vault secret %q: %d %s", k.name, re.StatusCode, re.ErrorCode)
		}
		return "", ve
	}
	if resp.Value == nil || *resp.Value == "" {
		return "", fmt.Errorf("key vault secret %q is empty", k.name)
	}
	k.mu.Lock()
	k.key = *resp.Value
	k.mu.Unlock()
	return *resp.Value, nil
}

// vaultError is a failed read of the key secret, with Key Vault's status and
// error code when it answered. It deliberately does not wrap the
// *azcore.ResponseError: to the worker, a key it cannot read is a missing
// credential (an environment fault that pauses work), never an answer of
// Azure Maps; a 404 of the vault must not poison messages as a 404 of Maps
// would.
type vaultError struct {
	status int
	code   string
	msg    string
}

func (e *vaultError) Error() string { return e.msg }
