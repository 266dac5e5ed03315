package mapstest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const (
	// TenantID is the Entra tenant named in every token the emulator issues.
	TenantID = "0e1a7e00-0000-4000-8000-00000000e7a1"
	// SystemAssignedClientID is the appid of tokens issued to the
	// system-assigned identity (a token request without client_id).
	SystemAssignedClientID = "0e1a7e00-0000-4000-8000-00000000051a"
	// MapsResource is the audience the Maps side requires in tokens.
	MapsResource = "https://atlas.microsoft.com"

	identityAPIVersion = "2019-08-01"
	issuer             = "https://sts.windows.net/" + TenantID + "/"
)

// jwtHeader is the encoded JOSE header of every issued token.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

var b64 = base64.RawURLEncoding

// serveIdentity is the App Service managed identity endpoint
// (IDENTITY_ENDPOINT): GET /msi/token?api-version=2019-08-01&resource=R
// [&client_id=ID], authenticated by the X-IDENTITY-HEADER secret.
func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/msi/token" {
		identityError(w, http.StatusNotFound, "Not found.")
		return
	}
	if r.Method != http.MethodGet {
		identityError(w, http.StatusMethodNotAllowed, "Only GET is supported.")
		return
	}
	got := r.Header.Get("X-IDENTITY-HEADER")
	if got == "" {
		identityError(w, http.StatusBadRequest, "The X-IDENTITY-HEADER header is missing.")
		return
	}
	if !hmac.Equal([]byte(got), []byte(s.IdentityHeader)) {
		identityError(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is not valid.")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != identityAPIVersion {
		identityError(w, http.StatusBadRequest, "api-version must be "+identityAPIVersion+".")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		identityError(w, http.StatusBadRequest, "The resource parameter is missing.")
		return
	}
	asked, appid := "", SystemAssignedClientID
	for _, p := range [...]string{"client_id", "mi_res_id", "principal_id", "object_id"} {
		if v := q.Get(p); v != "" {
			asked, appid = v, v
			if p != "client_id" {
				appid = guidOf("appid:" + v)
			}
			break
		}
	}
	s.tokenReqMu.Lock()
	s.tokenReqs[asked]++
	s.tokenReqMu.Unlock()
	if s.tokenOutage.Load() {
		identityError(w, http.StatusInternalServerError, "The managed identity endpoint is unavailable (emulated outage).")
		return
	}

	tok, exp := s.issueToken(resource, appid, time.Now(), s.tokenLifetime)
	j := getBuf()
	defer putBuf(j)
	j.raw(`{"access_token":`).str(tok).
		raw(`,"expires_on":"`).int(exp).raw(`","resource":`).str(resource).
		raw(`,"token_type":"Bearer","client_id":`).str(appid).raw(`}`)
	h := w.Header()
	h["Content-Type"] = ctJSON
	h["Content-Length"] = []string{strconv.Itoa(len(j.b))}
	w.WriteHeader(http.StatusOK)
	w.Write(j.b)
}

// identityError answers in App Service's error shape.
func identityError(w http.ResponseWriter, status int, msg string) {
	j := &jbuf{}
	j.raw(`{"statusCode":`).int(int64(status)).raw(`,"message":`).str(msg).raw(`}`)
	w.Header()["Content-Type"] = ctJSON
	w.WriteHeader(status)
	w.Write(j.b)
}

// issueToken returns a JWT for audience aud and application appid, signed
// HS256 with the server's secret, and its expiry (Unix seconds). The claims
// are those of an Entra v1 app token; Azurite's --oauth basic checks iss,
// aud, nbf, iat and exp (not the signature), so storage accepts it too.
func (s *Server) issueToken(aud, appid string, now time.Time, lifetime time.Duration) (string, int64) {
	iat := now.Unix()
	exp := now.Add(lifetime).Unix()
	if exp <= iat {
		exp = iat + 1
	}
	oid := guidOf("oid:" + appid)
	j := getBuf()
	defer putBuf(j)
	j.raw(`{"aud":`).str(aud).
		raw(`,"iss":"` + issuer + `","iat":`).int(iat).
		raw(`,"nbf":`).int(iat).
		raw(`,"exp":`).int(exp).
		raw(`,"appid":`).str(appid).
		raw(`,"appidacr":"2","idp":"` + issuer + `","idtyp":"app","oid":"` + oid + `","sub":"` + oid + `"`).
		raw(`,"tid":"` + TenantID + `","ver":"1.0"}`)
	payload := b64.EncodeToString(j.b)
	signing := jwtHeader + "." + payload
	mac := hmac.New(sha256.New, s.jwtKey)
	mac.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(mac.Sum(nil)), exp
}

// validMapsToken reports whether tok is a token this server issued for
// Azure Maps that is valid now. Checked tokens are remembered until they
// expire, so that the hot path is a map lookup.
func (s *Server) validMapsToken(tok string, now int64) bool {
	s.verifiedMu.RLock()
	exp, ok := s.verified[tok]
	s.verifiedMu.RUnlock()
	if ok {
		return now < exp
	}
	exp, ok = s.checkToken(tok, now)
	if !ok {
		return false
	}
	s.verifiedMu.Lock()
	if len(s.verified) >= 100_000 {
		clear(s.verified) // bounded memory; tokens are re-checked on demand
	}
	s.verified[tok] = exp
	s.verifiedMu.Unlock()
	return true
}

// checkToken verifies tok's signature and claims, returning its expiry.
func (s *Server) checkToken(tok string, now int64) (int64, bool) {
	head, rest, ok := strings.Cut(tok, ".")
	if !ok || head != jwtHeader {
		return 0, false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	got, err := b64.DecodeString(sig)
	if err != nil {
		return 0, false
	}
	mac := hmac.New(sha256.New, s.jwtKey)
	mac.Write([]byte(tok[:len(head)+1+len(payload)]))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return 0, false
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return 0, false
	}
	var c struct {
		Aud string `json:"aud"`
		Nbf int64  `json:"nbf"`
		Exp int64  `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return 0, false
	}
	if strings.TrimSuffix(c.Aud, "/") != MapsResource {
		return 0, false
	}
	const skew = 300 // seconds, as Entra-protected services allow
	if c.Nbf > now+skew || now >= c.Exp {
		return 0, false
	}
	return c.Exp, true
}

// guidOf derives a stable GUID-shaped id from s.
func guidOf(s string) string {
	h1 := fnv.New64a()
	h1.Write([]byte(s))
	a := h1.Sum64()
	h1.Write([]byte{0})
	b := h1.Sum64()
	var x [16]byte
	for i := range 8 {
		x[i] = byte(a >> (8 * i))
		x[8+i] = byte(b >> (8 * i))
	}
	x[6] = x[6]&0x0f | 0x40
	x[8] = x[8]&0x3f | 0x80
	var out [36]byte
	k := 0
	for i := range 16 {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[k] = '-'
			k++
		}
		out[k], out[k+1] = hexDigits[x[i]>>4], hexDigits[x[i]&0xf]
		k += 2
	}
	return string(out[:])
}

// Credential returns a credential that issues the emulator's tokens
// directly, without the token endpoint: for tests and benchmarks that need a
// valid token but not managed identity. Its tokens name the system-assigned
// identity.
func (s *Server) Credential() azcore.TokenCredential { return credential{s} }

type credential struct{ s *Server }

// GetToken implements azcore.TokenCredential.
func (c credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 {
		return azcore.AccessToken{}, errors.New("mapstest: exactly one scope is supported")
	}
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, err
	}
	resource := strings.TrimSuffix(opts.Scopes[0], "/.default")
	tok, exp := c.s.issueToken(resource, SystemAssignedClientID, time.Now(), c.s.tokenLifetime)
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Unix(exp, 0)}, nil
}
