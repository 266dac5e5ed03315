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
