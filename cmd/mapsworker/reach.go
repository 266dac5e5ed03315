package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"mapsworker/internal/settings"
)

// reachTimeout bounds the check that the storage endpoints accept a
// connection: ample for a TCP handshake across the world, and short enough
// that a stopped Azurite is reported at once instead of after the SDK's
// retries.
const reachTimeout = 3 * time.Second

// unreachableError says that a storage endpoint does not accept connections.
type unreachableError struct {
	endpoint string // scheme://host[:port], nothing that could be secret
	setting  string // the setting it came from
	reason   string
	local    bool
}

func (e *unreachableError) Error() string {
	if e.local {
		return fmt.Sprintf("cannot reach storage at %s (%s): is `make run` running? (%s points at a local Azurite)",
			e.endpoint, e.reason, e.setting)
	}
	return fmt.Sprintf("cannot reach storage at %s (%s): check %s", e.endpoint, e.reason, e.setting)
}

// checkStorageReachable dials, once and at the same time, each storage
// endpoint the settings point at, and returns an *unreachableError for the
// first that does not answer. Settings that do not load are left for the
// command to report.
func checkStorageReachable(ctx context.Context, getenv func(string) string) error {
	s, err := settings.Load(&settings.Options{Getenv: getenv})
	if err != nil {
		return nil
	}
	endpoints, setting, err := storageEndpoints(s)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	errs := make([]error, len(endpoints))
	done := make(chan struct{})
	for i, u := range endpoints {
		go func() {
			defer func() { done <- struct{}{} }()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", hostPort(u))
			if err != nil {
				errs[i] = &unreachableError{endpoint: u.Scheme + "://" + u.Host, setting: setting, reason: dialReason(err), local: isLoopback(u.Hostname())}
				return
			}
			c.Close()
		}()
	}
	for range endpoints {
		<-done
	}
	for _, err := range errs {
		if err != nil {
			return err // one line: the queue endpoint, else the blob one
		}
	}
	return nil
}

// storageEndpoints returns the distinct queue and blob service URLs, and the
// name of the setting they come from.
func storageEndpoints(s *settings.Settings) ([]*url.URL, string, error) {
	setting := "AzureWebJobsStorage__queueServiceUri and __blobServiceUri"
	raw := []string{s.QueueServiceURI, s.BlobServiceURI}
	if s.StorageConnection != "" {
		setting = "AzureWebJobsStorage"
		// A connection string needs no identity; its endpoints are
		// derived as the SDK derives them.
		st, err := s.NewStorage(nil, nil)
		if err != nil {
			return nil, "", err
		}
		q, b := st.Endpoints()
		raw = []string{q, b}
	}
	var out []*url.URL
	seen := map[string]bool{}
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return nil, "", fmt.Errorf("storage endpoint %q is not a URL", r)
		}
		if !seen[hostPort(u)] {
			seen[hostPort(u)] = true
			out = append(out, u)
		}
	}
	return out, setting, nil
}

// hostPort is u's host and port, the port defaulted from the scheme.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialReason is the cause of a failed dial in a few words: "connection
// refused", "no such host", "no answer within 3s".
func dialReason(err error) string {
	var dnsErr *net.DNSError
	var sysErr *os.SyscallError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "no such host"
	case errors.As(err, &dnsErr):
		return dnsErr.Err
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return "no answer within " + reachTimeout.String()
	case errors.As(err, &sysErr):
		return sysErr.Err.Error()
	}
	return err.Error()
}

// helpAsked reports whether args ask for a command's usage.
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
