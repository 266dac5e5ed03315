package settings

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

	"mapsworker/internal/redact"
)

// VaultKey is an Azure Maps shared key kept in a Key Vault secret
// (AZURE_MAPS_KEY_SECRET_URI): the key source of a shared-key Maps client.
// It caches the key and reads the secret again when Maps refuses it, so that
// a rotation (regenerate the unused key, store it in the secret, retire the
// old one) needs no restart.
type VaultKey struct {
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

// VaultKeyOptions configure NewVaultKey.
type VaultKeyOptions struct {
	// ClientOptions configure the Key Vault client. A nil Transport becomes
	// one that never follows a redirect, and a zero Retry.TryTimeout 10 s.
	ClientOptions azcore.ClientOptions
}

// NewVaultKey returns the key source of the secret secretURI, such as
// https://myvault.vault.azure.net/secrets/maps-key[/version], read as cred.
// It reads nothing yet.
func NewVaultKey(secretURI string, cred azcore.TokenCredential, opts *VaultKeyOptions) (*VaultKey, error) {
	u, err := url.Parse(secretURI)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, &Error{"AZURE_MAPS_KEY_SECRET_URI", "must be https://<vault>.vault.azure.net/secrets/<name>"}
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" || parts[1] == "" {
		return nil, &Error{"AZURE_MAPS_KEY_SECRET_URI", "must be https://<vault>.vault.azure.net/secrets/<name>"}
	}
	var o azsecrets.ClientOptions
	if opts != nil {
		o.ClientOptions = opts.ClientOptions
	}
	o.ClientOptions = outbound(o.ClientOptions)
	if isLoopbackHost(u.Hostname()) {
		// azsecrets checks that the resource named in Key Vault's 401
		// challenge is a parent domain of the vault's host (vault.azure.net
		// for myvault.vault.azure.net), so that a vault URI can never make
		// the worker hand out a token for some other resource. A loopback
		// vault (a local test vault or emulator) has no such domain, so the
		// check is turned off for loopback hosts only: the host is this
		// machine, and the secret URI is the operator's own https:// setting.
		// Every real vault keeps the check.
		o.DisableChallengeResourceVerification = true
	}
	c, err := azsecrets.NewClient("https://"+u.Host, cred, &o)
	if err != nil {
		return nil, fmt.Errorf("key vault client: %w", err)
	}
	k := &VaultKey{c: c, name: parts[1]}
	if len(parts) == 3 {
		k.version = parts[2]
	}
	return k, nil
}

// isLoopbackHost reports whether host (without port) is this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Key returns the cached key, reading the secret the first time.
func (k *VaultKey) Key(ctx context.Context) (string, error) {
	k.mu.Lock()
	key := k.key
	k.mu.Unlock()
	if key != "" {
		return key, nil
	}
	return k.Refresh(ctx)
}

// Refresh reads the secret again; concurrent calls share one read. A
// failed read is a *VaultError.
func (k *VaultKey) Refresh(ctx context.Context) (string, error) {
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
func (k *VaultKey) read(ctx context.Context) (string, error) {
	resp, err := k.c.GetSecret(ctx, k.name, k.version, nil)
	if err != nil {
		// azcore's error text holds the response; keep only what helps.
		ve := &VaultError{msg: fmt.Sprintf("reading the Maps key from Key Vault secret %q: %s", k.name, redact.Error(err))}
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			ve.StatusCode, ve.ErrorCode = re.StatusCode, re.ErrorCode
			ve.msg = fmt.Sprintf("reading the Maps key from Key Vault secret %q: %d %s", k.name, re.StatusCode, re.ErrorCode)
		}
		return "", ve
	}
	if resp.Value == nil || *resp.Value == "" {
		return "", &VaultError{msg: fmt.Sprintf("key vault secret %q is empty", k.name)}
	}
	k.mu.Lock()
	k.key = *resp.Value
	k.mu.Unlock()
	return *resp.Value, nil
}

// VaultError is a failed read of the key secret, with Key Vault's status and
// error code when it answered. It deliberately does not wrap the
// *azcore.ResponseError: to the worker, a key it cannot read is a missing
// credential (an environment fault that pauses work), never an answer of
// Azure Maps; a 404 of the vault must not poison messages as a 404 of Maps
// would.
type VaultError struct {
	StatusCode int    // Key Vault's answer; 0 when it did not answer
	ErrorCode  string // Key Vault's error code, e.g. "Forbidden"
	msg        string
}

// Error says which secret could not be read and why, without its value.
func (e *VaultError) Error() string { return e.msg }
