// Package redact removes secrets from text bound for a terminal, a log, a
// result or a poison envelope. It is the one place that knows what a secret
// looks like in this program's output: every command and package that
// prints or stores the text of an error it did not write itself passes it
// through Text, and every request URL through URL.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Mask replaces each secret.
const Mask = "REDACTED"

// MinSecretLen is the shortest value Text replaces wherever it occurs:
// shorter ones would match ordinary words, and no real key, secret or
// password is that short.
const MinSecretLen = 8

var (
	// keyValueRE matches the secret parts of connection strings, SAS URLs,
	// Azure Maps key URLs and token request bodies.
	keyValueRE = regexp.MustCompile(`(?i)(AccountKey|SharedAccessSignature|sig|subscription-key|client_secret|client_assertion)=([^;&\s"']+)`)
	// bearerRE matches an Authorization header's credential: a bearer
	// token, or a storage shared-key signature after the account name.
	bearerRE = regexp.MustCompile(`(?i)(Bearer\s+|SharedKey\s+[^\s:]+:)[A-Za-z0-9\-_.~+/=]+`)
	urlRE    = regexp.MustCompile(`https?://[^\s"'<>]+`)
)

// Text returns text with every secret it can recognise replaced by Mask:
// each of values (the values of secret settings: a client secret, a
// certificate password, a connection string) wherever it occurs, then
// account keys and shared access signatures in connection strings and URLs
// (AccountKey=, SharedAccessSignature=, sig=), Azure Maps keys in URLs
// (subscription-key=), secrets in token requests (client_secret=,
// client_assertion=), and bearer tokens and shared-key signatures.
// Values shorter than MinSecretLen are ignored.
func Text(text string, values ...string) string {
	if len(values) > 0 {
		// Longest first: a connection string goes whole, before the
		// account key inside it would leave the rest standing.
		vs := slices.Clone(values)
		slices.SortFunc(vs, func(a, b string) int { return len(b) - len(a) })
		for _, v := range vs {
			if len(v) >= MinSecretLen {
				text = strings.ReplaceAll(text, v, Mask)
			}
		}
	}
	text = keyValueRE.ReplaceAllString(text, "${1}="+Mask)
	return bearerRE.ReplaceAllString(text, "${1}"+Mask)
}

// URL returns the URL raw without its query, fragment and user information,
// where a SAS signature, an Azure Maps key, a pop receipt or a user's
// geocode query would be. A raw that does not parse is "<url>".
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String()
}

// URLs returns text with every http or https URL in it cut down by URL.
func URLs(text string) string {
	return urlRE.ReplaceAllStringFunc(text, URL)
}

// Error returns err's message cut to one line for an operator, with URL
// queries (URLs) and secrets (Text, with values) removed. SDK errors carry
// whole responses and request URLs: of an *azcore.ResponseError it keeps
// the request line and says the status and code that came back.
func Error(err error, values ...string) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	var re *azcore.ResponseError
	if errors.As(err, &re) && strings.HasPrefix(err.Error(), msg+"\n") {
		msg += ": " + strconv.Itoa(re.StatusCode)
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
	}
	return Text(URLs(msg), values...)
}
