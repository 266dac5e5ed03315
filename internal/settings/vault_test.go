package settings

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// vaultCred hands out a token for Key Vault.
type vaultCred struct{}

func (vaultCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"https://vault.azure.net"}`))
	return azcore.AccessToken{Token: "e30." + payload + ".sig", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// testVault is a local HTTPS Key Vault serving one secret with the 401
// challenge flow, as azsecrets expects it.
type testVault struct {
	ts     *httptest.Server
	name   string
	delay  time.Duration
	mu     sync.Mutex
	value  string
	status int // if non-zero, answer this status to authorized requests
	reads  atomic.Int64
}

func newTestVault(t *testing.T, name, value string, delay time.Duration) *testVault {
	v := &testVault{name: name, value: value, delay: delay}
	v.ts = httptest.NewTLSServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.ts.Close)
	return v
}

func (v *testVault) serve(w http.ResponseWriter, r *http.Request) {
	time.Sleep(v.delay)
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	v.mu.Lock()
	value, status := v.value, v.status
	v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource."}}`)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/secrets/"+v.name) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"SecretNotFound","message":"not found"}}`)
		return
	}
	v.reads.Add(1)
	json.NewEncoder(w).Encode(map[string]any{"value": value, "id": "https://" + r.Host + "/secrets/" + v.name + "/0123456789abcdef"})
}

func (v *testVault) key(t *testing.T, secret string) *VaultKey {
	t.Helper()
	k, err := NewVaultKey(v.ts.URL+"/secrets/"+secret, vaultCred{}, &VaultKeyOptions{ClientOptions: azcore.ClientOptions{Transport: v.ts.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Many requests refused at once after a rotation share one read of the
// secret.
func TestVaultRefreshIsSharedByConcurrentCallers(t *testing.T) {
	t.Parallel()
	v := newTestVault(t, "maps-key", "k2", 200*time.Millisecond)
	if !strings.HasPrefix(v.ts.URL, "https://127.0.0.1") {
		t.Fatalf("test vault at %s", v.ts.URL)
	}
	keys := v.key(t, "maps-key")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			key, err := keys.Refresh(t.Context())
			if err == nil && key != "k2" {
				err = errors.New("got " + key)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := v.reads.Load(); n != 1 {
		t.Fatalf("16 concurrent refreshes read the secret %d times", n)
	}
}

// Key reads the secret once and keeps it; Refresh reads the rotated one.
func TestVaultKeyCachesUntilRefresh(t *testing.T) {
	t.Parallel()
	v := newTestVault(t, "maps-key", "k1", 0)
	keys := v.key(t, "maps-key")
	for range 3 {
		if k, err := keys.Key(t.Context()); err != nil || k != "k1" {
			t.Fatalf("Key = %q, %v", k, err)
		}
	}
	v.mu.Lock()
	v.value = "k2"
	v.mu.Unlock()
	if k, _ := keys.Key(t.Context()); k != "k1" {
		t.Errorf("Key before a refresh = %q, want the cached k1", k)
	}
	if k, err := keys.Refresh(t.Context()); err != nil || k != "k2" {
		t.Errorf("Refresh = %q, %v", k, err)
	}
	if n := v.reads.Load(); n != 2 {
		t.Errorf("read the secret %d times, want 2", n)
	}
}

// A vault that refuses, or has no such secret, is a *VaultError with its
// status and code, not an Azure Maps answer.
func TestVaultErrors(t *testing.T) {
	t.Parallel()
	v := newTestVault(t, "maps-key", "k1", 0)
	_, err := v.key(t, "other").Refresh(t.Context())
	var ve *VaultError
	if !errors.As(err, &ve) || ve.StatusCode != http.StatusNotFound || ve.ErrorCode != "SecretNotFound" {
		t.Errorf("missing secret: %#v", err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		t.Errorf("a vault's answer passes for a response of Maps: %v", err)
	}
	v.mu.Lock()
	v.status = http.StatusForbidden
	v.mu.Unlock()
	if _, err := v.key(t, "maps-key").Key(t.Context()); !errors.As(err, &ve) || ve.StatusCode != http.StatusForbidden ||
		!strings.Contains(err.Error(), `"maps-key": 403 Forbidden`) {
		t.Errorf("refused: %v", err)
	}
	v.mu.Lock()
	v.status, v.value = 0, ""
	v.mu.Unlock()
	if _, err := v.key(t, "maps-key").Key(t.Context()); !errors.As(err, &ve) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty secret: %v", err)
	}
}

func TestNewVaultKeyURI(t *testing.T) {
	t.Parallel()
	for uri, ok := range map[string]bool{
		"https://v.vault.azure.net/secrets/maps-key":         true,
		"https://v.vault.azure.net/secrets/maps-key/0123abc": true,
		"http://v.vault.azure.net/secrets/maps-key":          false,
		"https://v.vault.azure.net/keys/maps-key":            false,
		"https://v.vault.azure.net/secrets/":                 false,
		"https://v.vault.azure.net/secrets/a/b/c":            false,
		"v.vault.azure.net/secrets/maps-key":                 false,
	} {
		_, err := NewVaultKey(uri, vaultCred{}, nil)
		var se *Error
		if ok != (err == nil) || !ok && (!errors.As(err, &se) || se.Name != "AZURE_MAPS_KEY_SECRET_URI") {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

// The challenge-resource check stays on for real vaults (an in-process
// check of the option NewVaultKey chooses).
func TestVaultLoopbackOnlyDisablesChallengeCheck(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "localhost": true,
		"myvault.vault.azure.net": false, "evil.example": false, "10.0.0.4": false,
	} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v", host, got)
		}
	}
}
