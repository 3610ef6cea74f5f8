package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gatehouse-dev/gatehouse/internal/admin"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

// ObserveOptions connect the dashboard to the state it shows, and tracing
// to an exporter. Every field is optional.
type ObserveOptions struct {
	// Sources of the dashboard's pages. Backends defaults to the static
	// instances of the served configuration; History to the versions this
	// process loaded; a nil Consumers or Audit shows "not connected".
	Backends  dashboard.Backends
	Consumers dashboard.Consumers
	Audit     dashboard.Audit
	History   dashboard.ConfigHistory
	// Recorder, when set, is told of sign-ins and configuration loads.
	Recorder interface {
		Append(actor, action, target, outcome, detail string)
	}
	// TraceExporter replaces the OTLP/HTTP exporter (tests).
	TraceExporter sdktrace.SpanExporter
	// HTTPClient talks to the dashboard's identity provider (tests).
	HTTPClient *http.Client
}

// observeState is the server's part of statistics, tracing and the
// dashboard.
type observeState struct {
	history *dashboard.MemoryHistory
	keySets *identity.KeySets // the dashboard's sign-in keys, when OIDC is on
}

// setupObserve gives the runtime its statistics and tracer registry.
func (s *Server) setupObserve(rt *gateway.Runtime) {
	s.obs = &observeState{history: dashboard.NewMemoryHistory(0)}
	rt.Stats = observe.NewStats(nil)
	failures := observe.RegisterTraceExportFailures(s.metrics.Registry)
	observe.RegisterAccessLogWriteErrors(s.metrics.Registry, rt.AccessLog)
	rt.Tracers = observe.NewTracers(observe.TracersOptions{
		Logger: s.logger, Exporter: s.opts.Observe.TraceExporter, OnExportError: failures.Inc,
	})
}

// recordVersion notes a loaded configuration in the history.
func (s *Server) recordVersion(snap *gateway.Snapshot) {
	dashboard.RecordSnapshot(s.obs.history, snap, "file "+snap.Doc.File)
	if r := s.opts.Observe.Recorder; r != nil {
		r.Append("gatehouse", "config.apply", snap.Version, "", "loaded from "+snap.Doc.File)
	}
}

// statsHandler serves /v1/stats.
func (s *Server) statsHandler() http.Handler {
	return admin.StatsHandler(s.gw.Runtime().Stats)
}

// dashboardHandler builds the /ui handler from the configuration the
// admin listener starts with.
func (s *Server) dashboardHandler(ctx context.Context, cfg *config.Config) (http.Handler, error) {
	dc := &cfg.Observability.Dashboard
	if !dc.DashboardEnabled() {
		return dashboard.Disabled(), nil
	}
	oo := s.dashboardSources(s.opts.Observe)
	o := dashboard.Options{
		Logger:          s.logger,
		Snapshot:        s.gw.Snapshot,
		Stats:           s.gw.Runtime().Stats,
		Backends:        oo.Backends,
		Consumers:       oo.Consumers,
		Audit:           oo.Audit,
		History:         oo.History,
		Recorder:        oo.Recorder,
		InsecureLocal:   dc.InsecureLocal,
		IdleTimeout:     dc.Session.IdleTimeout.Or(config.DefaultSessionIdle),
		AbsoluteTimeout: dc.Session.AbsoluteTimeout.Or(config.DefaultSessionAbsolute),
	}
	if o.Backends == nil {
		o.Backends = dashboard.SnapshotBackends{Snapshot: s.gw.Snapshot}
	}
	if o.History == nil {
		o.History = s.obs.history
	}
	if c := dc.OIDC; c != nil {
		oidc := &dashboard.OIDCOptions{
			Issuer: c.Issuer, ClientID: c.ClientID, RedirectURL: c.RedirectURL,
			Scopes: c.Scopes, RoleClaim: c.Roles.Claim, AdminValues: c.Roles.Admin, ViewerValues: c.Roles.Viewer,
			HTTPClient: oo.HTTPClient,
		}
		if len(oidc.Scopes) == 0 {
			oidc.Scopes = config.DefaultDashboardScopes
		}
		if oidc.RoleClaim == "" {
			oidc.RoleClaim = config.DefaultRoleClaim
		}
		if !c.ClientSecret.IsZero() {
			// The snapshot being served resolved it (a reload that
			// changes it takes effect at the next sign-in).
			oidc.ClientSecret = func() string {
				if snap := s.gw.Snapshot(); snap != nil {
					return snap.DashboardClientSecret().Reveal()
				}
				return ""
			}
		}
		if c.CAFile != "" && oidc.HTTPClient == nil {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("observability.dashboard.oidc.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("observability.dashboard.oidc.ca_file: %s holds no PEM certificate", c.CAFile)
			}
			tr := &http.Transport{TLSClientConfig: tlsRoots(pool), Proxy: http.ProxyFromEnvironment}
			oidc.HTTPClient = &http.Client{Transport: tr, Timeout: 10 * time.Second}
		}
		s.obs.keySets = identity.NewKeySets(s.logger, identity.Hooks{})
		oidc.KeySets = s.obs.keySets
		o.OIDC = oidc
	}
	d, err := dashboard.New(o)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func tlsRoots(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// closeObserve flushes traces and stops the dashboard's key refreshes.
func (s *Server) closeObserve(ctx context.Context) {
	if ks := s.obs.keySets; ks != nil {
		ks.Close()
	}
	if t := s.gw.Runtime().Tracers; t != nil {
		t.Close(ctx)
	}
}
