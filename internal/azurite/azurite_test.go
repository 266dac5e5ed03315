package azurite

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// listening reports whether a loopback port accepts connections.
func listening(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitClosed fails the test unless port stops accepting within limit.
func waitClosed(t *testing.T, limit time.Duration, port int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for listening(port) {
		if time.Now().After(deadline) {
			t.Fatalf("port %d still accepts connections %v later", port, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartAndClose(t *testing.T) {
	s, err := Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !listening(s.BlobPort) || !listening(s.QueuePort) {
		t.Fatalf("Start returned before ports %d and %d accept", s.BlobPort, s.QueuePort)
	}
	s.Close()
	waitClosed(t, time.Second, s.BlobPort)
	waitClosed(t, time.Second, s.QueuePort)
	s.Close() // a second Close is harmless
}

// TestStartOnGivenPorts restarts an Azurite where its clients expect it,
// with its data kept on disk.
func TestStartOnGivenPorts(t *testing.T) {
	dir := t.TempDir()
	first := startForTest(t, &Options{Location: dir})
	first.Close()
	waitClosed(t, time.Second, first.QueuePort)
	again := startForTest(t, &Options{Location: dir, BlobPort: first.BlobPort, QueuePort: first.QueuePort})
	if again.BlobPort != first.BlobPort || again.QueuePort != first.QueuePort {
		t.Fatalf("restarted on %d/%d, want %d/%d", again.BlobPort, again.QueuePort, first.BlobPort, first.QueuePort)
	}
	if !listening(again.QueuePort) {
		t.Fatalf("restarted Azurite does not listen on %d", again.QueuePort)
	}
}

func TestListeningLine(t *testing.T) {
	for _, tc := range []struct {
		line          string
		service, port string
	}{
		{"Azurite Blob service is successfully listening at http://127.0.0.1:39017", "Blob", "39017"},
		{"Azurite Queue service is successfully listening at https://127.0.0.1:443", "Queue", "443"},
		{"Azurite Queue service is starting at http://127.0.0.1:0", "", ""},
		{"Azurite Table service is successfully listening at http://127.0.0.1:38771", "", ""},
	} {
		m := listeningRE.FindStringSubmatch(tc.line)
		if tc.service == "" {
			if m != nil {
				t.Errorf("%q matched: %q", tc.line, m)
			}
			continue
		}
		if m == nil || m[1] != tc.service || m[2] != tc.port {
			t.Errorf("%q: got %q, want %s %s", tc.line, m, tc.service, tc.port)
		}
	}
}

// startForTest is azuritetest.New, which this package's own tests cannot import.
func startForTest(t *testing.T, opts *Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
