package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mapsworker/internal/testcert"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/internal/azurite"
	"mapsworker/internal/azurite/azuritetest"
	"mapsworker/jobs/maps/mapstest"
	"mapsworker/worker"
)

// ---- TLS helpers ----------------------------------------------------------

// selfSignedCert writes a self-signed certificate (its own CA) and its key
// for 127.0.0.1, ::1 and localhost into dir, as PEM files.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mapsworker test 127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverCertFile writes an httptest TLS server's certificate as a PEM file.
func serverCertFile(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "server.pem")
	writeFile(t, f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
	return f
}

// certBundle concatenates PEM files into one, for SSL_CERT_FILE (which names
// a single file).
func certBundle(t *testing.T, files ...string) string {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, b...), '\n')
	}
	out := filepath.Join(t.TempDir(), "bundle.pem")
	writeFile(t, out, all)
	return out
}

// trustingTransport is an HTTP client trusting the PEM certificates in files.
func trustingTransport(t *testing.T, files ...string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("no certificate in %s", f)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c := &http.Client{Transport: tr}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// exitCode is the exit status of a finished process.
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// startupLine returns the worker's "mapsworker starting" log line.
func startupLine(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "mapsworker starting") {
			return l
		}
	}
	t.Fatalf("no start-up line in output:\n%s", out)
	return ""
}

// ---- a local Microsoft Entra authority ------------------------------------

// testAuthority is a local HTTPS Entra ID authority for a service principal
// or a workload identity: the OpenID configuration and the v2.0 token
// endpoint, checking the client secret, the signed client assertion, or the
// federated token against the identity's federated credential. The access
// tokens it grants are obtained from the emulator's token endpoint (for
// another identity name), so that the Maps emulator and Azurite accept them.
type testAuthority struct {
	ts                   *httptest.Server
	tenant, clientID     string
	secret               string            // accepted client secret, if any
	cert                 *x509.Certificate // accepted assertion signer, if any
	fic                  *federatedIssuer  // trusted federated token issuer, if any
	others               []string          // more client ids trusting fic
	emu                  *mapstest.Server
	secretOK, assertions atomic.Int64
	federated            atomic.Int64
	mu                   sync.Mutex
	refused              []string
	granted              map[string]int // "clientID resource" → tokens granted
}

func newTestAuthority(t *testing.T, emu *mapstest.Server, tenant, clientID string) *testAuthority {
	a := &testAuthority{tenant: tenant, clientID: clientID, emu: emu}
	a.ts = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.ts.Close)
	return a
}

func (a *testAuthority) refuse(w http.ResponseWriter, why string) {
	a.mu.Lock()
	a.refused = append(a.refused, why)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client", "error_description": why, "error_codes": []int{7000215}})
}

func (a *testAuthority) serve(w http.ResponseWriter, r *http.Request) {
	base := a.ts.URL + "/" + a.tenant
	switch r.URL.Path {
	case "/" + a.tenant + "/v2.0/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 base + "/v2.0",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"jwks_uri":               base + "/discovery/v2.0/keys",
		})
	case "/" + a.tenant + "/oauth2/v2.0/token":
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			a.refuse(w, "not a form POST")
			return
		}
		f := r.PostForm
		known := f.Get("client_id") == a.clientID || slices.Contains(a.others, f.Get("client_id"))
		if f.Get("grant_type") != "client_credentials" || !known {
			a.refuse(w, fmt.Sprintf("grant %q for client %q", f.Get("grant_type"), f.Get("client_id")))
			return
		}
		switch {
		case a.fic != nil:
			if why := a.fic.check(f); why != "" {
				a.refuse(w, why)
				return
			}
			a.federated.Add(1)
		case f.Get("client_secret") != "":
			if a.secret == "" || f.Get("client_secret") != a.secret {
				a.refuse(w, "wrong client secret")
				return
			}
			a.secretOK.Add(1)
		case f.Get("client_assertion") != "":
			if why := a.checkAssertion(f, base+"/oauth2/v2.0/token"); why != "" {
				a.refuse(w, why)
				return
			}
			a.assertions.Add(1)
		default:
			a.refuse(w, "no client credential")
			return
		}
		resource := strings.TrimSuffix(strings.Fields(f.Get("scope"))[0], "/.default")
		a.mu.Lock()
		if a.granted == nil {
			a.granted = map[string]int{}
		}
		a.granted[f.Get("client_id")+" "+resource]++
		a.mu.Unlock()
		tok, err := a.emuToken(resource)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
	default:
		http.NotFound(w, r)
	}
}

// checkAssertion verifies the client assertion JWT: signed by the
// certificate's key, for this client and this token endpoint.
func (a *testAuthority) checkAssertion(f url.Values, audience string) string {
	if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || a.cert == nil {
		return "unexpected assertion type"
	}
	parts := strings.Split(f.Get("client_assertion"), ".")
	if len(parts) != 3 {
		return "assertion is not a JWT"
	}
	var hdr struct{ Alg, X5t string }
	var claims struct{ Aud, Iss, Sub string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil {
		return "assertion does not decode"
	}
	if claims.Aud != audience || claims.Iss != a.clientID || claims.Sub != a.clientID {
		return fmt.Sprintf("assertion claims aud=%q iss=%q sub=%q", claims.Aud, claims.Iss, claims.Sub)
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := a.cert.PublicKey.(*rsa.PublicKey)
	var err error
	switch hdr.Alg {
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig)
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, nil)
	default:
		return "assertion alg " + hdr.Alg
	}
	if err != nil {
		return "assertion signature: " + err.Error()
	}
	return ""
}

// emuToken gets a token for resource from the emulator's token endpoint, in
// the name of "sp-"+clientID (so that the emulator's count for clientID
// itself shows whether the worker used managed identity).
func (a *testAuthority) emuToken(resource string) (string, error) {
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {resource}, "client_id": {"sp-" + a.clientID}}
	req, _ := http.NewRequest(http.MethodGet, a.emu.IdentityEndpoint+"?"+q.Encode(), nil)
	req.Header.Set("X-IDENTITY-HEADER", a.emu.IdentityHeader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("emulator token endpoint: %d %v", resp.StatusCode, err)
	}
	return body.AccessToken, nil
}

// ---- 1. credential choice -------------------------------------------------

// TestCredentialChoice runs the worker with each credential of Azure's daemon
// guidance and shows that the settings alone choose it (the managed identity
// endpoint is there in every case), that it works end to end (a message is
// geocoded with its token), and that the start-up log names the credential
// type and client id and never the secret.
func TestCredentialChoice(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		sp       string // "", "secret", "certificate"
		systemMI bool
		wantKind string
	}{
		{name: "managed identity system-assigned", systemMI: true, wantKind: "managed-identity (system-assigned)"},
		{name: "managed identity user-assigned", wantKind: "managed-identity (user-assigned)"},
		{name: "service principal client secret", sp: "secret", wantKind: "service-principal (client secret)"},
		{name: "service principal certificate", sp: "certificate", wantKind: "service-principal (certificate)"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			te := newTestEnv(t)
			clientID := te.env["AZURE_CLIENT_ID"]
			var auth *testAuthority
			secret := "s3cr3t-" + randomHex(12)
			switch {
			case tc.systemMI:
				delete(te.env, "AZURE_CLIENT_ID")
				clientID = ""
			case tc.sp != "":
				clientID = "sp-app-" + randomHex(6)
				tenant := "72f988bf-0000-4000-8000-" + randomHex(6)
				auth = newTestAuthority(t, te.emu, tenant, clientID)
				te.env["AZURE_CLIENT_ID"] = clientID
				te.env["AZURE_TENANT_ID"] = tenant
				te.env["AZURE_AUTHORITY_HOST"] = auth.ts.URL
				te.env["SSL_CERT_FILE"] = certBundle(t, te.emu.CAFile(), serverCertFile(t, auth.ts))
				if tc.sp == "secret" {
					auth.secret = secret
					te.env["AZURE_CLIENT_SECRET"] = secret
				} else {
					path, cert := testcert.ClientCertificate(t)
					auth.cert = cert
					te.env["AZURE_CLIENT_CERTIFICATE_PATH"] = path
				}
			}
			id := uniqueID("cred")
			te.send(`{"id":"` + id + `","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA"}`)
			p := te.start(nil, "run")
			waitFor(t, 30*time.Second, "the result", func() bool { return te.result("geocode", id) != nil })
			stopWorker(t, p)
			if r := te.result("geocode", id); r.Status != "succeeded" {
				t.Fatalf("result %s %+v", r.Status, r.Error)
			}

			out := p.out.String()
			line := startupLine(t, out)
			t.Logf("start-up line: %s", line)
			if want := fmt.Sprintf("credential=%q", tc.wantKind); !strings.Contains(line, want) {
				t.Errorf("start-up line lacks %s", want)
			}
			if want := fmt.Sprintf("clientId=%s", quoteIfEmpty(clientID)); !strings.Contains(line, want) {
				t.Errorf("start-up line lacks %s", want)
			}
			if strings.Contains(out, secret) {
				t.Errorf("the client secret reached the output:\n%s", out)
			}

			mi := te.emu.TokenRequests()
			switch {
			case tc.systemMI:
				if mi[""] == 0 {
					t.Errorf("no system-assigned token request: %v", mi)
				}
			case tc.sp == "":
				if mi[clientID] == 0 {
					t.Errorf("no token request for user-assigned %s: %v", clientID, mi)
				}
			default:
				if mi[clientID] != 0 || mi[""] != 0 {
					t.Errorf("a service principal worker asked the managed identity endpoint: %v", mi)
				}
				got := auth.secretOK.Load()
				if tc.sp == "certificate" {
					got = auth.assertions.Load()
				}
				if got == 0 {
					t.Errorf("the authority granted no %s token; refused: %v", tc.sp, auth.refused)
				}
			}
		})
	}
}

// quoteIfEmpty renders a value as slog's text handler does for simple strings.
func quoteIfEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// ---- 2. identity-based storage --------------------------------------------

// newIdentityStorageEnv is a test environment whose Azurite runs over HTTPS
// with `--oauth basic`, and whose worker settings connect to it by identity:
// the service URIs and a user-assigned identity for storage
// (AzureWebJobsStorage__clientId), tokens from the emulator's token endpoint.
// No connection string and no key reach the worker. The test itself inspects
// storage with the account key, over the same HTTPS.
func newIdentityStorageEnv(t *testing.T) *testEnv {
	t.Helper()
	certFile, keyFile := selfSignedCert(t, t.TempDir())
	az := azuritetest.New(t, &azurite.Options{OAuth: true, CertFile: certFile, KeyFile: keyFile})
	emu := mapstest.NewServer(nil)
	t.Cleanup(emu.Close)
	st, err := worker.NewStorageFromConnectionString(az.ConnectionString(), &worker.StorageOptions{
		ClientOptions: azcore.ClientOptions{Transport: trustingTransport(t, certFile)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, az: az, emu: emu, storage: st, env: map[string]string{
		"AzureWebJobsStorage__queueServiceUri": az.QueueURL(),
		"AzureWebJobsStorage__blobServiceUri":  az.BlobURL(),
		"AzureWebJobsStorage__clientId":        "st-" + randomHex(8),
		"AZURE_MAPS_ENDPOINT":                  emu.URL,
		"AZURE_MAPS_CLIENT_ID":                 emu.ClientID,
		"IDENTITY_ENDPOINT":                    emu.IdentityEndpoint,
		"IDENTITY_HEADER":                      emu.IdentityHeader,
		"AZURE_CLIENT_ID":                      "mi-" + randomHex(8),
		"SSL_CERT_FILE":                        certBundle(t, emu.CAFile(), certFile),
		"MAPS_QUEUE":                           "maps-requests",
		"MAPS_RESULTS_CONTAINER":               "maps-results",
		"MAPS_MAX_POLL_INTERVAL":               "500ms",
		"MAPS_LOG_LEVEL":                       "info",
	}}
}

// TestIdentityStorageEndToEnd: the worker creates its queues and container,
// takes a message and writes its result with bearer tokens only.
func TestIdentityStorageEndToEnd(t *testing.T) {
	t.Parallel()
	te := newIdentityStorageEnv(t)
	for k, v := range te.env {
		if strings.Contains(v, azurite.AccountKey) || strings.Contains(strings.ToLower(v), "accountkey") || k == "AzureWebJobsStorage" {
			t.Fatalf("a key reached the worker's settings: %s", k)
		}
	}
	p := te.start(nil, "run")
	waitFor(t, 30*time.Second, "the worker to create its queue", func() bool {
		_, err := te.storage.Requests.Client().GetProperties(context.Background(), nil)
		return err == nil
	})
	te.send(`{"id":"idstore-1","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA"}`,
		`{"id":"idstore-2","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}]}`,
		`{"id":"idstore-bad","kind":"geocode","query":"x","top":99}`)
	waitFor(t, 30*time.Second, "results", func() bool {
		return te.result("geocode", "idstore-1") != nil && te.result("route", "idstore-2") != nil &&
			te.result("geocode", "idstore-bad") != nil && te.queueDepth() == 0
	})
	stopWorker(t, p)
	if r := te.result("geocode", "idstore-1"); r.Status != "succeeded" {
		t.Errorf("geocode: %s %+v", r.Status, r.Error)
	}
	if r := te.result("route", "idstore-2"); r.Status != "succeeded" {
		t.Errorf("route: %s %+v", r.Status, r.Error)
	}
	if env := te.poisoned(); len(env) != 1 || env[0].Error.Class != "invalid-request" {
		t.Errorf("poison queue (written by identity) = %+v", env)
	}
	// Storage tokens came for the storage identity, Maps tokens for the
	// worker's own identity.
	mi := te.emu.TokenRequests()
	if mi[te.env["AzureWebJobsStorage__clientId"]] == 0 || mi[te.env["AZURE_CLIENT_ID"]] == 0 {
		t.Errorf("token requests per identity = %v", mi)
	}
	t.Logf("worker output:\n%s", p.out.String())
}

// ---- 3. shared key from Key Vault ----------------------------------------

// testVault is a local HTTPS Key Vault serving one secret with the 401
// challenge flow: a request without a token gets the challenge; a request
// with a bearer token for https://vault.azure.net gets the secret.
type testVault struct {
	ts     *httptest.Server
	name   string
	mu     sync.Mutex
	value  string
	status int // if non-zero, answer this status to authorized requests
	reads  atomic.Int64
	denied atomic.Int64
}

func newTestVault(t *testing.T, name, value string) *testVault {
	v := &testVault{name: name, value: value}
	v.ts = httptest.NewTLSServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.ts.Close)
	return v
}

func (v *testVault) set(value string) { v.mu.Lock(); v.value = value; v.mu.Unlock() }

func (v *testVault) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) < 2 || parts[0] != "secrets" || r.URL.Query().Get("api-version") == "" {
		http.Error(w, `{"error":{"code":"BadParameter"}}`, http.StatusBadRequest)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tokenAudience(tok) != "https://vault.azure.net" {
		v.denied.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}`)
		return
	}
	v.mu.Lock()
	value, status := v.value, v.status
	v.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.","innererror":{"code":"ForbiddenByRbac"}}}`)
		return
	}
	if parts[1] != v.name {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"SecretNotFound","message":"not found"}}`)
		return
	}
	v.reads.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"value": value, "id": "https://" + r.Host + "/secrets/" + v.name + "/0123456789abcdef0123456789abcdef",
		"attributes": map[string]any{"enabled": true, "recoveryLevel": "Recoverable+Purgeable"},
	})
}

// tokenAudience is the aud claim of a JWT, unverified.
func tokenAudience(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct{ Aud string }
	json.Unmarshal(b, &c)
	return c.Aud
}

// useVault points the worker at the test vault for its Maps key.
func useVault(t *testing.T, te *testEnv, v *testVault) {
	te.env["AZURE_MAPS_KEY_SECRET_URI"] = v.ts.URL + "/secrets/" + v.name
	te.env["SSL_CERT_FILE"] = certBundle(t, te.emu.CAFile(), serverCertFile(t, v.ts))
	delete(te.env, "AZURE_MAPS_CLIENT_ID") // not needed with a shared key
}

// TestVaultSharedKeyRotation rotates the Maps key in the middle of a run as
// an operator does (the new key into the secret, then the old key retired):
// the worker reads the secret again on the first 401 and carries on; nothing
// is poisoned, every message succeeds, and no key reaches the output.
func TestVaultSharedKeyRotation(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	k1, k2 := "k1-"+randomHex(16), "k2-"+randomHex(16)
	vault := newTestVault(t, "maps-key", k1)
	useVault(t, te, vault)
	te.emu.SetSharedKey(k1)
	te.emu.SetLatency(20 * time.Millisecond)

	const n = 60
	msg := func(i int) string {
		return fmt.Sprintf(`{"id":"kv-%d","kind":"geocode","query":"%d Main St, Redmond, WA"}`, i, i)
	}
	for i := range n / 2 {
		te.send(msg(i))
	}
	p := te.start(map[string]string{"MAPS_CONCURRENCY": "8"}, "run")
	waitFor(t, 30*time.Second, "some messages done with k1", func() bool { return te.resultCount() >= 10 })
	readsBefore := vault.reads.Load()
	// Rotation: the regenerated key goes into the secret, then the old key
	// is retired. The worker still holds k1 in its cache.
	vault.set(k2)
	te.emu.SetSharedKey(k2)
	for i := n / 2; i < n; i++ {
		te.send(msg(i))
	}
	waitFor(t, 60*time.Second, "all messages done", func() bool {
		return te.queueDepth() == 0 && te.resultCount() >= n
	})
	stopWorker(t, p)

	for i := range n {
		r := te.result("geocode", fmt.Sprintf("kv-%d", i))
		if r == nil || r.Status != "succeeded" {
			t.Errorf("kv-%d: %+v", i, r)
		}
	}
	if env := te.poisoned(); len(env) != 0 {
		t.Errorf("%d poisoned: %+v", len(env), env)
	}
	st := te.emu.Stats()
	if st.Unauthorized == 0 {
		t.Errorf("the emulator never refused k1 after the rotation; the test did not rotate mid-run")
	}
	if readsBefore < 1 || vault.reads.Load() <= readsBefore {
		t.Errorf("secret reads: %d before rotation, %d after", readsBefore, vault.reads.Load())
	}
	out := p.out.String()
	if strings.Contains(out, k1) || strings.Contains(out, k2) {
		t.Errorf("a Maps key reached the output:\n%s", out)
	}
	if line := startupLine(t, out); !strings.Contains(line, `mapsAuth="shared-key (Key Vault)"`) {
		t.Errorf("start-up line: %s", line)
	}
	t.Logf("Maps answers: %d ok, %d unauthorized; secret reads %d (challenges %d)", st.Status2xx, st.Unauthorized, vault.reads.Load(), vault.denied.Load())
}

// ---- 4. transport ----------------------------------------------------------

// TestTransportRefusesPlainHTTP: a credential is never sent over plain HTTP;
// the worker stops at start with one configuration line naming the setting.
func TestTransportRefusesPlainHTTP(t *testing.T) {
	t.Parallel()
	for name, extra := range map[string]map[string]string{
		"AZURE_MAPS_ENDPOINT":       {"AZURE_MAPS_ENDPOINT": "http://127.0.0.1:1"},
		"AZURE_MAPS_KEY_SECRET_URI": {"AZURE_MAPS_KEY_SECRET_URI": "http://127.0.0.1:1/secrets/maps-key"},
	} {
		t.Run(name, func(t *testing.T) {
			te := &testEnv{t: t, env: map[string]string{
				"AzureWebJobsStorage":  "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + azurite.AccountKey + ";QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
				"AZURE_MAPS_CLIENT_ID": "c",
			}}
			p := te.start(extra, "run")
			p.wait(t, 30*time.Second)
			out := p.out.String()
			if p.exitCode() != 3 {
				t.Errorf("exit %d, want 3", p.exitCode())
			}
			want := "mapsworker run: configuration: " + name + ": must be "
			if !strings.Contains(out, want) || !strings.Contains(out, "https://") || lines(out) != 1 {
				t.Errorf("output %q, want one line with %q", out, want)
			}
			if strings.Contains(out, azurite.AccountKey) {
				t.Errorf("the account key reached the output")
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}

// TestTransportHostFixed: request fields are query parameters, never part of
// where a request goes, whatever they hold.
func TestTransportHostFixed(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	want, _ := url.Parse(te.emu.URL)
	var mu sync.Mutex
	var hosts, queries []string
	te.emu.SetHandlerHook(func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hosts = append(hosts, r.Host+" "+r.URL.Path)
		queries = append(queries, r.URL.Query().Get("query")+r.URL.Query().Get("addressLine")+r.URL.Query().Get("locality"))
	})
	tricks := map[string]string{
		"at":        `{"id":"t-at","kind":"geocode","query":"user@evil.example/geocode"}`,
		"url":       `{"id":"t-url","kind":"geocode","query":"https://evil.example/steal?x=1#f"}`,
		"scheme":    `{"id":"t-scheme","kind":"geocode","query":"//evil.example:443/../../route"}`,
		"crlf":      `{"id":"t-crlf","kind":"geocode","query":"1 Main St\r\nHost: evil.example"}`,
		"structure": `{"id":"t-structure","kind":"geocode","addressLine":"@evil.example/","locality":"https://evil.example/","countryRegion":"US"}`,
		"path":      `{"id":"t-path","kind":"geocode","query":"../../../evil.example/%2e%2e/?&top=20"}`,
	}
	for _, m := range tricks {
		te.send(m)
	}
	te.send(`{"id":"../evil","kind":"geocode","query":"x"}`, `{"id":"https://evil.example/x","kind":"geocode","query":"x"}`)
	// Single calls, so that each field travels in the query string, where
	// it could do harm; batches carry them in a JSON body.
	p := te.start(map[string]string{"MAPS_BATCH": "false"}, "run")
	waitFor(t, 30*time.Second, "queue drained", func() bool { return te.queueDepth() == 0 })
	stopWorker(t, p)

	mu.Lock()
	defer mu.Unlock()
	if len(hosts) != len(tricks) {
		t.Errorf("Maps saw %d requests, want %d: %v", len(hosts), len(tricks), hosts)
	}
	for _, h := range hosts {
		if h != want.Host+" /geocode" {
			t.Errorf("a request went to %q, want %s /geocode", h, want.Host)
		}
	}
	for _, q := range queries {
		if !strings.Contains(q, "evil.example") {
			t.Errorf("the field did not arrive verbatim as a parameter: %q", q)
		}
	}
	for name, m := range tricks {
		var req struct{ ID string }
		json.Unmarshal([]byte(m), &req)
		if r := te.result("geocode", req.ID); r == nil || r.Status != "succeeded" {
			t.Errorf("%s: result %+v", name, r)
		}
	}
	// The ids that look like paths are refused before any call.
	if env := te.poisoned(); len(env) != 2 {
		t.Errorf("poisoned %d, want the 2 bad ids: %+v", len(env), env)
	}
}
