package main

import (
	"strings"
	"testing"
	"time"
)

func TestSettings(t *testing.T) {
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
		{"bad lease", map[string]string{"MAPS_LEASE": "soon"}, nil, "MAPS_LEASE"},
		{"clock lease", map[string]string{"MAPS_LEASE": "00:05:00"}, nil, ""},
		{"bad concurrency", map[string]string{"MAPS_CONCURRENCY": "0"}, nil, "MAPS_CONCURRENCY"},
		{"bad dequeue count", map[string]string{"MAPS_MAX_DEQUEUE_COUNT": "x"}, nil, "MAPS_MAX_DEQUEUE_COUNT"},
		{"bad poll interval", map[string]string{"MAPS_MAX_POLL_INTERVAL": "-1s"}, nil, "MAPS_MAX_POLL_INTERVAL"},
		{"batching off", map[string]string{"MAPS_BATCH": "false"}, nil, ""},
		{"bad batch flag", map[string]string{"MAPS_BATCH": "sometimes"}, nil, "MAPS_BATCH"},
		{"rate limits", map[string]string{"MAPS_RATE_LIMITS": "geocode=100, route=20"}, nil, ""},
		{"rate limits off", map[string]string{"MAPS_RATE_LIMITS": "off"}, nil, ""},
		{"bad rate limit", map[string]string{"MAPS_RATE_LIMITS": "search=10"}, nil, "MAPS_RATE_LIMITS"},
		{"zero rate limit", map[string]string{"MAPS_RATE_LIMITS": "route=0"}, nil, "MAPS_RATE_LIMITS"},
		{"bad log level", map[string]string{"MAPS_LOG_LEVEL": "loud"}, nil, "MAPS_LOG_LEVEL"},
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
			s, err := loadSettings(func(k string) string { return env[k] }, true)
			if c.setting == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if s.Queue != "maps-requests" || s.Container != "maps-results" || s.Concurrency != 16 || s.MaxDequeueCount != 5 {
					t.Errorf("defaults: %+v", s)
				}
				return
			}
			se, ok := err.(*settingError)
			if !ok || se.name != c.setting {
				t.Fatalf("error = %v, want one naming %s", err, c.setting)
			}
			for _, secret := range []string{"c2VjcmV0LWtleS12YWx1ZQ==", "s3cr3t-value"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
	s, _ := loadSettings(func(k string) string {
		return map[string]string{"AzureWebJobsStorage": conn, "MAPS_LEASE": "00:05:00"}[k]
	}, false)
	if s.Lease != 5*time.Minute || !s.Batch || s.RateLimits != nil {
		t.Errorf("lease %v batch %v limits %v", s.Lease, s.Batch, s.RateLimits)
	}
	s, _ = loadSettings(func(k string) string {
		return map[string]string{"AzureWebJobsStorage": conn, "MAPS_RATE_LIMITS": "geocode=100,route=20"}[k]
	}, false)
	if s.RateLimits["geocode"] != 100 || s.RateLimits["route"] != 20 || len(s.RateLimits) != 2 {
		t.Errorf("rate limits = %v", s.RateLimits)
	}
	if got := rateLimitsText(s.RateLimits); got != "geocode=100,reverseGeocode=250,route=20,geocodeBatch=10,routeBatch=10" {
		t.Errorf("rateLimitsText = %s", got)
	}
}
