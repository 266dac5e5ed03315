package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"mapsworker/internal/settings"
	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// checkStep is one line of `mapsworker check`.
type checkStep struct {
	name string
	role string // the role that grants it, named in the fix of a 403
	run  func(ctx context.Context) error
}

func cmdCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.Usage = usageFor(fs, "check",
		"Try every dependency with the configured identity and say what is missing: a role, a setting,\na queue. One line per check; exit status 0 only when all pass. It sends one Azure Maps request\n(one billable transaction) and leaves nothing behind.",
		"mapsworker check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := newApp(true)
	if err != nil {
		fmt.Printf("✗ settings: %s\n", redacted(err.Error()))
		return &exitError{1, ""}
	}
	fmt.Printf("✓ settings: credential %s%s\n", a.id.Kind, clientIDNote(a.id.ClientID))
	ok := runChecks(context.Background(), os.Stdout, a, checkSteps(a))
	if !ok {
		return &exitError{1, ""}
	}
	return nil
}

func clientIDNote(id string) string {
	if id == "" {
		return ""
	}
	return " (client id " + id + ")"
}

func checkSteps(a *app) []checkStep {
	s := a.s
	probe := "mapsworker-check-" + randomHex(6)
	var steps []checkStep
	if s.StorageConnection == "" {
		steps = append(steps, checkStep{"token for Azure Storage", "", func(ctx context.Context) error {
			sid, err := s.StorageIdentity(a.id)
			if err != nil {
				return err
			}
			_, err = sid.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
			return err
		}})
	}
	if s.MapsKeySecretURI == "" {
		steps = append(steps, checkStep{"token for Azure Maps", "", func(ctx context.Context) error {
			_, err := a.id.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{maps.Scope}})
			return err
		}})
	} else {
		steps = append(steps, checkStep{"Key Vault secret (Maps key)", "Key Vault Secrets User", func(ctx context.Context) error {
			keys, err := settings.NewVaultKey(s.MapsKeySecretURI, a.id.Credential, nil)
			if err != nil {
				return err
			}
			_, err = keys.Refresh(ctx)
			return err
		}})
	}
	reqQ := a.storage.Requests
	steps = append(steps,
		checkStep{"queue " + s.Queue + ": read", "Storage Queue Data Message Processor", func(ctx context.Context) error {
			_, err := reqQ.Peek(ctx, 1)
			return err
		}},
		// The probe message is enqueued invisible, so no worker takes it,
		// then updated and deleted with its pop receipt. It expires a
		// second after it could become visible: if check dies before the
		// delete, no worker ever sees it (and poisons it).
		checkStep{"queue " + s.Queue + ": send, update, delete", "Storage Queue Data Contributor", func(ctx context.Context) error {
			m, err := reqQ.EnqueueHidden(ctx, probe, probeHidden)
			if err != nil {
				return err
			}
			// Hidden to the same end: the update keeps it invisible until
			// a second before it expires.
			pop, err := reqQ.Update(ctx, m.ID, m.PopReceipt, probe, probeHidden)
			if err != nil {
				return err
			}
			return reqQ.Delete(ctx, m.ID, pop)
		}},
		checkStep{"queue " + s.Queue + "-poison: send", "Storage Queue Data Message Sender", func(ctx context.Context) error {
			pq := a.storage.Poison
			m, err := pq.EnqueueHidden(ctx, probe, probeHidden)
			if err != nil {
				return err
			}
			// Tidy up where the role allows; a sender-only role expires it.
			pq.Delete(ctx, m.ID, m.PopReceipt)
			return nil
		}},
		checkStep{"container " + s.Container + ": write", "Storage Blob Data Contributor", func(ctx context.Context) error {
			name := worker.ProbeName(probe)
			if err := a.storage.Results.PutText(ctx, name, `{"check":true}`); err != nil {
				return err
			}
			return a.storage.Results.Delete(ctx, name)
		}},
		checkStep{"Azure Maps: geocode one address", "Azure Maps Data Reader", func(ctx context.Context) error {
			client, err := a.mapsClient()
			if err != nil {
				return err
			}
			_, err = client.Geocode(ctx, maps.GeocodeQuery{Query: "15127 NE 24th Street, Redmond, WA", Top: 1})
			return err
		}},
	)
	return steps
}

// runChecks runs each step and prints ✓ or ✗ with the fix.
func runChecks(ctx context.Context, w io.Writer, a *app, steps []checkStep) bool {
	all := true
	for _, st := range steps {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := st.run(cctx)
		cancel()
		if err == nil {
			fmt.Fprintf(w, "✓ %s\n", st.name)
			continue
		}
		all = false
		fmt.Fprintf(w, "✗ %s: %s\n", st.name, checkFix(st, err, a))
	}
	return all
}

// checkFix explains a failed check: what went wrong and what to do.
func checkFix(st checkStep, err error, a *app) string {
	principal := "the app's system-assigned managed identity"
	switch {
	case isServicePrincipal(a.id):
		principal = "the service principal with client id " + a.id.ClientID
	case a.id.ClientID != "":
		principal = "the identity with client id " + a.id.ClientID
	}
	if strings.HasPrefix(st.role, "Storage ") && a.s.StorageClientID != "" && a.s.StorageClientID != a.id.ClientID {
		principal = "the storage identity with client id " + a.s.StorageClientID
	}
	var ve *settings.VaultError
	if errors.As(err, &ve) {
		if st.role != "Key Vault Secrets User" {
			return "the Maps key could not be read from Key Vault (see the Key Vault line)"
		}
		switch ve.StatusCode {
		case http.StatusForbidden:
			return fmt.Sprintf("403 %s: assign the role %q to %s on the vault (or the secret)", ve.ErrorCode, st.role, principal)
		case http.StatusNotFound:
			return fmt.Sprintf("404 %s: no such secret; check AZURE_MAPS_KEY_SECRET_URI", ve.ErrorCode)
		}
		return ve.Error()
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		// Azure Maps' error codes already start with the status ("403 Forbidden").
		status := fmt.Sprintf("%d %s", re.StatusCode, re.ErrorCode)
		if strings.HasPrefix(re.ErrorCode, fmt.Sprint(re.StatusCode)) {
			status = re.ErrorCode
		}
		scope := "on the resource"
		switch {
		case strings.HasPrefix(st.role, "Azure Maps"):
			scope = "on the Azure Maps account"
		case strings.HasPrefix(st.role, "Storage Queue"):
			scope = "on the queue (or the storage account)"
		case strings.HasPrefix(st.role, "Storage Blob"):
			scope = "on the container (or the storage account)"
		}
		switch {
		case re.StatusCode == http.StatusForbidden:
			return fmt.Sprintf("%s: assign the role %q to %s %s", status, st.role, principal, scope)
		case re.StatusCode == http.StatusUnauthorized && strings.HasPrefix(st.role, "Azure Maps"):
			return fmt.Sprintf("%s: the credential was refused; check AZURE_MAPS_CLIENT_ID (the Maps account's Client ID) and that %s exists", status, principal)
		case re.StatusCode == http.StatusUnauthorized:
			return fmt.Sprintf("%s: the credential was refused; check that %s exists", status, principal)
		case re.StatusCode == http.StatusNotFound:
			return fmt.Sprintf("%s: it does not exist; create it, or let `mapsworker run` create it with a role that allows", status)
		}
		return status
	}
	var te *maps.TokenError
	if errors.As(err, &te) || st.role == "" {
		why := shortErr(err)
		var afe *azidentity.AuthenticationFailedError
		if errors.As(err, &afe) && afe.RawResponse != nil {
			why = fmt.Sprintf("%s: the token endpoint answered %s", strings.TrimRight(strings.TrimSpace(why), "."), afe.RawResponse.Status)
		}
		hint := "on App Service: is the identity enabled" + clientIDHint(a.id.ClientID) + "? off Azure: set AZURE_TENANT_ID, AZURE_CLIENT_ID and a secret or certificate"
		switch {
		case isServicePrincipal(a.id):
			hint = "check AZURE_TENANT_ID, AZURE_CLIENT_ID and that the secret or certificate is the app registration's and not expired"
		case a.id.Kind == settings.KindWorkload:
			hint = "check AZURE_TENANT_ID, AZURE_CLIENT_ID and the identity's federated credential: issuer, subject system:serviceaccount:NAMESPACE:NAME, audience api://AzureADTokenExchange"
		}
		return "no token: " + why + " (" + hint + ")"
	}
	return shortErr(err)
}

func clientIDHint(id string) string {
	if id == "" {
		return ""
	}
	return " and assigned to the app (client id " + id + ")"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// probeHidden is how long check's probe messages stay invisible; they
// expire a second later.
const probeHidden = 600 * time.Second

// isServicePrincipal reports whether id is a service principal's, with a
// secret or a certificate.
func isServicePrincipal(id *settings.Identity) bool {
	return id.Kind == settings.KindClientSecret || id.Kind == settings.KindCertificate
}
