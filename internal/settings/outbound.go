package settings

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"mapsworker/worker"
)

// tokenTryTimeout bounds each try of a token or Key Vault request. Both
// answer in well under a second when healthy; the Maps call waiting on them
// has its own, longer deadline.
const tokenTryTimeout = 10 * time.Second

// outbound returns co with what every client of the worker shares: a
// transport that never follows a redirect (a token request's client secret
// or assertion, a bearer token, must not cross one), and a bound on each
// try.
func outbound(co azcore.ClientOptions) azcore.ClientOptions {
	if co.Transport == nil {
		co.Transport = worker.NoRedirectClient()
	}
	if co.Retry.TryTimeout == 0 {
		co.Retry.TryTimeout = tokenTryTimeout
	}
	return co
}
