package main

import (
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// identity is the credential the worker runs as, and a description of it
// for the start-up log (type and client id; never a secret).
type identity struct {
	cred     azcore.TokenCredential
	kind     string // "managed-identity (system-assigned)", "service-principal (secret)", …
	clientID string
}

// newIdentity chooses the credential explicitly, as Azure's guidance for
// daemons orders them, with no surprise chain: a service principal when its
// settings are all there (off Azure), else the managed identity (user-assigned
// when AZURE_CLIENT_ID is set, system-assigned otherwise).
func newIdentity(s *settings) (*identity, error) {
	switch {
	case s.TenantID != "" && s.ClientID != "" && s.ClientSecret != "":
		opts := &azidentity.ClientSecretCredentialOptions{}
		opts.DisableInstanceDiscovery = s.AuthorityHost != ""
		cred, err := azidentity.NewClientSecretCredential(s.TenantID, s.ClientID, s.ClientSecret, opts)
		if err != nil {
			return nil, &settingError{"AZURE_CLIENT_SECRET", "cannot build the service principal credential: " + safeErr(err, s)}
		}
		return &identity{cred, "service-principal (client secret)", s.ClientID}, nil
	case s.TenantID != "" && s.ClientID != "" && s.ClientCertPath != "":
		data, err := os.ReadFile(s.ClientCertPath)
		if err != nil {
			return nil, &settingError{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot read the certificate file"}
		}
		var pw []byte
		if s.ClientCertPassword != "" {
			pw = []byte(s.ClientCertPassword)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, &settingError{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot parse the certificate (PEM or PKCS#12 with its key)"}
		}
		opts := &azidentity.ClientCertificateCredentialOptions{}
		opts.DisableInstanceDiscovery = s.AuthorityHost != ""
		cred, err := azidentity.NewClientCertificateCredential(s.TenantID, s.ClientID, certs, key, opts)
		if err != nil {
			return nil, &settingError{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot build the certificate credential: " + safeErr(err, s)}
		}
		return &identity{cred, "service-principal (certificate)", s.ClientID}, nil
	default:
		return managedIdentity(s.ClientID)
	}
}

func managedIdentity(clientID string) (*identity, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{}
	// azidentity retries a failing token endpoint for about 20 s by default,
	// with every message in flight waiting on it. A few quick tries are
	// enough here: the engine's breaker pauses all work while tokens fail
	// and probes until the endpoint is back.
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	kind := "managed-identity (system-assigned)"
	if clientID != "" {
		opts.ID = azidentity.ClientID(clientID)
		kind = "managed-identity (user-assigned)"
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	return &identity{cred, kind, clientID}, nil
}

// storageIdentity is the identity for an identity-based storage connection:
// AzureWebJobsStorage__clientId names a user-assigned identity, as Azure
// Functions reads it; otherwise storage uses the worker's own identity.
func storageIdentity(s *settings, main *identity) (*identity, error) {
	if s.StorageClientID != "" && s.StorageClientID != main.clientID {
		return managedIdentity(s.StorageClientID)
	}
	return main, nil
}

// safeErr returns err's text with any secret setting's value removed.
func safeErr(err error, s *settings) string {
	return redact(err.Error(), s)
}
