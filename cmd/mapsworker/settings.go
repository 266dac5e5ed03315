package main

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

// settings are read from the environment, as App Service app settings
// arrive. Every error names the setting and never echoes a secret's value.
type settings struct {
	StorageConnection  string // AzureWebJobsStorage
	QueueServiceURI    string // AzureWebJobsStorage__queueServiceUri
	BlobServiceURI     string // AzureWebJobsStorage__blobServiceUri
	StorageClientID    string // AzureWebJobsStorage__clientId
	Queue              string
	Container          string
	MapsEndpoint       string
	MapsClientID       string
	MapsKeySecretURI   string
	Concurrency        int
	MaxDequeueCount    int64
	Lease              time.Duration
	MaxPollInterval    time.Duration
	DrainTimeout       time.Duration
	StatusInterval     time.Duration
	HealthAddr         string // MAPS_HEALTH_ADDR: host:port of /healthz and /readyz; "" off
	Batch              bool
	RateLimits         map[string]int // nil: the Gen2 defaults; empty: no limits
	ShutdownFile       string
	LogLevel           slog.Level
	LogFormat          string
	ClientID           string // AZURE_CLIENT_ID
	TenantID           string // AZURE_TENANT_ID
	ClientSecret       string // AZURE_CLIENT_SECRET
	ClientCertPath     string // AZURE_CLIENT_CERTIFICATE_PATH
	ClientCertPassword string // AZURE_CLIENT_CERTIFICATE_PASSWORD
	AuthorityHost      string // AZURE_AUTHORITY_HOST
	FederatedTokenFile string // AZURE_FEDERATED_TOKEN_FILE (workload identity)
}

// settingError is a configuration error: the worker stops at start with one
// line naming the setting.
type settingError struct {
	name, problem string
}

func (e *settingError) Error() string { return e.name + ": " + e.problem }

// loadSettings reads the settings the worker and the operator commands share.
// needMaps says whether the Azure Maps settings are required.
func loadSettings(getenv func(string) string, needMaps bool) (*settings, error) {
	s := &settings{
		StorageConnection:  strings.TrimSpace(getenv("AzureWebJobsStorage")),
		QueueServiceURI:    strings.TrimSpace(getenv("AzureWebJobsStorage__queueServiceUri")),
		BlobServiceURI:     strings.TrimSpace(getenv("AzureWebJobsStorage__blobServiceUri")),
		StorageClientID:    strings.TrimSpace(getenv("AzureWebJobsStorage__clientId")),
		Queue:              orDefault(getenv("MAPS_QUEUE"), "maps-requests"),
		Container:          orDefault(getenv("MAPS_RESULTS_CONTAINER"), "maps-results"),
		MapsEndpoint:       strings.TrimRight(orDefault(getenv("AZURE_MAPS_ENDPOINT"), "https://atlas.microsoft.com"), "/"),
		MapsClientID:       strings.TrimSpace(getenv("AZURE_MAPS_CLIENT_ID")),
		MapsKeySecretURI:   strings.TrimSpace(getenv("AZURE_MAPS_KEY_SECRET_URI")),
		ShutdownFile:       getenv("WEBJOBS_SHUTDOWN_FILE"),
		LogFormat:          orDefault(getenv("MAPS_LOG_FORMAT"), "text"),
		ClientID:           strings.TrimSpace(getenv("AZURE_CLIENT_ID")),
		TenantID:           strings.TrimSpace(getenv("AZURE_TENANT_ID")),
		ClientSecret:       getenv("AZURE_CLIENT_SECRET"),
		ClientCertPath:     strings.TrimSpace(getenv("AZURE_CLIENT_CERTIFICATE_PATH")),
		ClientCertPassword: getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
		AuthorityHost:      strings.TrimSpace(getenv("AZURE_AUTHORITY_HOST")),
		FederatedTokenFile: strings.TrimSpace(getenv("AZURE_FEDERATED_TOKEN_FILE")),
	}
	if acct := strings.TrimSpace(getenv("AzureWebJobsStorage__accountName")); acct != "" {
		if s.QueueServiceURI == "" {
			s.QueueServiceURI = "https://" + acct + ".queue.core.windows.net"
		}
		if s.BlobServiceURI == "" {
			s.BlobServiceURI = "https://" + acct + ".blob.core.windows.net"
		}
	}
	var err error
	if s.Concurrency, err = intSetting(getenv, "MAPS_CONCURRENCY", 16, 1, 1024); err != nil {
		return nil, err
	}
	mdc, err := intSetting(getenv, "MAPS_MAX_DEQUEUE_COUNT", 5, 1, 1000)
	if err != nil {
		return nil, err
	}
	s.MaxDequeueCount = int64(mdc)
	if s.Lease, err = durationSetting(getenv, "MAPS_LEASE", 2*time.Minute, time.Second, 7*24*time.Hour); err != nil {
		return nil, err
	}
	if s.MaxPollInterval, err = durationSetting(getenv, "MAPS_MAX_POLL_INTERVAL", time.Minute, 100*time.Millisecond, time.Hour); err != nil {
		return nil, err
	}
	if s.DrainTimeout, err = durationSetting(getenv, "MAPS_DRAIN_TIMEOUT", 45*time.Second, 0, time.Hour); err != nil {
		return nil, err
	}
	if s.StatusInterval, err = durationSetting(getenv, "MAPS_STATUS_INTERVAL", worker.DefaultStatusEvery, time.Second, 10*time.Minute); err != nil {
		return nil, err
	}
	if s.HealthAddr, err = addrSetting(getenv, "MAPS_HEALTH_ADDR"); err != nil {
		return nil, err
	}
	if s.Batch, err = boolSetting(getenv, "MAPS_BATCH", true); err != nil {
		return nil, err
	}
	if s.RateLimits, err = rateLimitsSetting(getenv("MAPS_RATE_LIMITS")); err != nil {
		return nil, err
	}
	if s.LogLevel, err = levelSetting(getenv("MAPS_LOG_LEVEL")); err != nil {
		return nil, err
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return nil, &settingError{"MAPS_LOG_FORMAT", fmt.Sprintf("%q is not text or json", s.LogFormat)}
	}
	if len(s.Queue) < 3 || len(s.Queue) > 56 {
		// 63 is the queue name limit, and "-poison" takes 7 of it.
		return nil, &settingError{"MAPS_QUEUE", "must be 3 to 56 characters (the poison queue adds -poison)"}
	}

	switch {
	case s.StorageConnection != "" && (s.QueueServiceURI != "" || s.BlobServiceURI != ""):
		return nil, &settingError{"AzureWebJobsStorage", "set either the connection string or the identity-based __queueServiceUri/__blobServiceUri (__accountName), not both"}
	case s.StorageConnection == "" && s.QueueServiceURI == "" && s.BlobServiceURI == "":
		return nil, &settingError{"AzureWebJobsStorage", "not set: give a connection string, or AzureWebJobsStorage__accountName (or __queueServiceUri and __blobServiceUri) for an identity-based connection"}
	case s.StorageConnection == "" && (s.QueueServiceURI == "" || s.BlobServiceURI == ""):
		return nil, &settingError{"AzureWebJobsStorage__blobServiceUri", "identity-based storage needs both __queueServiceUri and __blobServiceUri (or __accountName)"}
	}
	if s.StorageConnection == "UseDevelopmentStorage=true" {
		return nil, &settingError{"AzureWebJobsStorage", "UseDevelopmentStorage=true is not supported by the Azure SDK for Go; write Azurite's connection string out"}
	}

	if needMaps {
		if !strings.HasPrefix(s.MapsEndpoint, "https://") {
			return nil, &settingError{"AZURE_MAPS_ENDPOINT", "must be an https:// URL: credentials are only sent over TLS"}
		}
		if s.MapsKeySecretURI == "" && s.MapsClientID == "" {
			return nil, &settingError{"AZURE_MAPS_CLIENT_ID", "required for Entra ID auth (the Maps account's Client ID, from its Authentication blade)"}
		}
		if s.MapsKeySecretURI != "" && !strings.HasPrefix(s.MapsKeySecretURI, "https://") {
			return nil, &settingError{"AZURE_MAPS_KEY_SECRET_URI", "must be the https:// URI of a Key Vault secret"}
		}
	}
	if s.ClientSecret != "" && s.ClientCertPath != "" {
		return nil, &settingError{"AZURE_CLIENT_SECRET", "set either a client secret or AZURE_CLIENT_CERTIFICATE_PATH, not both"}
	}
	if (s.ClientSecret != "" || s.ClientCertPath != "") && (s.TenantID == "" || s.ClientID == "") {
		return nil, &settingError{"AZURE_TENANT_ID", "a service principal needs AZURE_TENANT_ID and AZURE_CLIENT_ID with its secret or certificate"}
	}
	if s.FederatedTokenFile != "" && (s.TenantID == "" || s.ClientID == "") {
		return nil, &settingError{"AZURE_TENANT_ID", "workload identity (AZURE_FEDERATED_TOKEN_FILE) needs AZURE_TENANT_ID and AZURE_CLIENT_ID, as the workload identity webhook sets them"}
	}
	return s, nil
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}

func intSetting(getenv func(string) string, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &settingError{name, fmt.Sprintf("%q is not a whole number from %d to %d", v, lo, hi)}
	}
	return n, nil
}

// durationSetting accepts Go durations ("90s", "2m") and, as the Functions
// host writes them, "hh:mm:ss".
func durationSetting(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		d, err = parseClock(v)
	}
	if err != nil || d < lo || d > hi {
		return 0, &settingError{name, fmt.Sprintf("%q is not a duration from %v to %v (e.g. 90s, 2m, 00:02:00)", v, lo, hi)}
	}
	return d, nil
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

func boolSetting(getenv func(string) string, name string, def bool) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &settingError{name, fmt.Sprintf("%q is not true or false", v)}
	}
	return b, nil
}

// rateLimitsSetting parses MAPS_RATE_LIMITS: "off", or comma-separated
// api=qps pairs (geocode, reverseGeocode, route, geocodeBatch, routeBatch);
// APIs not named keep the Gen2 defaults. The limits are per account and
// shared by every instance: with N instances, give each 1/N.
func rateLimitsSetting(v string) (map[string]int, error) {
	v = strings.TrimSpace(v)
	switch v {
	case "":
		return nil, nil
	case "off", "none":
		return map[string]int{}, nil
	}
	known := maps.DefaultRateLimits()
	out := map[string]int{}
	for _, pair := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if _, isAPI := known[strings.TrimSpace(name)]; !ok || !isAPI || err != nil || n < 1 {
			return nil, &settingError{"MAPS_RATE_LIMITS", fmt.Sprintf("%q is not api=qps with api one of geocode, reverseGeocode, route, geocodeBatch, routeBatch", pair)}
		}
		out[strings.TrimSpace(name)] = n
	}
	return out, nil
}

func levelSetting(v string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "info", "information":
		return slog.LevelInfo, nil
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, &settingError{"MAPS_LOG_LEVEL", fmt.Sprintf("%q is not debug, info, warn or error", v)}
}

func newLogger(s *settings) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.LogLevel}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stdout, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stdout, opts))
}

// addrSetting reads a listen address: host:port or :port, "" for none.
func addrSetting(getenv func(string) string, name string) (string, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return "", nil
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", &settingError{name, fmt.Sprintf("%q is not host:port or :port", v)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", &settingError{name, fmt.Sprintf("%q: port %q is not a number 0-65535", v, port)}
	}
	return v, nil
}
