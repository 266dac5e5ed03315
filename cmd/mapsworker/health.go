package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"mapsworker/internal/settings"
)

// healthServer answers the probes of hosts that probe (Container Apps,
// Kubernetes): /healthz while the process is up, /readyz while it dequeues.
type healthServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// readiness reports whether the worker is dequeuing, and if not, why.
type readiness func() (ready bool, why string)

// healthHandler serves /healthz and /readyz.
func healthHandler(ready readiness) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, why := ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, why)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// startHealth listens on addr and serves the probes until Shutdown. A port
// that cannot be had is a settings error: the host's probes would fail.
func startHealth(addr string, ready readiness) (*healthServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &settings.Error{Name: "MAPS_HEALTH_ADDR", Problem: fmt.Sprintf("cannot listen on %q: %v", addr, err)}
	}
	h := &healthServer{
		srv: &http.Server{Handler: healthHandler(ready), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		ln: ln, done: make(chan struct{}),
	}
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(ln) // ErrServerClosed after Shutdown
	}()
	return h, nil
}

// Addr is the address listened on (with the port chosen for :0).
func (h *healthServer) Addr() string { return h.ln.Addr().String() }

// Shutdown stops listening and waits, within ctx, for probes being answered.
func (h *healthServer) Shutdown(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = h.srv.Close()
	}
	<-h.done
	return err
}
