package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gatehouse-dev/gatehouse/internal/admin"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/dashboard"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
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
	// Anomalies defaults to the runtime's anomaly detector.
	Anomalies dashboard.Anomalies
	// Suggestions defaults to the suggestions (package advisor) from the
	// runtime's upstream statistics.
	Suggestions dashboard.Suggestions
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
	dash    atomic.Pointer[dashboardState] // set when the admin listener starts
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

// dashboardState is the /ui handler being served and the settings it was
// built from.
type dashboardState struct {
	handler  http.Handler
	dash     *dashboard.Dashboard // the handler, when the dashboard is on
	settings config.Dashboard     // as dashboardSettings gives them
	caPEM    []byte               // the provider's CA bundle, when ca_file is set
}

// close stops what the dashboard runs besides its handler.
func (st *dashboardState) close() {
	if st.dash != nil {
		st.dash.Close()
	}
}

// dashboardSettings returns d without what a built dashboard takes from
// the served snapshot at each sign-in: the client secret, of which only
// whether there is one matters.
func dashboardSettings(d config.Dashboard) config.Dashboard {
	if d.OIDC != nil {
		o := *d.OIDC
		if !o.ClientSecret.IsZero() {
			o.ClientSecret = config.Secret{Provider: "resolved by the snapshot"}
		}
		d.OIDC = &o
	}
	return d
}

// dashboardScope is a digest of the dashboard's settings (its client
// secret only as a reference) and of the CA it trusts for its identity
// provider: the scope of the sessions it shares through the store.
func dashboardScope(settings config.Dashboard, snap *gateway.Snapshot) string {
	b, err := json.Marshal(settings)
	if err != nil { // plain data: it does not fail; the scope stays one per error
		b = []byte(err.Error())
	}
	_, pem := snap.DashboardCA()
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write(pem)
	return hex.EncodeToString(h.Sum(nil))
}

// serveDashboard serves /ui with the dashboard in force.
func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	s.obs.dash.Load().handler.ServeHTTP(w, r)
}

// buildDashboard builds the /ui handler from snap's configuration.
func (s *Server) buildDashboard(snap *gateway.Snapshot) (*dashboardState, error) {
	dc := &snap.Doc.Config.Observability.Dashboard
	st := &dashboardState{settings: dashboardSettings(*dc)}
	if !dc.DashboardEnabled() {
		st.handler = dashboard.Disabled()
		return st, nil
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
		Anomalies:       oo.Anomalies,
		Suggestions:     oo.Suggestions,
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
	if state := s.state; state != nil && state.postgres != nil {
		// Gateways that share the store share the dashboard's sessions,
		// so that a person's requests may reach any of them; a change of
		// the dashboard's settings ends them all, as a rebuild does in
		// memory.
		o.Sessions = state.store
		o.SessionScope = dashboardScope(st.settings, snap)
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
		oidc.RootCAs, st.caPEM = snap.DashboardCA()
		o.OIDC = oidc
	}
	d, err := dashboard.New(o)
	if err != nil {
		return nil, err
	}
	st.handler, st.dash = d, d
	return st, nil
}

// reloadDashboard rebuilds the dashboard when a reload changed its
// settings or its provider's CA bundle. The new one starts without
// sessions: whoever was signed in signs in again, under the new settings
// (a role taken away is gone at once). Sign-ins under way are lost too.
// Before the admin listener starts there is nothing to rebuild.
func (s *Server) reloadDashboard(snap *gateway.Snapshot) {
	cur := s.obs.dash.Load()
	if cur == nil {
		return
	}
	settings := dashboardSettings(snap.Doc.Config.Observability.Dashboard)
	_, pem := snap.DashboardCA()
	if reflect.DeepEqual(settings, cur.settings) && bytes.Equal(pem, cur.caPEM) {
		return
	}
	next, err := s.buildDashboard(snap)
	if err != nil {
		// Validation accepts only what the dashboard can be built from;
		// should it still fail, the dashboard in force stays.
		s.logger.Error("the dashboard keeps its previous settings", "error", err)
		return
	}
	s.obs.dash.Store(next)
	cur.close()
	s.logger.Warn("the dashboard's settings changed: it was rebuilt, and whoever was signed in must sign in again",
		"enabled", settings.DashboardEnabled())
}

func tlsRoots(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// closeObserve flushes traces and stops the dashboard's key refreshes.
func (s *Server) closeObserve(ctx context.Context) {
	if d := s.obs.dash.Load(); d != nil {
		d.close()
	}
	if t := s.gw.Runtime().Tracers; t != nil {
		t.Close(ctx)
	}
}
