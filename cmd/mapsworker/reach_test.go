package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"mapsworker/internal/azurite"
)

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestStorageNotThere: an operator command whose storage endpoint does not
// answer (a stopped make run, a mistyped account) says so in one line that
// names the endpoint, well before the SDK's retries would give up.
func TestStorageNotThere(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	local := "DefaultEndpointsProtocol=http;AccountName=" + azurite.AccountName + ";AccountKey=" + azurite.AccountKey +
		";BlobEndpoint=http://127.0.0.1:" + strconv.Itoa(port) + "/" + azurite.AccountName +
		";QueueEndpoint=http://127.0.0.1:" + strconv.Itoa(port) + "/" + azurite.AccountName + ";"
	commands := [][]string{
		{"stats"},
		{"result", "geocode", "order-1"},
		{"poison", "list"},
		{"poison", "purge", "--yes"},
		{"enqueue", "geocode", "1 Main St"},
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		endpoint string
		hint     string
	}{
		{"stopped make run", map[string]string{"AzureWebJobsStorage": local},
			"http://127.0.0.1:" + strconv.Itoa(port) + " (connection refused)", "is `make run` running? (AzureWebJobsStorage points at a local Azurite)"},
		{"no such account", map[string]string{
			"AzureWebJobsStorage__queueServiceUri": "https://nosuchaccount.queue.example.invalid",
			"AzureWebJobsStorage__blobServiceUri":  "https://nosuchaccount.blob.example.invalid",
			"AZURE_CLIENT_ID":                      "00000000-0000-0000-0000-000000000000",
		}, "https://nosuchaccount.queue.example.invalid (", "check AzureWebJobsStorage__queueServiceUri"},
	} {
		te := &testEnv{t: t, env: tc.env}
		for _, args := range commands {
			began := time.Now()
			r := te.cmd("", args...)
			took := time.Since(began)
			msg := "mapsworker " + args[0] + ": cannot reach storage at " + tc.endpoint
			if r.code != 1 || r.out != "" || lines(r.err) != 1 || !strings.HasPrefix(r.err, msg) || !strings.Contains(r.err, tc.hint) {
				t.Errorf("%s: %q: want exit 1 and one line %q…%q: %s", tc.name, args, msg, tc.hint, r)
			}
			// Before the check, the SDK retried for about 10 s.
			if took > reachTimeout+3*time.Second {
				t.Errorf("%s: %q took %v to say so", tc.name, args, took)
			}
		}
		// Help needs no storage.
		if r := te.cmd("", "stats", "--help"); r.code != 0 || !strings.Contains(r.out+r.err, "Usage: mapsworker stats") {
			t.Errorf("%s: stats --help: %s", tc.name, r)
		}
	}
}
