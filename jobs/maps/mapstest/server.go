// Package mapstest is a local emulator of the Azure Maps APIs the worker uses
// (Geocoding and Route Directions 2025-01-01) and of the App Service managed
// identity token endpoint, in the manner of net/http/httptest.
//
// The Maps side serves TLS with a self-signed certificate for 127.0.0.1, ::1
// and localhost, because azcore's bearer token policy refuses plain HTTP; the
// token endpoint serves plain HTTP on loopback, as App Service does. The
// emulator checks authentication for real: a bearer token it issued plus the
// account's x-ms-client-id, or the shared key. Answers are deterministic
// functions of the request, in the shapes of the real service.
//
// Tests and benchmarks can inject latency, faults, token-endpoint outages and
// per-API rate limits, and read request counts. All methods are safe for
// concurrent use. The emulator prints nothing.
package mapstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"mapsworker/jobs/maps/catalog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultClientID is the Maps account Client ID the emulator expects when
// Options.ClientID is empty.
const DefaultClientID = "00000000-0000-0000-0000-00000000c11d"

// Options configures a Server. The zero value (or nil) is ready to use.
type Options struct {
	// ClientID is the Maps account's Client ID that requests authenticated
	// with a token must send as x-ms-client-id. Default DefaultClientID.
	ClientID string
	// Addr is the Maps (TLS) listen address. Default "127.0.0.1:0".
	Addr string
	// IdentityAddr is the token endpoint's (plain HTTP) listen address.
	// Default "127.0.0.1:0".
	IdentityAddr string
	// CertDir, if set, is where the certificate is kept: ca.pem (the
	// self-signed certificate, to trust with SSL_CERT_FILE) and key.pem. A
	// valid pair found there is reused, so that clients keep trusting the
	// emulator across restarts. If empty, ca.pem goes to a temporary
	// directory removed by Close.
	CertDir string
	// Latency delays every Maps answer.
	Latency time.Duration
	// SharedKey, if set, is also accepted as the subscription-key header.
	SharedKey string
	// TokenLifetime is the lifetime of issued tokens. Default 1h. Note that
	// azidentity does not cache tokens living less than 5 minutes.
	TokenLifetime time.Duration
}

// Server is a running emulator. Create it with NewServer or Start, and Close
// it when done.
type Server struct {
	// URL is the Maps endpoint, https://127.0.0.1:port.
	URL string
	// IdentityEndpoint is the token endpoint, http://127.0.0.1:port/msi/token,
	// for the IDENTITY_ENDPOINT environment variable.
	IdentityEndpoint string
	// IdentityHeader is the secret the token endpoint expects in
	// X-IDENTITY-HEADER, for the IDENTITY_HEADER environment variable.
	IdentityHeader string
	// ClientID is the Maps account Client ID the Maps side expects.
	ClientID string

	mapsSrv, idSrv *http.Server
	mapsLn, idLn   net.Listener

	pool    *x509.CertPool
	caFile  string
	tempDir string

	clientOnce sync.Once
	client     *http.Client

	// token issuing and checking
	jwtKey        []byte
	tokenLifetime time.Duration
	verifiedMu    sync.RWMutex
	verified      map[string]int64 // token -> exp (Unix s), tokens already checked
	tokenReqMu    sync.Mutex
	tokenReqs     map[string]int
	tokenOutage   atomic.Bool

	// Maps behaviour
	sharedKey atomic.Pointer[string]
	latency   atomic.Int64
	fault     atomic.Pointer[faultState]
	limits    [maxAPIs]atomic.Pointer[limiter]
	hook      atomic.Pointer[func(*http.Request)]
	stats     atomic.Pointer[counters]
	inflight  atomic.Int64
	matrix    matrixOps // asynchronous route matrices (matrix.go)

	reqIDPrefix [24]byte
	reqSeq      atomic.Uint64

	closeOnce sync.Once
}

// NewServer starts an emulator and panics if it cannot, like
// httptest.NewServer. opts may be nil.
func NewServer(opts *Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic("mapstest: " + err.Error())
	}
	return s
}

// Start starts an emulator: the Maps side on opts.Addr and the token endpoint
// on opts.IdentityAddr. opts may be nil.
func Start(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	s := &Server{
		ClientID:      orDefault(o.ClientID, DefaultClientID),
		tokenLifetime: o.TokenLifetime,
		verified:      make(map[string]int64),
		tokenReqs:     make(map[string]int),
	}
	if s.tokenLifetime <= 0 {
		s.tokenLifetime = time.Hour
	}
	var secret [48]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	s.jwtKey = secret[:32]
	s.IdentityHeader = hex.EncodeToString(secret[32:])
	s.initRequestIDs()
	s.latency.Store(int64(o.Latency))
	if o.SharedKey != "" {
		k := o.SharedKey
		s.sharedKey.Store(&k)
	}
	s.stats.Store(newCounters(time.Now()))

	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	cert, err := s.loadOrCreateCert(o.CertDir)
	if err != nil {
		return nil, err
	}
	// TLS handshake errors (a client not trusting the CA, a port scan) would
	// otherwise be printed by net/http.
	quiet := log.New(io.Discard, "", 0)

	s.mapsLn, err = net.Listen("tcp", orDefault(o.Addr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("listening for Maps: %w", err)
	}
	s.idLn, err = net.Listen("tcp", orDefault(o.IdentityAddr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("listening for the token endpoint: %w", err)
	}
	s.URL = "https://" + hostPort(s.mapsLn.Addr())
	s.IdentityEndpoint = "http://" + hostPort(s.idLn.Addr()) + "/msi/token"

	s.mapsSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveMaps),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          quiet,
	}
	s.idSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveIdentity),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          quiet,
	}
	go s.mapsSrv.ServeTLS(s.mapsLn, "", "") //nolint:errcheck // ends with ErrServerClosed on Close
	go s.idSrv.Serve(s.idLn)                //nolint:errcheck // likewise
	ok = true
	return s, nil
}

// hostPort returns a listener address usable in a URL: 127.0.0.1:port, or
// [::1]:port; an unspecified address (listening on all interfaces) is
// reached through loopback.
func hostPort(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// Close stops both servers: it stops accepting connections, waits for
// in-flight Maps requests to be answered (at most a few seconds, in case a
// handler hook blocks), closes all connections and removes the temporary
// certificate file. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		// Not http.Server.Shutdown: it gives HTTP/2 clients a grace period
		// of a second, which tests creating many servers would pay each time.
		for _, ln := range []net.Listener{s.mapsLn, s.idLn} {
			if ln != nil {
				ln.Close()
			}
		}
		deadline := time.Now().Add(3 * time.Second)
		for s.inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		for _, srv := range []*http.Server{s.mapsSrv, s.idSrv} {
			if srv != nil {
				srv.Close()
			}
		}
		s.clientOnce.Do(func() {}) // orders the read of s.client after Client's write
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		if s.tempDir != "" {
			os.RemoveAll(s.tempDir)
		}
	})
}

// CAFile returns the path of a PEM file holding the emulator's self-signed
// certificate, for SSL_CERT_FILE or curl --cacert.
func (s *Server) CAFile() string { return s.caFile }

// CertPool returns a pool holding the emulator's certificate.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Client returns an HTTP client that trusts the emulator's certificate. It
// keeps enough idle connections for benchmarks with many requests in flight.
// Pass it as azcore's ClientOptions.Transport (an *http.Client is a
// policy.Transporter).
func (s *Server) Client() *http.Client {
	s.clientOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
		s.client = &http.Client{Transport: tr}
	})
	return s.client
}

// SetSharedKey sets the key accepted as subscription-key, for rotation
// tests; "" accepts none.
func (s *Server) SetSharedKey(k string) {
	if k == "" {
		s.sharedKey.Store(nil)
		return
	}
	s.sharedKey.Store(&k)
}

// SetLatency delays every later Maps answer by d.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetFault makes the Maps side answer with f's error from now on; nil ends
// the fault. It panics on an unknown path in f.Paths.
func (s *Server) SetFault(f *Fault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(newFaultState(f))
}

// SetTokenOutage makes the token endpoint answer 500 while down is true.
func (s *Server) SetTokenOutage(down bool) { s.tokenOutage.Store(down) }

// SetRateLimit limits requests to path (an API name or URL path) to qps per
// wall-clock second, answering 429 with Retry-After: 1 above it, like the
// per-account limits of Azure Maps Gen2 (geocode 500, reverse 250, route 50,
// batch 10). As in the service, the limit is its category's: every API that
// counts against the same limit (catalog.API.Limit) shares it. qps <= 0 removes
// the limit. It panics on an unknown path.
func (s *Server) SetRateLimit(path string, qps int) {
	var l *limiter
	if qps > 0 {
		l = &limiter{qps: qps}
	}
	limit := catalog.APIs[apiIndex(path)].Limit
	for i, a := range catalog.APIs {
		if a.Limit == limit {
			s.limits[i].Store(l)
		}
	}
}

// SetHandlerHook sets a function called at the start of every Maps request,
// before authentication and any answer; tests use it to count or to block
// requests. nil removes it.
func (s *Server) SetHandlerHook(f func(r *http.Request)) {
	if f == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&f)
}

// Stats returns the counts since start or the last ResetStats.
func (s *Server) Stats() Stats { return s.stats.Load().snapshot(time.Now()) }

// ResetStats starts counting afresh.
func (s *Server) ResetStats() { s.stats.Store(newCounters(time.Now())) }

// TokenRequests returns how many token requests the token endpoint received
// (with a correct X-IDENTITY-HEADER, including those refused during an
// outage) per requested identity: the client_id, mi_res_id or principal_id
// parameter, or "" for the system-assigned identity.
func (s *Server) TokenRequests() map[string]int {
	s.tokenReqMu.Lock()
	defer s.tokenReqMu.Unlock()
	m := make(map[string]int, len(s.tokenReqs))
	for k, v := range s.tokenReqs {
		m[k] = v
	}
	return m
}

// initRequestIDs prepares x-ms-request-id values: a random GUID prefix per
// server and a counter, so that ids are unique without a random read per
// request.
func (s *Server) initRequestIDs() {
	var r [12]byte
	rand.Read(r[:])
	const layout = "xxxxxxxx-xxxx-4xxx-8xxx-"
	k := 0
	for i := range len(layout) {
		switch layout[i] {
		case 'x':
			s.reqIDPrefix[i] = hexDigits[(r[k/2]>>(4*(k%2)))&0xf]
			k++
		default:
			s.reqIDPrefix[i] = layout[i]
		}
	}
}

func (s *Server) requestID() string {
	var b [36]byte
	copy(b[:], s.reqIDPrefix[:])
	n := s.reqSeq.Add(1)
	for i := 35; i >= 24; i-- {
		b[i] = hexDigits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// loadOrCreateCert returns the TLS certificate, reusing a valid one in dir,
// else creating one and writing ca.pem (and key.pem when dir is set).
func (s *Server) loadOrCreateCert(dir string) (tls.Certificate, error) {
	if dir != "" {
		if cert, pemBytes, err := loadCert(dir); err == nil {
			s.setCert(pemBytes, filepath.Join(dir, "ca.pem"))
			return cert, nil
		}
	}
	certPEM, keyPEM, err := newCert()
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	if dir == "" {
		if s.tempDir, err = os.MkdirTemp("", "mapstest-"); err != nil {
			return tls.Certificate{}, err
		}
		dir = s.tempDir
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return tls.Certificate{}, err
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
			return tls.Certificate{}, err
		}
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	s.setCert(certPEM, caFile)
	return cert, nil
}

func (s *Server) setCert(certPEM []byte, caFile string) {
	s.caFile = caFile
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(certPEM)
}

// loadCert reads ca.pem and key.pem from dir and accepts them only if they
// are ours: valid for the loopback names for at least another day.
func loadCert(dir string) (tls.Certificate, []byte, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	if time.Until(leaf.NotAfter) < 24*time.Hour || time.Now().Before(leaf.NotBefore) {
		return tls.Certificate{}, nil, errors.New("certificate expired or expiring")
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(h); err != nil {
			return tls.Certificate{}, nil, err
		}
	}
	return cert, certPEM, nil
}

// newCert creates a self-signed ECDSA P-256 certificate for 127.0.0.1, ::1
// and localhost. It is its own CA, so that clients can trust it as a root;
// name constraints limit it to loopback names, so that its key, if kept on
// disk, cannot vouch for any other host to those clients.
func newCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	_, v4, _ := net.ParseCIDR("127.0.0.0/8")
	_, v6, _ := net.ParseCIDR("::1/128")
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: "mapstest Azure Maps emulator", Organization: []string{"mapsworker"}},
		NotBefore:                   now.Add(-time.Hour),
		NotAfter:                    now.Add(365 * 24 * time.Hour),
		KeyUsage:                    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid:       true,
		IsCA:                        true,
		DNSNames:                    []string{"localhost"},
		IPAddresses:                 []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost"},
		PermittedIPRanges:           []*net.IPNet{v4, v6},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}
