package settings

import (
	"errors"
	"log/slog"
	"mapsworker/internal/testcert"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"mapsworker/worker"
)

// envOf is a getenv reading m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	t.Parallel()
	const conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS12YWx1ZQ==;"
	base := map[string]string{"AzureWebJobsStorage": conn, "AZURE_MAPS_CLIENT_ID": "maps-client"}
	cases := []struct {
		name    string
		set     map[string]string
		unset   []string
		setting string // the setting the error names; "" means no error
	}{
		{"defaults", nil, nil, ""},
		{"identity-based storage by account", map[string]string{"AzureWebJobsStorage__accountName": "acct"}, []string{"AzureWebJobsStorage"}, ""},
		{"both connection kinds", map[string]string{"AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net"}, nil, "AzureWebJobsStorage"},
		{"no storage", nil, []string{"AzureWebJobsStorage"}, "AzureWebJobsStorage"},
		{"only a queue URI", map[string]string{"AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net"}, []string{"AzureWebJobsStorage"}, "AzureWebJobsStorage__blobServiceUri"},
		{"development shorthand", map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, nil, "AzureWebJobsStorage"},
		{"no maps client id", nil, []string{"AZURE_MAPS_CLIENT_ID"}, "AZURE_MAPS_CLIENT_ID"},
		{"key vault instead of client id", map[string]string{"AZURE_MAPS_KEY_SECRET_URI": "https://v.vault.azure.net/secrets/k"}, []string{"AZURE_MAPS_CLIENT_ID"}, ""},
		{"plain http maps", map[string]string{"AZURE_MAPS_ENDPOINT": "http://atlas.microsoft.com"}, nil, "AZURE_MAPS_ENDPOINT"},
		{"plain http vault", map[string]string{"AZURE_MAPS_KEY_SECRET_URI": "http://v.vault.azure.net/secrets/k"}, nil, "AZURE_MAPS_KEY_SECRET_URI"},
		{"bad lease", map[string]string{"MAPS_LEASE": "soon"}, nil, "MAPS_LEASE"},
		{"clock lease", map[string]string{"MAPS_LEASE": "00:05:00"}, nil, ""},
		{"bad concurrency", map[string]string{"MAPS_CONCURRENCY": "0"}, nil, "MAPS_CONCURRENCY"},
		{"bad dequeue count", map[string]string{"MAPS_MAX_DEQUEUE_COUNT": "x"}, nil, "MAPS_MAX_DEQUEUE_COUNT"},
		{"bad poll interval", map[string]string{"MAPS_MAX_POLL_INTERVAL": "-1s"}, nil, "MAPS_MAX_POLL_INTERVAL"},
		{"bad status interval", map[string]string{"MAPS_STATUS_INTERVAL": "1h"}, nil, "MAPS_STATUS_INTERVAL"},
		{"batching off", map[string]string{"MAPS_BATCH": "false"}, nil, ""},
		{"bad batch flag", map[string]string{"MAPS_BATCH": "sometimes"}, nil, "MAPS_BATCH"},
		{"rate limits", map[string]string{"MAPS_RATE_LIMITS": "geocode=100, route=20"}, nil, ""},
		{"rate limits off", map[string]string{"MAPS_RATE_LIMITS": "off"}, nil, ""},
		{"bad rate limit", map[string]string{"MAPS_RATE_LIMITS": "search=10"}, nil, "MAPS_RATE_LIMITS"},
		{"zero rate limit", map[string]string{"MAPS_RATE_LIMITS": "route=0"}, nil, "MAPS_RATE_LIMITS"},
		{"bad log level", map[string]string{"MAPS_LOG_LEVEL": "loud"}, nil, "MAPS_LOG_LEVEL"},
		{"bad log format", map[string]string{"MAPS_LOG_FORMAT": "xml"}, nil, "MAPS_LOG_FORMAT"},
		{"bad health address", map[string]string{"MAPS_HEALTH_ADDR": "8080"}, nil, "MAPS_HEALTH_ADDR"},
		{"short queue name", map[string]string{"MAPS_QUEUE": "q"}, nil, "MAPS_QUEUE"},
		{"secret and certificate", map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s3cr3t-value", "AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem"}, nil, "AZURE_CLIENT_SECRET"},
		{"secret without tenant", map[string]string{"AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s3cr3t-value"}, nil, "AZURE_TENANT_ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range c.set {
				env[k] = v
			}
			for _, k := range c.unset {
				delete(env, k)
			}
			s, err := Load(&Options{Getenv: envOf(env), RequireMaps: true})
			if c.setting == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if s.Queue != "maps-requests" || s.Container != "maps-results" || s.Concurrency != 16 || s.MaxDequeueCount != 5 {
					t.Errorf("defaults: %+v", s)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Name != c.setting {
				t.Fatalf("error = %v, want one naming %s", err, c.setting)
			}
			for _, secret := range []string{"c2VjcmV0LWtleS12YWx1ZQ==", "s3cr3t-value"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
	s, _ := Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage": conn, "MAPS_LEASE": "00:05:00"})})
	if s.Lease != 5*time.Minute || !s.Batch || s.RateLimits != nil {
		t.Errorf("lease %v batch %v limits %v", s.Lease, s.Batch, s.RateLimits)
	}
	s, _ = Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage": conn, "MAPS_RATE_LIMITS": "geocode=100,route=20"})})
	if s.RateLimits["geocode"] != 100 || s.RateLimits["route"] != 20 || len(s.RateLimits) != 2 {
		t.Errorf("rate limits = %v", s.RateLimits)
	}
	s, _ = Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage": conn, "MAPS_RATE_LIMITS": "off"})})
	if s.RateLimits == nil || len(s.RateLimits) != 0 {
		t.Errorf("rate limits off = %#v", s.RateLimits)
	}
}

// TestDefaults: an environment with nothing but a storage connection gets
// the defaults the README lists.
func TestDefaults(t *testing.T) {
	t.Parallel()
	s, err := Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage__accountName": "acct"})})
	if err != nil {
		t.Fatal(err)
	}
	want := &Settings{
		QueueServiceURI: "https://acct.queue.core.windows.net",
		BlobServiceURI:  "https://acct.blob.core.windows.net",
		Queue:           "maps-requests",
		Container:       "maps-results",
		MapsEndpoint:    "https://atlas.microsoft.com",
		Concurrency:     16,
		MaxDequeueCount: 5,
		Lease:           2 * time.Minute,
		MaxPollInterval: time.Minute,
		DrainTimeout:    45 * time.Second,
		StatusInterval:  10 * time.Second,
		Batch:           true,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", s, want)
	}
	if s.Queue != worker.DefaultQueue || s.Container != worker.DefaultContainer {
		t.Errorf("the settings' default names differ from the storage's")
	}
	// Values are trimmed, and the endpoint loses its trailing slash.
	s, err = Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage": " UseDevelopment ", "MAPS_QUEUE": " jobs ", "AZURE_MAPS_ENDPOINT": "https://eu.atlas.microsoft.com/"})})
	if err != nil || s.Queue != "jobs" || s.MapsEndpoint != "https://eu.atlas.microsoft.com" || s.StorageConnection != "UseDevelopment" {
		t.Errorf("trimmed: %+v %v", s, err)
	}
}

// TestLoadReadsTheEnvironment: with no Getenv, Load reads the process's
// environment.
func TestLoadReadsTheEnvironment(t *testing.T) {
	t.Setenv("AzureWebJobsStorage__accountName", "envacct")
	t.Setenv("MAPS_CONCURRENCY", "3")
	s, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Concurrency != 3 || !strings.Contains(s.QueueServiceURI, "envacct") {
		t.Errorf("%+v", s)
	}
}

func TestHealthAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"", "", false},
		{":8080", ":8080", false},
		{" 127.0.0.1:0 ", "127.0.0.1:0", false},
		{"[::1]:9000", "[::1]:9000", false},
		{"8080", "", true},
		{"localhost:http", "", true},
		{":70000", "", true},
	}
	for _, tt := range tests {
		s, err := Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage__accountName": "a", "MAPS_HEALTH_ADDR": tt.in})})
		if tt.bad {
			if err == nil || !strings.HasPrefix(err.Error(), "MAPS_HEALTH_ADDR: ") {
				t.Errorf("%q: %v, want an error naming the setting", tt.in, err)
			}
			continue
		}
		if err != nil || s.HealthAddr != tt.want {
			t.Errorf("%q: %+v, %v; want %q", tt.in, s, err, tt.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	got := Secrets(envOf(map[string]string{
		"AZURE_CLIENT_SECRET":               "client-secret-value",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD": "cert-password",
		"AzureWebJobsStorage":               " conn-string ",
		"AZURE_CLIENT_ID":                   "not-a-secret",
	}))
	joined := strings.Join(got, "|")
	for _, want := range []string{"client-secret-value", "cert-password", "conn-string"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Secrets lacks %q: %q", want, got)
		}
	}
	if strings.Contains(joined, "not-a-secret") {
		t.Errorf("Secrets holds a client id: %q", got)
	}
}

// TestStorageSettings: the settings as Azure Functions reads them.
func TestStorageSettings(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{"AZURE_MAPS_CLIENT_ID": "c"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return envOf(m)
	}
	s, err := Load(&Options{Getenv: env("AzureWebJobsStorage__accountName", "acct", "AzureWebJobsStorage__clientId", "st-1"), RequireMaps: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.QueueServiceURI != "https://acct.queue.core.windows.net" || s.BlobServiceURI != "https://acct.blob.core.windows.net" || s.StorageClientID != "st-1" {
		t.Errorf("accountName gives %q %q %q", s.QueueServiceURI, s.BlobServiceURI, s.StorageClientID)
	}
	for name, getenv := range map[string]func(string) string{
		"both":      env("AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k", "AzureWebJobsStorage__accountName", "acct"),
		"one URI":   env("AzureWebJobsStorage__queueServiceUri", "https://a.queue.core.windows.net"),
		"none":      env(),
		"dev short": env("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
	} {
		if _, err := Load(&Options{Getenv: getenv, RequireMaps: true}); err == nil {
			t.Errorf("%s: no error", name)
		} else if _, ok := err.(*Error); !ok || !strings.Contains(err.Error(), "AzureWebJobsStorage") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNewStorage: the connection string or the identity-based URIs, with
// the settings' queue and container names.
func TestNewStorage(t *testing.T) {
	t.Parallel()
	s, err := Load(&Options{Getenv: envOf(map[string]string{
		"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
		"MAPS_QUEUE":          "jobs", "MAPS_RESULTS_CONTAINER": "out",
	})})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.NewStorage(nil, &worker.StorageOptions{Queue: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests.Name() != "jobs" || st.Poison.Name() != "jobs-poison" {
		t.Errorf("queues %s %s", st.Requests.Name(), st.Poison.Name())
	}
	s.StorageConnection = "AccountName=acct;AccountKey=not base64!"
	if _, err := s.NewStorage(nil, nil); err == nil || err.(*Error).Name != "AzureWebJobsStorage" || strings.Contains(err.Error(), "not base64") {
		t.Errorf("a bad connection string: %v", err)
	}
	s, err = Load(&Options{Getenv: envOf(map[string]string{"AzureWebJobsStorage__accountName": "acct", "AzureWebJobsStorage__clientId": "st-1"})})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Identity()
	if err != nil {
		t.Fatal(err)
	}
	st, err = s.NewStorage(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q, b := st.Endpoints(); q != "https://acct.queue.core.windows.net" || b != "https://acct.blob.core.windows.net" {
		t.Errorf("endpoints %s %s", q, b)
	}
}

// TestIdentity: which credential each combination of settings gives,
// without a network (the choice is explicit: no chain).
func TestIdentity(t *testing.T) {
	t.Parallel()
	certPath, _ := testcert.ClientCertificate(t)
	token := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(token, []byte("eyJ.e30.sig"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		env      map[string]string
		kind, id string
		bad      string // the setting named by a configuration error
	}{
		{"nothing", nil, KindSystemAssigned, "", ""},
		{"client id", map[string]string{"AZURE_CLIENT_ID": "ua-1"}, KindUserAssigned, "ua-1", ""},
		{"tenant and client id, no secret", map[string]string{"AZURE_CLIENT_ID": "ua-2", "AZURE_TENANT_ID": "t"}, KindUserAssigned, "ua-2", ""},
		{"secret", map[string]string{"AZURE_CLIENT_ID": "sp-1", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "xyzzy-secret"}, KindClientSecret, "sp-1", ""},
		{"certificate", map[string]string{"AZURE_CLIENT_ID": "sp-2", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_CERTIFICATE_PATH": certPath}, KindCertificate, "sp-2", ""},
		{"secret without tenant", map[string]string{"AZURE_CLIENT_ID": "sp-3", "AZURE_CLIENT_SECRET": "xyzzy-secret"}, "", "", "AZURE_TENANT_ID"},
		{"secret and certificate", map[string]string{"AZURE_CLIENT_ID": "sp-4", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "xyzzy-secret", "AZURE_CLIENT_CERTIFICATE_PATH": certPath}, "", "", "AZURE_CLIENT_SECRET"},
		{"unreadable certificate", map[string]string{"AZURE_CLIENT_ID": "sp-5", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_CERTIFICATE_PATH": "/nonexistent.pem"}, "", "", "AZURE_CLIENT_CERTIFICATE_PATH"},
		{"not a certificate", map[string]string{"AZURE_CLIENT_ID": "sp-6", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_CERTIFICATE_PATH": token}, "", "", "AZURE_CLIENT_CERTIFICATE_PATH"},
		// Workload identity: after the service principal, before the
		// managed identity, as DefaultAzureCredential orders them.
		{"federated token", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_CLIENT_ID": "wl-1", "AZURE_TENANT_ID": "t"}, KindWorkload, "wl-1", ""},
		{"federated token and a secret", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_CLIENT_ID": "sp-7", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "xyzzy-secret"}, KindClientSecret, "sp-7", ""},
		{"federated token without tenant", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_CLIENT_ID": "wl-2"}, "", "", "AZURE_TENANT_ID"},
		{"federated token without client id", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_TENANT_ID": "t"}, "", "", "AZURE_TENANT_ID"},
		{"unreadable federated token", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "/nonexistent/token", "AZURE_CLIENT_ID": "wl-3", "AZURE_TENANT_ID": "t"}, "", "", "AZURE_FEDERATED_TOKEN_FILE"},
	}
	for _, tc := range cases {
		getenv := func(k string) string {
			switch k {
			case "AzureWebJobsStorage":
				return "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5;EndpointSuffix=core.windows.net"
			case "AZURE_MAPS_CLIENT_ID":
				return "maps"
			}
			return tc.env[k]
		}
		s, err := Load(&Options{Getenv: getenv, RequireMaps: true})
		var id *Identity
		if err == nil {
			id, err = s.Identity()
		}
		if tc.bad != "" {
			se, ok := err.(*Error)
			if !ok || se.Name != tc.bad || strings.Contains(err.Error(), "xyzzy-secret") {
				t.Errorf("%s: error %v, want a configuration error naming %s", tc.name, err, tc.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if id.Kind != tc.kind || id.ClientID != tc.id || id.Credential == nil {
			t.Errorf("%s: %s %q, want %s %q", tc.name, id.Kind, id.ClientID, tc.kind, tc.id)
		}
		// AzureWebJobsStorage__clientId is another identity of the same
		// way in: a user-assigned managed identity, or under workload
		// identity another identity trusting the same token.
		s.StorageClientID = "st-1"
		sid, err := s.StorageIdentity(id)
		want := KindUserAssigned
		if id.Kind == KindWorkload {
			want = KindWorkload
		}
		if err != nil || sid.Kind != want || sid.ClientID != "st-1" {
			t.Errorf("%s: storage identity %+v %v, want %s st-1", tc.name, sid, err, want)
		}
		// The worker's own client id is the worker's own identity.
		s.StorageClientID = id.ClientID
		if sid, err := s.StorageIdentity(id); err != nil || sid != id {
			t.Errorf("%s: storage identity with the worker's client id: %+v %v", tc.name, sid, err)
		}
	}
}
