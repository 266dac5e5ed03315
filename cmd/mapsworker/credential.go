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

// kindWorkload is the kind of a workload identity (federated token).
const kindWorkload = "workload-identity"

// newIdentity chooses the credential explicitly, in the order of
// DefaultAzureCredential's environment, workload identity and managed
// identity, but by the settings alone and with no surprise chain: a service
// principal when its settings are all there (off Azure); else workload
// identity when AZURE_FEDERATED_TOKEN_FILE is set (AKS's webhook projects
// the token only into a pod given the identity); else the managed identity
// (user-assigned when AZURE_CLIENT_ID is set, system-assigned otherwise), as
// on App Service and Container Apps. On AKS the node's managed identity
// endpoint answers any pod, for the node's identity: the token file wins.
func newIdentity(s *settings) (*identity, error) {
	switch {
	case s.TenantID != "" && s.ClientID != "" && s.ClientSecret != "":
		opts := &azidentity.ClientSecretCredentialOptions{}
		opts.DisableInstanceDiscovery = s.AuthorityHost != ""
		opts.ClientOptions = outbound(opts.ClientOptions)
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
		opts.ClientOptions = outbound(opts.ClientOptions)
		cred, err := azidentity.NewClientCertificateCredential(s.TenantID, s.ClientID, certs, key, opts)
		if err != nil {
			return nil, &settingError{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot build the certificate credential: " + safeErr(err, s)}
		}
		return &identity{cred, "service-principal (certificate)", s.ClientID}, nil
	case s.FederatedTokenFile != "":
		return workloadIdentity(s, s.ClientID)
	default:
		return managedIdentity(s.ClientID)
	}
}

// workloadIdentity exchanges the federated token in AZURE_FEDERATED_TOKEN_FILE
// for the tokens of the Entra identity clientID (which must trust the token's
// issuer and subject). azidentity reads the file again as the platform
// rotates it; it is read once here so that a wrong path stops the start.
func workloadIdentity(s *settings, clientID string) (*identity, error) {
	if _, err := os.ReadFile(s.FederatedTokenFile); err != nil {
		return nil, &settingError{"AZURE_FEDERATED_TOKEN_FILE", "cannot read the federated token file (is the workload identity enabled for this pod or app?)"}
	}
	opts := &azidentity.WorkloadIdentityCredentialOptions{
		ClientID:      clientID,
		TenantID:      s.TenantID,
		TokenFilePath: s.FederatedTokenFile,
	}
	opts.DisableInstanceDiscovery = s.AuthorityHost != ""
	opts.ClientOptions = outbound(opts.ClientOptions)
	cred, err := azidentity.NewWorkloadIdentityCredential(opts)
	if err != nil {
		return nil, &settingError{"AZURE_FEDERATED_TOKEN_FILE", "cannot build the workload identity credential: " + safeErr(err, s)}
	}
	return &identity{cred, kindWorkload, clientID}, nil
}

func managedIdentity(clientID string) (*identity, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{}
	// azidentity retries a failing token endpoint for about 20 s by default,
	// with every message in flight waiting on it. A few quick tries are
	// enough here: the engine's breaker pauses all work while tokens fail
	// and probes until the endpoint is back.
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	opts.ClientOptions = outbound(opts.ClientOptions)
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
// Under workload identity that client id is another Entra identity trusting
// the same federated token, as there is no managed identity endpoint to ask.
func storageIdentity(s *settings, main *identity) (*identity, error) {
	if s.StorageClientID == "" || s.StorageClientID == main.clientID {
		return main, nil
	}
	if main.kind == kindWorkload {
		return workloadIdentity(s, s.StorageClientID)
	}
	return managedIdentity(s.StorageClientID)
}

// safeErr returns err's text with any secret setting's value removed.
func safeErr(err error, s *settings) string {
	return redact(err.Error(), s)
}
