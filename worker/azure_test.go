package worker

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEnsureWithoutCreateRights: an identity with data roles only may not
// create queues or containers (403). Ensure says so once, in one line, and
// carries on with what exists.
func TestEnsureWithoutCreateRights(t *testing.T) {
	var creates atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			creates.Add(1)
		}
		w.Header().Set("x-ms-error-code", "AuthorizationPermissionMismatch")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>`))
	}))
	defer srv.Close()
	conn := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;" +
		"BlobEndpoint=" + srv.URL + "/devstoreaccount1;QueueEndpoint=" + srv.URL + "/devstoreaccount1;"
	st, err := NewStorageFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := st.Ensure(context.Background(), log); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if creates.Load() != 3 {
		t.Errorf("%d create calls, want 3 (two queues, one container)", creates.Load())
	}
	out := logs.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") {
		t.Fatalf("want one warning line, got:\n%s", out)
	}
	for _, name := range []string{"queue maps-requests", "queue maps-requests-poison", "container maps-results"} {
		if !strings.Contains(out, name) {
			t.Errorf("the warning does not name %s: %s", name, out)
		}
	}
}

// The storage clients never follow a redirect: a request's Authorization
// (a bearer token, or a shared-key signature) reaches no other host and no
// plain-http URL.
func TestStorageFollowsNoRedirect(t *testing.T) {
	var followed atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	conn := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;" +
		"BlobEndpoint=" + srv.URL + "/devstoreaccount1;QueueEndpoint=" + srv.URL + "/devstoreaccount1;"
	st, err := NewStorageFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Requests.Receive(ctx, 1, time.Minute); err == nil {
		t.Error("a redirected receive succeeded")
	}
	if _, err := st.Results.Succeeded(ctx, "k/x.json"); err == nil {
		t.Error("a redirected blob read succeeded")
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("%d requests followed a redirect", n)
	}
}
