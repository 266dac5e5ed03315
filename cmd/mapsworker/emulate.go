package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"mapsworker/jobs/maps/mapstest"
)

func cmdEmulate(args []string) error {
	fs := flag.NewFlagSet("emulate", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "Azure Maps emulator (TLS) listen `address`")
	idAddr := fs.String("identity-addr", "127.0.0.1:0", "App Service token endpoint listen `address`")
	certDir := fs.String("cert-dir", "", "keep the emulator's certificate (ca.pem) in this `folder`, to trust with SSL_CERT_FILE")
	clientID := fs.String("client-id", mapstest.DefaultClientID, "the Maps account Client ID the emulator expects in x-ms-client-id")
	envFile := fs.String("env-file", "", "also write the settings as KEY=VALUE lines to this `file`")
	fs.Usage = usageFor(fs, "emulate [flags]",
		"Serve a local Azure Maps emulator (geocode, reverse geocode, route; TLS with its own certificate)\n"+
			"and an App Service-style managed identity token endpoint, for development. It prints the\n"+
			"settings that point the worker at it and runs until interrupted.",
		"mapsworker emulate --cert-dir .run --env-file .run/emulator.env")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := mapstest.Start(&mapstest.Options{Addr: *addr, IdentityAddr: *idAddr, CertDir: *certDir, ClientID: *clientID})
	if err != nil {
		return err
	}
	defer srv.Close()
	env := fmt.Sprintf("AZURE_MAPS_ENDPOINT=%s\nAZURE_MAPS_CLIENT_ID=%s\nIDENTITY_ENDPOINT=%s\nIDENTITY_HEADER=%s\nSSL_CERT_FILE=%s\n",
		srv.URL, srv.ClientID, srv.IdentityEndpoint, srv.IdentityHeader, srv.CAFile())
	if *envFile != "" {
		if err := os.WriteFile(*envFile, []byte(env), 0o600); err != nil {
			return err
		}
	}
	fmt.Print(env)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
