// Package admin serves the admin listener: Prometheus metrics, liveness
// and readiness, and the authenticated admin API under /v1 (service
// registration, consumers and keys, the audit log, configuration). It is
// never reachable from the public listeners.
package admin

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the admin handler.
type Options struct {
	Metrics *prometheus.Registry
	// Ready reports whether the gateway should receive traffic, and why not.
	Ready func() (bool, string)
	// API serves /v1/ (see NewAPI); nil leaves /v1 unserved.
	API http.Handler
	// UI serves the dashboard under /ui.
	UI http.Handler
	// Guard protects the profiling endpoints (/debug/pprof/), e.g.
	// API.AdminOnly; nil leaves them unserved.
	Guard func(http.Handler) http.Handler
}

// New returns the admin handler.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{}))
	// Profiles for performance work, for admins only: goroutine dumps
	// show what the process is doing.
	if o.Guard != nil {
		mux.Handle("GET /debug/pprof/", o.Guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/profile", o.Guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/trace", o.Guard(http.HandlerFunc(pprof.Trace)))
		mux.Handle("GET /debug/pprof/symbol", o.Guard(http.HandlerFunc(pprof.Symbol)))
	}
	if o.UI != nil {
		mux.Handle("/ui", o.UI)
		mux.Handle("/ui/", o.UI)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, why := o.Ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ok, "status": why})
	})
	if o.API != nil {
		mux.Handle("/v1/", o.API)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
