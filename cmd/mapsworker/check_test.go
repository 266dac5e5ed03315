package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"mapsworker/jobs/maps/mapstest"
)

// runCheck runs `mapsworker check` and returns its output and exit status.
func runCheck(t *testing.T, te *testEnv, extra map[string]string) (string, int) {
	t.Helper()
	p := te.start(extra, "check")
	p.wait(t, 2*time.Minute)
	out := p.out.String()
	t.Logf("mapsworker check (exit %d):\n%s", p.exitCode(), out)
	return out, p.exitCode()
}

// checkLine returns the output line about name, which must exist.
func checkLine(t *testing.T, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, name) {
			return l
		}
	}
	t.Fatalf("no line about %q in:\n%s", name, out)
	return ""
}

// allPass asserts every line is a ✓ and the named checks are there.
func allPass(t *testing.T, out string, names ...string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "✓ ") {
			t.Errorf("not a pass: %q", l)
		}
	}
	for _, n := range names {
		checkLine(t, out, n)
	}
}

var storageChecks = []string{"settings: credential", "queue maps-requests: read", "queue maps-requests: send, update, delete",
	"queue maps-requests-poison: send", "container maps-results: write", "Azure Maps: geocode one address"}

func TestCheckHealthy(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	out, code := runCheck(t, te, nil)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	allPass(t, out, append(storageChecks, "token for Azure Maps")...)
	if te.queueDepth() != 0 {
		t.Errorf("check left a message in the request queue")
	}
}

// TestCheckIdentityStorageHealthy is the healthy check of an identity-based
// setup (no storage key): it also gets a token for Azure Storage.
func TestCheckIdentityStorageHealthy(t *testing.T) {
	t.Parallel()
	te := newIdentityStorageEnv(t)
	if err := te.storage.Ensure(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	out, code := runCheck(t, te, nil)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	allPass(t, out, append(storageChecks, "token for Azure Storage", "token for Azure Maps")...)
	if !strings.Contains(checkLine(t, out, "settings"), te.env["AZURE_CLIENT_ID"]) {
		t.Errorf("the settings line does not name the client id")
	}
}

func TestCheckVaultHealthy(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	vault := newTestVault(t, "maps-key", "k-"+randomHex(16))
	useVault(t, te, vault)
	te.emu.SetSharedKey(vault.value)
	out, code := runCheck(t, te, nil)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	allPass(t, out, append(storageChecks, "Key Vault secret (Maps key)")...)
	if strings.Contains(out, vault.value) {
		t.Errorf("the key reached the output")
	}
}

func TestCheckVaultForbidden(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	vault := newTestVault(t, "maps-key", "k-"+randomHex(16))
	vault.status = http.StatusForbidden
	useVault(t, te, vault)
	out, code := runCheck(t, te, nil)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	l := checkLine(t, out, "Key Vault secret")
	if !strings.HasPrefix(l, "✗ ") || !strings.Contains(l, `"Key Vault Secrets User"`) || !strings.Contains(l, te.env["AZURE_CLIENT_ID"]) {
		t.Errorf("vault line %q should name the role and the principal", l)
	}
}

func TestCheckMapsForbidden(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.emu.SetFault(&mapstest.Fault{Status: 403, Code: "403 Forbidden"})
	out, code := runCheck(t, te, nil)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	l := checkLine(t, out, "Azure Maps: geocode")
	if !strings.HasPrefix(l, "✗ ") || !strings.Contains(l, `"Azure Maps Data Reader"`) || !strings.Contains(l, te.env["AZURE_CLIENT_ID"]) {
		t.Errorf("Maps line %q should name the role and the principal", l)
	}
	// Everything else still passes: the line points at the one problem.
	if n := strings.Count(out, "✗"); n != 1 {
		t.Errorf("%d failures, want 1", n)
	}
}

func TestCheckMissingQueue(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	q := "missing-" + randomHex(4)
	out, code := runCheck(t, te, map[string]string{"MAPS_QUEUE": q})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, name := range []string{"queue " + q + ": read", "queue " + q + "-poison: send"} {
		l := checkLine(t, out, name)
		if !strings.HasPrefix(l, "✗ ") || !strings.Contains(l, "QueueNotFound") || !strings.Contains(l, "create it") {
			t.Errorf("line %q should say the queue is missing and how to fix it", l)
		}
	}
	if l := checkLine(t, out, "Azure Maps: geocode"); !strings.HasPrefix(l, "✓ ") {
		t.Errorf("Maps line %q", l)
	}
}

func TestCheckTokenOutage(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	te.emu.SetTokenOutage(true)
	out, code := runCheck(t, te, nil)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	l := checkLine(t, out, "token for Azure Maps")
	if !strings.HasPrefix(l, "✗ token for Azure Maps: no token") {
		t.Errorf("token line %q", l)
	}
	if strings.Contains(out, te.emu.IdentityHeader) {
		t.Errorf("the identity header reached the output")
	}
}

// TestCheckServicePrincipalRefused: the authority refuses the client secret;
// the token line says so and how to fix it, and the secret is never printed.
func TestCheckServicePrincipalRefused(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t)
	clientID, tenant := "sp-app-"+randomHex(6), "72f988bf-0000-4000-8000-"+randomHex(6)
	auth := newTestAuthority(t, te.emu, tenant, clientID)
	auth.secret = "the-right-secret-" + randomHex(8)
	wrong := "a-wrong-secret-" + randomHex(8)
	out, code := runCheck(t, te, map[string]string{
		"AZURE_CLIENT_ID": clientID, "AZURE_TENANT_ID": tenant, "AZURE_CLIENT_SECRET": wrong,
		"AZURE_AUTHORITY_HOST": auth.ts.URL,
		"SSL_CERT_FILE":        certBundle(t, te.emu.CAFile(), serverCertFile(t, auth.ts)),
	})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if l := checkLine(t, out, "settings"); !strings.Contains(l, "service-principal (client secret)") || !strings.Contains(l, clientID) {
		t.Errorf("settings line %q", l)
	}
	l := checkLine(t, out, "token for Azure Maps")
	if !strings.HasPrefix(l, "✗ token for Azure Maps: no token") || !strings.Contains(l, "401") || !strings.Contains(l, "AZURE_CLIENT_ID") {
		t.Errorf("token line %q", l)
	}
	if strings.Contains(out, wrong) || strings.Contains(out, auth.secret) {
		t.Errorf("a secret reached the output")
	}
}
