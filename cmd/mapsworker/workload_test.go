package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mapsworker/jobs/maps/mapstest"
)

// federatedIssuer is a Kubernetes service account token issuer (the AKS
// cluster's OIDC issuer, or Container Apps' own), and the federated
// credential an Entra identity holds for one service account: Entra accepts
// the issuer's token as a client assertion when it is signed by the issuer,
// and its issuer, subject and audience are those of the credential.
type federatedIssuer struct {
	key     *rsa.PrivateKey
	issuer  string
	subject string
}

// tokenExchangeAudience is the audience of every federated token Entra takes.
const tokenExchangeAudience = "api://AzureADTokenExchange"

func newFederatedIssuer(t *testing.T) *federatedIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &federatedIssuer{
		key:     key,
		issuer:  "https://oidc.example.test/" + randomHex(8) + "/",
		subject: "system:serviceaccount:maps:mapsworker",
	}
}

// tokenFile writes a service account token for subject, as the workload
// identity webhook projects it into the pod, and returns its path.
func (fi *federatedIssuer) tokenFile(t *testing.T, subject string) string {
	t.Helper()
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": fi.issuer, "sub": subject, "aud": []string{tokenExchangeAudience},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"test"}`))
	signing := head + "." + base64.RawURLEncoding.EncodeToString(claims)
	h := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, fi.key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "azure-identity-token")
	writeFile(t, f, []byte(signing+"."+base64.RawURLEncoding.EncodeToString(sig)))
	return f
}

// check verifies a token request's client assertion against the federated
// credential; it returns why it is refused, or "".
func (fi *federatedIssuer) check(f url.Values) string {
	if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return "unexpected assertion type " + f.Get("client_assertion_type")
	}
	parts := strings.Split(f.Get("client_assertion"), ".")
	if len(parts) != 3 {
		return "assertion is not a JWT"
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&fi.key.PublicKey, crypto.SHA256, h[:], sig) != nil {
		return "AADSTS700211: no matching federated identity record (signature)"
	}
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Iss, Sub string
		Aud      []string
		Exp      int64
	}
	if json.Unmarshal(cb, &c) != nil {
		return "assertion does not decode"
	}
	switch {
	case c.Iss != fi.issuer || c.Sub != fi.subject:
		return fmt.Sprintf("AADSTS70021: no matching federated identity record for issuer %q subject %q", c.Iss, c.Sub)
	case len(c.Aud) != 1 || c.Aud[0] != tokenExchangeAudience:
		return fmt.Sprintf("AADSTS700212: audience %v", c.Aud)
	case time.Now().Unix() >= c.Exp:
		return "AADSTS700024: client assertion is not within its valid time range"
	}
	return ""
}

// grants is how many tokens the authority granted clientID for resource.
func (a *testAuthority) grants(clientID, resource string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.granted[clientID+" "+resource]
}

// useWorkloadIdentity sets the worker up as the workload identity webhook
// does for a pod (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID,
// AZURE_TENANT_ID, AZURE_AUTHORITY_HOST), against a local authority whose
// identity trusts fi for fi.subject. The managed identity endpoint stays
// configured, so that a test can show it is never asked. tokenSubject is the
// subject of the token written to the file.
func useWorkloadIdentity(t *testing.T, te *testEnv, fi *federatedIssuer, tokenSubject string) *testAuthority {
	t.Helper()
	clientID, tenant := "wl-app-"+randomHex(6), "72f988bf-0000-4000-8000-"+randomHex(6)
	auth := newTestAuthority(t, te.emu, tenant, clientID)
	auth.fic = fi
	te.env["AZURE_CLIENT_ID"] = clientID
	te.env["AZURE_TENANT_ID"] = tenant
	te.env["AZURE_AUTHORITY_HOST"] = auth.ts.URL
	te.env["AZURE_FEDERATED_TOKEN_FILE"] = fi.tokenFile(t, tokenSubject)
	te.env["SSL_CERT_FILE"] = certBundle(t, te.env["SSL_CERT_FILE"], serverCertFile(t, auth.ts))
	return auth
}

// TestWorkloadIdentity runs the worker as a workload identity, for Maps and
// for identity-based storage (a second Entra identity trusting the same
// service account, named by AzureWebJobsStorage__clientId): every token comes
// from the authority in exchange for the federated token, none from the
// managed identity endpoint, the results are written, and the start-up log
// names the credential.
func TestWorkloadIdentity(t *testing.T) {
	t.Parallel()
	te := newIdentityStorageEnv(t)
	fi := newFederatedIssuer(t)
	auth := useWorkloadIdentity(t, te, fi, fi.subject)
	storageID := "wl-storage-" + randomHex(6)
	auth.others = []string{storageID}
	te.env["AzureWebJobsStorage__clientId"] = storageID

	p := te.start(nil, "run")
	waitFor(t, 30*time.Second, "the worker to create its queue", func() bool {
		_, err := te.storage.Requests.Client().GetProperties(t.Context(), nil)
		return err == nil
	})
	te.send(`{"id":"wl-1","kind":"geocode","query":"15127 NE 24th Street, Redmond, WA"}`,
		`{"id":"wl-2","kind":"route","waypoints":[{"lat":47.6303,"lon":-122.1387},{"lat":47.6101,"lon":-122.2015}]}`)
	waitFor(t, 30*time.Second, "results", func() bool {
		return te.result("geocode", "wl-1") != nil && te.result("route", "wl-2") != nil
	})
	stopWorker(t, p)
	for kind, id := range map[string]string{"geocode": "wl-1", "route": "wl-2"} {
		if r := te.result(kind, id); r.Status != "succeeded" {
			t.Errorf("%s %s: %s %+v", kind, id, r.Status, r.Error)
		}
	}
	line := startupLine(t, p.out.String())
	t.Logf("start-up line: %s", line)
	if want := `credential=workload-identity clientId=` + te.env["AZURE_CLIENT_ID"]; !strings.Contains(line, want) {
		t.Errorf("start-up line lacks %s", want)
	}
	if n := auth.grants(te.env["AZURE_CLIENT_ID"], mapstest.MapsResource); n == 0 {
		t.Errorf("no Maps token granted to the workload identity; refused: %v", auth.refused)
	}
	if n := auth.grants(storageID, "https://storage.azure.com"); n == 0 {
		t.Errorf("no storage token granted to the storage identity; refused: %v", auth.refused)
	}
	if auth.federated.Load() == 0 || auth.secretOK.Load() != 0 || auth.assertions.Load() != 0 {
		t.Errorf("grants: federated %d, secret %d, certificate %d", auth.federated.Load(), auth.secretOK.Load(), auth.assertions.Load())
	}
	if mi := te.emu.TokenRequests(); mi[te.env["AZURE_CLIENT_ID"]] != 0 || mi[storageID] != 0 || mi[""] != 0 {
		t.Errorf("a workload identity worker asked the managed identity endpoint: %v", mi)
	}
}

// TestCheckWorkloadIdentity: `check` names the workload identity; when Entra
// refuses the federated token (a service account the identity does not
// trust) the token lines say so and point at the federated credential.
func TestCheckWorkloadIdentity(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		subject string // of the projected token
		code    int
	}{
		{"trusted", "system:serviceaccount:maps:mapsworker", 0},
		{"another service account", "system:serviceaccount:default:default", 1},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			te := newTestEnv(t)
			fi := newFederatedIssuer(t)
			auth := useWorkloadIdentity(t, te, fi, tc.subject)
			out, code := runCheck(t, te, nil)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if l := checkLine(t, out, "settings"); l != "✓ settings: credential workload-identity (client id "+auth.clientID+")" {
				t.Errorf("settings line %q", l)
			}
			if tc.code == 0 {
				allPass(t, out, append(storageChecks, "token for Azure Maps")...)
				return
			}
			l := checkLine(t, out, "token for Azure Maps")
			if !strings.HasPrefix(l, "✗ token for Azure Maps: no token") || !strings.Contains(l, "401") || !strings.Contains(l, "federated credential") {
				t.Errorf("token line %q", l)
			}
		})
	}
}
