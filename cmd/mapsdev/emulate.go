package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"mapsworker/jobs/maps/mapstest"
)

// cmdEmulate serves the emulator until interrupted. Its output is the
// settings that point the worker at it, as KEY=VALUE lines and nothing else,
// so that a program (cmd/localrun) or a shell can read them.
func cmdEmulate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("emulate", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "Azure Maps emulator (TLS) listen `address`")
	idAddr := fs.String("identity-addr", "127.0.0.1:0", "App Service token endpoint listen `address`")
	certDir := fs.String("cert-dir", "", "keep the emulator's certificate (ca.pem) in this `folder`, to trust with SSL_CERT_FILE")
	clientID := fs.String("client-id", mapstest.DefaultClientID, "the Maps account Client ID the emulator expects in x-ms-client-id")
	envFile := fs.String("env-file", "", "also write the settings as KEY=VALUE lines to this `file`")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, "Usage: mapsdev emulate [flags]\n\n"+
			"Serve a local Azure Maps emulator (geocode, reverse geocode, route; TLS with its own certificate)\n"+
			"and an App Service-style managed identity token endpoint, for development. It prints the\n"+
			"settings that point the worker at it and runs until interrupted.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(w, "\nExamples:\n  mapsdev emulate --cert-dir .run --env-file .run/emulator.env\n")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	// Asked to stop from the moment it has said where it serves.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := mapstest.Start(&mapstest.Options{Addr: *addr, IdentityAddr: *idAddr, CertDir: *certDir, ClientID: *clientID})
	if err != nil {
		return fmt.Errorf("starting the emulator: %w", err)
	}
	defer srv.Close()
	env := fmt.Sprintf("AZURE_MAPS_ENDPOINT=%s\nAZURE_MAPS_CLIENT_ID=%s\nIDENTITY_ENDPOINT=%s\nIDENTITY_HEADER=%s\nSSL_CERT_FILE=%s\n",
		srv.URL, srv.ClientID, srv.IdentityEndpoint, srv.IdentityHeader, srv.CAFile())
	if *envFile != "" {
		if err := os.WriteFile(*envFile, []byte(env), 0o600); err != nil {
			return fmt.Errorf("writing the settings: %w", err)
		}
	}
	if _, err := io.WriteString(stdout, env); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
