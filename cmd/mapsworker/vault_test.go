package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// vaultCred hands out a token for Key Vault.
type vaultCred struct{}

func (vaultCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"https://vault.azure.net"}`))
	return azcore.AccessToken{Token: "e30." + payload + ".sig", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Many requests refused at once after a rotation share one read of the
// secret.
func TestVaultRefreshIsSharedByConcurrentCallers(t *testing.T) {
	v := &testVault{name: "maps-key", value: "k2"}
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		v.serve(w, r)
	}))
	t.Cleanup(slow.Close)
	opts := &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: slow.Client()}}
	keys, err := newVaultKeysWithOptions(slow.URL+"/secrets/maps-key", vaultCred{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			key, err := keys.Refresh(t.Context())
			if err == nil && key != "k2" {
				err = &settingError{"key", "got " + key}
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
	if !strings.HasPrefix(slow.URL, "https://127.0.0.1") {
		t.Fatalf("test vault at %s", slow.URL)
	}
}
