package redact_test

import (
	"strings"
	"testing"

	"mapsworker/internal/redact"
)

// Each form a secret takes in this program's output is removed, and the
// text around it is kept.
func TestText(t *testing.T) {
	const (
		accountKey   = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVl=="
		sasSig       = "q8Zr%2Bsig0value%3D"
		token        = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJtYXBzIn0.c2lnbmF0dXJl"
		clientSecret = "Xy9~client.secret-value"
		certPassword = "cert-password-42"
		mapsKey      = "maps-shared-key-0123456789"
		sharedKeySig = "bXlzaWduYXR1cmU="
	)
	conn := "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + accountKey + ";EndpointSuffix=core.windows.net"
	cases := []struct {
		name, text string
		values     []string
		secrets    []string // none may be left
		keep       string   // what must stay
	}{
		{"account key", "bad connection string " + conn, nil, []string{accountKey}, "AccountKey=REDACTED"},
		{"connection string as a value", "AzureWebJobsStorage is " + conn, []string{conn}, []string{accountKey, "AccountName=acct"}, "AzureWebJobsStorage is REDACTED"},
		{"SAS signature", "GET https://acct.queue.core.windows.net/q/messages?sv=2023-01-03&sig=" + sasSig + "&se=x failed", nil, []string{sasSig}, "sig=REDACTED&se=x"},
		{"SAS connection string", "QueueEndpoint=https://a;SharedAccessSignature=sv=2023&sig=" + sasSig, nil, []string{sasSig}, "SharedAccessSignature=REDACTED"},
		{"bearer token", "Authorization: Bearer " + token + "\nnext", nil, []string{token}, "Authorization: Bearer REDACTED\nnext"},
		{"bearer in lower case", `{"header":"bearer ` + token + `"}`, nil, []string{token}, `"bearer REDACTED"`},
		{"shared key header", "Authorization: SharedKey acct:" + sharedKeySig, nil, []string{sharedKeySig}, "SharedKey acct:REDACTED"},
		{"client secret value", "AADSTS7000215: Invalid client secret provided (" + clientSecret + ")", []string{clientSecret}, []string{clientSecret}, "provided (REDACTED)"},
		{"client secret in a token request", "body client_id=a&client_secret=" + clientSecret + "&scope=x", nil, []string{clientSecret}, "client_secret=REDACTED&scope=x"},
		{"certificate password", "pkcs12: decryption password " + certPassword + " incorrect", []string{certPassword}, []string{certPassword}, "password REDACTED incorrect"},
		{"maps key in a URL", "GET https://atlas.microsoft.com/geocode?subscription-key=" + mapsKey, nil, []string{mapsKey}, "subscription-key=REDACTED"},
		{"short values are words", "the queue is empty", []string{"queue"}, nil, "the queue is empty"},
	}
	for _, c := range cases {
		got := redact.Text(c.text, c.values...)
		for _, s := range c.secrets {
			if strings.Contains(got, s) {
				t.Errorf("%s: %q left in %q", c.name, s, got)
			}
		}
		if !strings.Contains(got, c.keep) {
			t.Errorf("%s: %q, want it to contain %q", c.name, got, c.keep)
		}
	}
}

func TestURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://acct.blob.core.windows.net/c/b?sv=1&sig=abc":             "https://acct.blob.core.windows.net/c/b",
		"https://user:pw@host/p#frag":                                     "https://host/p",
		"https://atlas.microsoft.com/geocode?api-version=2025&query=home": "https://atlas.microsoft.com/geocode",
		"http://127.0.0.1:10001/devstoreaccount1/q":                       "http://127.0.0.1:10001/devstoreaccount1/q",
		"http://[::1%zz]/": "<url>",
	} {
		if got := redact.URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
	got := redact.URLs(`Get "https://atlas.microsoft.com/geocode?query=12+Elm+St&subscription-key=k": EOF`)
	if got != `Get "https://atlas.microsoft.com/geocode": EOF` {
		t.Errorf("URLs = %q", got)
	}
}
