package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The first registration is retried while the gateway is away (a network
// error, 503), and not when it refuses (403) or with --once.
func TestRegisterFirst_RetriesOnlyWhatMayPass(t *testing.T) {
	firstRegisterWait, maxRegisterWait = 5*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { firstRegisterWait, maxRegisterWait = time.Second, 30*time.Second })
	var calls atomic.Int64
	status := func(n int64) int { return http.StatusServiceUnavailable }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if code := status(n); code != http.StatusCreated {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"title":%q,"status":%d}`, http.StatusText(code), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"service":"orders","id":"10.0.0.1:80"}`)
	}))
	t.Cleanup(srv.Close)
	client := &adminClient{base: srv.URL, http: srv.Client()}
	logger := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	body := map[string]any{"address": "10.0.0.1", "port": 80}

	status = func(n int64) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusCreated
	}
	var in registeredInstance
	if err := registerFirst(ctx, client, "/v1/services/orders/instances", body, &in, false, logger); err != nil || in.ID != "10.0.0.1:80" {
		t.Fatalf("after three 503s: %v, %+v", err, in)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}

	calls.Store(0)
	status = func(int64) int { return http.StatusForbidden }
	if err := registerFirst(ctx, client, "/v1/services/orders/instances", body, &in, false, logger); err == nil || calls.Load() != 1 {
		t.Fatalf("a 403: %v after %d attempts, want an error after one", err, calls.Load())
	}
	calls.Store(0)
	status = func(int64) int { return http.StatusServiceUnavailable }
	if err := registerFirst(ctx, client, "/v1/services/orders/instances", body, &in, true, logger); err == nil || calls.Load() != 1 {
		t.Fatalf("--once: %v after %d attempts, want an error after one", err, calls.Load())
	}
	// Unreachable: retried until the context ends.
	srv.Close()
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := registerFirst(ctx, client, "/v1/services/orders/instances", body, &in, false, logger); err == nil {
		t.Fatal("registered with the gateway gone")
	}
}
