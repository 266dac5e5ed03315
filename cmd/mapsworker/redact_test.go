package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"mapsworker/internal/settings"
)

// No secret reaches the operator's terminal, in any form it takes: an
// account key, a SAS signature, a bearer token, a client secret's value
// (where nothing marks it as one), a certificate password, a whole
// connection string. Every command's error goes out through exitStatus;
// shortErr cuts SDK errors for the lines commands print themselves.
func TestNoSecretReachesOutput(t *testing.T) {
	accountKey := base64.StdEncoding.EncodeToString([]byte("account-key-" + randomHex(16)))
	conn := "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + accountKey + ";EndpointSuffix=core.windows.net"
	clientSecret := "Xy9~client.secret-" + randomHex(8)
	certPassword := "cert-pw-" + randomHex(8)
	sig := "sig0" + randomHex(12) + "%3D"
	token := "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJtYXBzIn0." + randomHex(16)
	t.Setenv("AzureWebJobsStorage", conn)
	t.Setenv("AZURE_CLIENT_SECRET", clientSecret)
	t.Setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", certPassword)
	secrets := map[string]string{"account key": accountKey, "client secret": clientSecret,
		"certificate password": certPassword, "SAS signature": sig, "bearer token": token}

	req, _ := http.NewRequest(http.MethodGet, "https://acct.blob.core.windows.net/c/b.json?sv=2023-01-03&sig="+sig, nil)
	respErr := runtime.NewResponseError(&http.Response{StatusCode: 403, Request: req,
		Header: http.Header{"X-Ms-Error-Code": {"AuthorizationFailure"}}, Body: http.NoBody})
	cases := map[string]error{
		"connection string in a setting's problem": &settings.Error{Name: "AzureWebJobsStorage", Problem: "cannot parse " + conn},
		"account key alone":                        errors.New("AccountKey=" + accountKey + " is not base64"),
		"SAS URL":                                  fmt.Errorf("GET https://acct.queue.core.windows.net/q/messages?sv=2023-01-03&sig=%s: 403", sig),
		"SAS connection string":                    errors.New("QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=2023&sig=" + sig),
		"bearer token":                             &exitError{1, "the request carried Authorization: Bearer " + token},
		"client secret value":                      fmt.Errorf("AADSTS7000215: Invalid client secret provided (%s)", clientSecret),
		"client secret in a form":                  errors.New("POST body client_id=a&client_secret=" + clientSecret),
		"certificate password":                     errors.New("pkcs12: password " + certPassword + " is incorrect"),
		"an SDK error":                             fmt.Errorf("reading: %w", respErr),
	}
	for name, err := range cases {
		var out strings.Builder
		if code := exitStatus(&out, "result", err); code == 0 || out.Len() == 0 {
			t.Errorf("%s: exit %d, output %q", name, code, out.String())
		}
		for what, s := range secrets {
			if strings.Contains(out.String(), s) {
				t.Errorf("%s: the %s reached the output: %s", name, what, out.String())
			}
		}
	}
	short := shortErr(respErr)
	if !strings.Contains(short, "403 AuthorizationFailure") || strings.Contains(short, sig) || strings.Contains(short, "sv=") {
		t.Errorf("shortErr = %q", short)
	}
}
