// Package settings reads mapsworker's configuration from the environment, as
// App Service app settings arrive, and builds what it names: the identity
// the worker runs as, its storage connection, and the Key Vault secret that
// holds an Azure Maps shared key.
//
// Every error that is the configuration's fault is an *Error naming the
// setting, and no error of this package carries a secret's value.
package settings

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// Settings are the worker's settings. Load fills every field, with the
// defaults where the environment says nothing; the names of the
// environment variables are in the comments and the README.
type Settings struct {
	StorageConnection string // AzureWebJobsStorage: a connection string (a secret)
	QueueServiceURI   string // AzureWebJobsStorage__queueServiceUri (or __accountName)
	BlobServiceURI    string // AzureWebJobsStorage__blobServiceUri (or __accountName)
	StorageClientID   string // AzureWebJobsStorage__clientId: the storage identity, "" the worker's own

	Queue     string // MAPS_QUEUE; the poison queue is Queue + "-poison"
	Container string // MAPS_RESULTS_CONTAINER

	MapsEndpoint     string // AZURE_MAPS_ENDPOINT, without a trailing slash
	MapsClientID     string // AZURE_MAPS_CLIENT_ID
	MapsKeySecretURI string // AZURE_MAPS_KEY_SECRET_URI: shared-key auth when set

	Concurrency     int           // MAPS_CONCURRENCY
	MaxDequeueCount int64         // MAPS_MAX_DEQUEUE_COUNT
	Lease           time.Duration // MAPS_LEASE
	MaxPollInterval time.Duration // MAPS_MAX_POLL_INTERVAL
	DrainTimeout    time.Duration // MAPS_DRAIN_TIMEOUT
	StatusInterval  time.Duration // MAPS_STATUS_INTERVAL
	HealthAddr      string        // MAPS_HEALTH_ADDR: host:port of /healthz and /readyz; "" off
	Batch           bool          // MAPS_BATCH
	// RateLimits are MAPS_RATE_LIMITS: nil for the Gen2 defaults, empty
	// for no limits, else the APIs named and their requests per second.
	RateLimits   map[string]int
	ShutdownFile string     // WEBJOBS_SHUTDOWN_FILE
	LogLevel     slog.Level // MAPS_LOG_LEVEL
	LogFormat    string     // MAPS_LOG_FORMAT: "text" or "json"

	ClientID           string // AZURE_CLIENT_ID
	TenantID           string // AZURE_TENANT_ID
	ClientSecret       string // AZURE_CLIENT_SECRET (a secret)
	ClientCertPath     string // AZURE_CLIENT_CERTIFICATE_PATH
	ClientCertPassword string // AZURE_CLIENT_CERTIFICATE_PASSWORD (a secret)
	AuthorityHost      string // AZURE_AUTHORITY_HOST
	FederatedTokenFile string // AZURE_FEDERATED_TOKEN_FILE (workload identity)
}

// defaults are the settings of an environment that sets nothing: the one
// place each default is written.
func defaults() *Settings {
	return &Settings{
		Queue:           worker.DefaultQueue,
		Container:       worker.DefaultContainer,
		MapsEndpoint:    "https://atlas.microsoft.com",
		Concurrency:     16,
		MaxDequeueCount: 5,
		Lease:           2 * time.Minute,
		MaxPollInterval: time.Minute,
		DrainTimeout:    45 * time.Second,
		StatusInterval:  worker.DefaultStatusEvery,
		Batch:           true,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
	}
}

// Options configure Load.
type Options struct {
	// Getenv reads one variable of the environment. Default os.Getenv.
	Getenv func(string) string
	// RequireMaps makes the Azure Maps settings required (run and check
	// call Maps; the other commands only read storage).
	RequireMaps bool
}

// Error is a bad setting: the worker stops at start with one line naming it.
// Problem never holds a secret's value.
type Error struct {
	Name    string // the setting, e.g. "MAPS_LEASE", or a flag ("--idle-grace")
	Problem string // what is wrong with it
}

// Error returns "name: problem".
func (e *Error) Error() string { return e.Name + ": " + e.Problem }

// secretNames are the settings whose values are secrets.
var secretNames = [...]string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AzureWebJobsStorage"}

// Secrets returns the values of the secret settings that getenv reads (a
// client secret, a certificate password, a storage connection string), to
// be removed from text with redact.Text. It reads the environment itself,
// not loaded Settings, so that text printed before or without them is
// covered too.
func Secrets(getenv func(string) string) []string {
	var out []string
	for _, name := range secretNames {
		if v := getenv(name); v != "" {
			out = append(out, v, strings.TrimSpace(v))
		}
	}
	return out
}

// secrets are the secret values of s, for its own error messages.
func (s *Settings) secrets() []string {
	return []string{s.StorageConnection, s.ClientSecret, s.ClientCertPassword}
}

// Load reads the settings the worker and the operator commands share, and
// checks them together (a connection string or an identity-based
// connection, not both; a service principal's tenant; https endpoints).
func Load(opts *Options) (*Settings, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	getenv := o.Getenv
	s := defaults()
	s.StorageConnection = strings.TrimSpace(getenv("AzureWebJobsStorage"))
	s.QueueServiceURI = strings.TrimSpace(getenv("AzureWebJobsStorage__queueServiceUri"))
	s.BlobServiceURI = strings.TrimSpace(getenv("AzureWebJobsStorage__blobServiceUri"))
	s.StorageClientID = strings.TrimSpace(getenv("AzureWebJobsStorage__clientId"))
	stringSetting(getenv, "MAPS_QUEUE", &s.Queue)
	stringSetting(getenv, "MAPS_RESULTS_CONTAINER", &s.Container)
	stringSetting(getenv, "AZURE_MAPS_ENDPOINT", &s.MapsEndpoint)
	s.MapsEndpoint = strings.TrimRight(s.MapsEndpoint, "/")
	s.MapsClientID = strings.TrimSpace(getenv("AZURE_MAPS_CLIENT_ID"))
	s.MapsKeySecretURI = strings.TrimSpace(getenv("AZURE_MAPS_KEY_SECRET_URI"))
	s.ShutdownFile = getenv("WEBJOBS_SHUTDOWN_FILE")
	stringSetting(getenv, "MAPS_LOG_FORMAT", &s.LogFormat)
	s.ClientID = strings.TrimSpace(getenv("AZURE_CLIENT_ID"))
	s.TenantID = strings.TrimSpace(getenv("AZURE_TENANT_ID"))
	s.ClientSecret = getenv("AZURE_CLIENT_SECRET")
	s.ClientCertPath = strings.TrimSpace(getenv("AZURE_CLIENT_CERTIFICATE_PATH"))
	s.ClientCertPassword = getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD")
	s.AuthorityHost = strings.TrimSpace(getenv("AZURE_AUTHORITY_HOST"))
	s.FederatedTokenFile = strings.TrimSpace(getenv("AZURE_FEDERATED_TOKEN_FILE"))
	if acct := strings.TrimSpace(getenv("AzureWebJobsStorage__accountName")); acct != "" {
		if s.QueueServiceURI == "" {
			s.QueueServiceURI = "https://" + acct + ".queue.core.windows.net"
		}
		if s.BlobServiceURI == "" {
			s.BlobServiceURI = "https://" + acct + ".blob.core.windows.net"
		}
	}
	mdc := int(s.MaxDequeueCount)
	for _, err := range []error{
		intSetting(getenv, "MAPS_CONCURRENCY", &s.Concurrency, 1, 1024),
		intSetting(getenv, "MAPS_MAX_DEQUEUE_COUNT", &mdc, 1, 1000),
		durationSetting(getenv, "MAPS_LEASE", &s.Lease, time.Second, 7*24*time.Hour),
		durationSetting(getenv, "MAPS_MAX_POLL_INTERVAL", &s.MaxPollInterval, 100*time.Millisecond, time.Hour),
		durationSetting(getenv, "MAPS_DRAIN_TIMEOUT", &s.DrainTimeout, 0, time.Hour),
		durationSetting(getenv, "MAPS_STATUS_INTERVAL", &s.StatusInterval, time.Second, 10*time.Minute),
		addrSetting(getenv, "MAPS_HEALTH_ADDR", &s.HealthAddr),
		boolSetting(getenv, "MAPS_BATCH", &s.Batch),
		rateLimitsSetting(getenv("MAPS_RATE_LIMITS"), &s.RateLimits),
		levelSetting(getenv("MAPS_LOG_LEVEL"), &s.LogLevel),
	} {
		if err != nil {
			return nil, err
		}
	}
	s.MaxDequeueCount = int64(mdc)
	if err := s.check(o.RequireMaps); err != nil {
		return nil, err
	}
	return s, nil
}

// check checks the settings that only make sense together.
func (s *Settings) check(requireMaps bool) error {
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return &Error{"MAPS_LOG_FORMAT", fmt.Sprintf("%q is not text or json", s.LogFormat)}
	}
	if len(s.Queue) < 3 || len(s.Queue) > 56 {
		// 63 is the queue name limit, and "-poison" takes 7 of it.
		return &Error{"MAPS_QUEUE", "must be 3 to 56 characters (the poison queue adds -poison)"}
	}

	switch {
	case s.StorageConnection != "" && (s.QueueServiceURI != "" || s.BlobServiceURI != ""):
		return &Error{"AzureWebJobsStorage", "set either the connection string or the identity-based __queueServiceUri/__blobServiceUri (__accountName), not both"}
	case s.StorageConnection == "" && s.QueueServiceURI == "" && s.BlobServiceURI == "":
		return &Error{"AzureWebJobsStorage", "not set: give a connection string, or AzureWebJobsStorage__accountName (or __queueServiceUri and __blobServiceUri) for an identity-based connection"}
	case s.StorageConnection == "" && (s.QueueServiceURI == "" || s.BlobServiceURI == ""):
		return &Error{"AzureWebJobsStorage__blobServiceUri", "identity-based storage needs both __queueServiceUri and __blobServiceUri (or __accountName)"}
	}
	if s.StorageConnection == "UseDevelopmentStorage=true" {
		return &Error{"AzureWebJobsStorage", "UseDevelopmentStorage=true is not supported by the Azure SDK for Go; write Azurite's connection string out"}
	}

	if requireMaps {
		if !strings.HasPrefix(s.MapsEndpoint, "https://") {
			return &Error{"AZURE_MAPS_ENDPOINT", "must be an https:// URL: credentials are only sent over TLS"}
		}
		if s.MapsKeySecretURI == "" && s.MapsClientID == "" {
			return &Error{"AZURE_MAPS_CLIENT_ID", "required for Entra ID auth (the Maps account's Client ID, from its Authentication blade)"}
		}
		if s.MapsKeySecretURI != "" && !strings.HasPrefix(s.MapsKeySecretURI, "https://") {
			return &Error{"AZURE_MAPS_KEY_SECRET_URI", "must be the https:// URI of a Key Vault secret"}
		}
	}
	if s.ClientSecret != "" && s.ClientCertPath != "" {
		return &Error{"AZURE_CLIENT_SECRET", "set either a client secret or AZURE_CLIENT_CERTIFICATE_PATH, not both"}
	}
	if (s.ClientSecret != "" || s.ClientCertPath != "") && (s.TenantID == "" || s.ClientID == "") {
		return &Error{"AZURE_TENANT_ID", "a service principal needs AZURE_TENANT_ID and AZURE_CLIENT_ID with its secret or certificate"}
	}
	if s.FederatedTokenFile != "" && (s.TenantID == "" || s.ClientID == "") {
		return &Error{"AZURE_TENANT_ID", "workload identity (AZURE_FEDERATED_TOKEN_FILE) needs AZURE_TENANT_ID and AZURE_CLIENT_ID, as the workload identity webhook sets them"}
	}
	return nil
}

// The readers of single settings below leave *dst, the default, alone when
// the variable is unset or blank.

func stringSetting(getenv func(string) string, name string, dst *string) {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		*dst = v
	}
}

func intSetting(getenv func(string) string, name string, dst *int, lo, hi int) error {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return &Error{name, fmt.Sprintf("%q is not a whole number from %d to %d", v, lo, hi)}
	}
	*dst = n
	return nil
}

// durationSetting accepts Go durations ("90s", "2m") and, as the Functions
// host writes them, "hh:mm:ss".
func durationSetting(getenv func(string) string, name string, dst *time.Duration, lo, hi time.Duration) error {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		d, err = parseClock(v)
	}
	if err != nil || d < lo || d > hi {
		return &Error{name, fmt.Sprintf("%q is not a duration from %v to %v (e.g. 90s, 2m, 00:02:00)", v, lo, hi)}
	}
	*dst = d
	return nil
}

func parseClock(v string) (time.Duration, error) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("not hh:mm:ss")
	}
	var total time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		n, err := strconv.ParseFloat(parts[i], 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not hh:mm:ss")
		}
		total += time.Duration(n * float64(unit))
	}
	return total, nil
}

func boolSetting(getenv func(string) string, name string, dst *bool) error {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return &Error{name, fmt.Sprintf("%q is not true or false", v)}
	}
	*dst = b
	return nil
}

// rateLimitsSetting parses MAPS_RATE_LIMITS: "off", or comma-separated
// api=qps pairs (geocode, reverseGeocode, route, geocodeBatch, routeBatch);
// APIs not named keep the Gen2 defaults. The limits are per account and
// shared by every instance: with N instances, give each 1/N.
func rateLimitsSetting(v string, dst *map[string]int) error {
	v = strings.TrimSpace(v)
	switch v {
	case "":
		return nil
	case "off", "none":
		*dst = map[string]int{}
		return nil
	}
	known := maps.DefaultRateLimits()
	out := map[string]int{}
	for _, pair := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if _, isAPI := known[strings.TrimSpace(name)]; !ok || !isAPI || err != nil || n < 1 {
			return &Error{"MAPS_RATE_LIMITS", fmt.Sprintf("%q is not api=qps with api one of geocode, reverseGeocode, route, geocodeBatch, routeBatch", pair)}
		}
		out[strings.TrimSpace(name)] = n
	}
	*dst = out
	return nil
}

func levelSetting(v string, dst *slog.Level) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
	case "info", "information":
		*dst = slog.LevelInfo
	case "debug", "trace":
		*dst = slog.LevelDebug
	case "warn", "warning":
		*dst = slog.LevelWarn
	case "error":
		*dst = slog.LevelError
	default:
		return &Error{"MAPS_LOG_LEVEL", fmt.Sprintf("%q is not debug, info, warn or error", v)}
	}
	return nil
}

// addrSetting reads a listen address: host:port or :port, "" for none.
func addrSetting(getenv func(string) string, name string, dst *string) error {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return &Error{name, fmt.Sprintf("%q is not host:port or :port", v)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return &Error{name, fmt.Sprintf("%q: port %q is not a number 0-65535", v, port)}
	}
	*dst = v
	return nil
}
