package settings

import (
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"mapsworker/internal/redact"
	"mapsworker/worker"
)

// The kinds of Identity, as the start-up log and `mapsworker check` name
// them.
const (
	KindSystemAssigned = "managed-identity (system-assigned)"
	KindUserAssigned   = "managed-identity (user-assigned)"
	KindClientSecret   = "service-principal (client secret)"
	KindCertificate    = "service-principal (certificate)"
	KindWorkload       = "workload-identity"
)

// Identity is a credential the worker runs as, and what it is, for the
// start-up log and the fixes `mapsworker check` suggests: never a secret.
type Identity struct {
	// Credential gets the identity's Entra ID tokens.
	Credential azcore.TokenCredential
	// Kind is one of the Kind constants.
	Kind string
	// ClientID is the identity's client (application) id; "" for a
	// system-assigned managed identity.
	ClientID string
}

// Identity returns the credential the settings choose, explicitly, in the
// order of DefaultAzureCredential's environment, workload identity and
// managed identity, but by the settings alone and with no surprise chain: a
// service principal when its settings are all there (off Azure); else
// workload identity when AZURE_FEDERATED_TOKEN_FILE is set (AKS's webhook
// projects the token only into a pod given the identity); else the managed
// identity (user-assigned when AZURE_CLIENT_ID is set, system-assigned
// otherwise), as on App Service and Container Apps. On AKS the node's
// managed identity endpoint answers any pod, for the node's identity: the
// token file wins.
func (s *Settings) Identity() (*Identity, error) {
	switch {
	case s.TenantID != "" && s.ClientID != "" && s.ClientSecret != "":
		opts := &azidentity.ClientSecretCredentialOptions{}
		opts.DisableInstanceDiscovery = s.AuthorityHost != ""
		opts.ClientOptions = outbound(opts.ClientOptions)
		cred, err := azidentity.NewClientSecretCredential(s.TenantID, s.ClientID, s.ClientSecret, opts)
		if err != nil {
			return nil, &Error{"AZURE_CLIENT_SECRET", "cannot build the service principal credential: " + s.safeErr(err)}
		}
		return &Identity{cred, KindClientSecret, s.ClientID}, nil
	case s.TenantID != "" && s.ClientID != "" && s.ClientCertPath != "":
		data, err := os.ReadFile(s.ClientCertPath)
		if err != nil {
			return nil, &Error{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot read the certificate file"}
		}
		var pw []byte
		if s.ClientCertPassword != "" {
			pw = []byte(s.ClientCertPassword)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, &Error{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot parse the certificate (PEM or PKCS#12 with its key)"}
		}
		opts := &azidentity.ClientCertificateCredentialOptions{}
		opts.DisableInstanceDiscovery = s.AuthorityHost != ""
		opts.ClientOptions = outbound(opts.ClientOptions)
		cred, err := azidentity.NewClientCertificateCredential(s.TenantID, s.ClientID, certs, key, opts)
		if err != nil {
			return nil, &Error{"AZURE_CLIENT_CERTIFICATE_PATH", "cannot build the certificate credential: " + s.safeErr(err)}
		}
		return &Identity{cred, KindCertificate, s.ClientID}, nil
	case s.FederatedTokenFile != "":
		return s.workloadIdentity(s.ClientID)
	default:
		return managedIdentity(s.ClientID)
	}
}

// StorageIdentity returns the identity for an identity-based storage
// connection: AzureWebJobsStorage__clientId names a user-assigned identity,
// as Azure Functions reads it; otherwise storage uses the worker's own
// identity, main. Under workload identity that client id is another Entra
// identity trusting the same federated token, as there is no managed
// identity endpoint to ask.
func (s *Settings) StorageIdentity(main *Identity) (*Identity, error) {
	if s.StorageClientID == "" || s.StorageClientID == main.ClientID {
		return main, nil
	}
	if main.Kind == KindWorkload {
		return s.workloadIdentity(s.StorageClientID)
	}
	return managedIdentity(s.StorageClientID)
}

// NewStorage connects to the storage account the settings name: with the
// connection string (id may then be nil), or identity-based as
// StorageIdentity(id). opts may add client options (policies, a transport);
// the queue and container names are the settings'.
func (s *Settings) NewStorage(id *Identity, opts *worker.StorageOptions) (*worker.Storage, error) {
	var o worker.StorageOptions
	if opts != nil {
		o = *opts
	}
	o.Queue, o.Container = s.Queue, s.Container
	if s.StorageConnection != "" {
		st, err := worker.NewStorageFromConnectionString(s.StorageConnection, &o)
		if err != nil {
			return nil, &Error{"AzureWebJobsStorage", "not a valid storage connection string"}
		}
		return st, nil
	}
	sid, err := s.StorageIdentity(id)
	if err != nil {
		return nil, err
	}
	st, err := worker.NewStorage(s.QueueServiceURI, s.BlobServiceURI, sid.Credential, &o)
	if err != nil {
		return nil, &Error{"AzureWebJobsStorage__queueServiceUri", s.safeErr(err)}
	}
	return st, nil
}

// workloadIdentity exchanges the federated token in AZURE_FEDERATED_TOKEN_FILE
// for the tokens of the Entra identity clientID (which must trust the token's
// issuer and subject). azidentity reads the file again as the platform
// rotates it; it is read once here so that a wrong path stops the start.
func (s *Settings) workloadIdentity(clientID string) (*Identity, error) {
	if _, err := os.ReadFile(s.FederatedTokenFile); err != nil {
		return nil, &Error{"AZURE_FEDERATED_TOKEN_FILE", "cannot read the federated token file (is the workload identity enabled for this pod or app?)"}
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
		return nil, &Error{"AZURE_FEDERATED_TOKEN_FILE", "cannot build the workload identity credential: " + s.safeErr(err)}
	}
	return &Identity{cred, KindWorkload, clientID}, nil
}

func managedIdentity(clientID string) (*Identity, error) {
	opts := &azidentity.ManagedIdentityCredentialOptions{}
	// azidentity retries a failing token endpoint for about 20 s by default,
	// with every message in flight waiting on it. A few quick tries are
	// enough here: the engine's breaker pauses all work while tokens fail
	// and probes until the endpoint is back.
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	opts.ClientOptions = outbound(opts.ClientOptions)
	kind := KindSystemAssigned
	if clientID != "" {
		opts.ID = azidentity.ClientID(clientID)
		kind = KindUserAssigned
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	return &Identity{cred, kind, clientID}, nil
}

// safeErr returns err's text without any secret the settings hold.
func (s *Settings) safeErr(err error) string {
	return redact.Text(err.Error(), s.secrets()...)
}
