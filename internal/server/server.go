// Package server runs a gateway process: it loads the configuration,
// serves the public listeners and the admin listener, reloads on demand or
// when the file changes, and drains in-flight requests on shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/admin"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connlimit"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// Options configure a Server.
type Options struct {
	// Load returns the configuration; it is called at start and on every
	// reload.
	Load func() (*config.Document, config.Diagnostics)
	// ConfigFile, when set, is watched for changes.
	ConfigFile string
	Logger     *slog.Logger
	// AccessLogger receives the access log through slog (text, for
	// people); AccessLogJSON, when set, receives it as buffered JSON lines
	// written without allocating (for production). With neither, there
	// is no access log.
	AccessLogger  *slog.Logger
	AccessLogJSON io.Writer
	Secrets       secret.Resolver
	// StartupTimeout bounds the initial fetch of identity provider keys
	// before serving (serving starts anyway; /readyz says when ready).
	StartupTimeout time.Duration
	// DataDir, when set, replaces storage.data_dir (tests, gatehouse dev).
	DataDir string
	// Observe connects the dashboard and tracing (observe.go).
	Observe ObserveOptions
}

// Server is a running gateway process.
type Server struct {
	opts    Options
	logger  *slog.Logger
	gw      *gateway.Gateway
	metrics *observe.Metrics

	reloadMu sync.Mutex
	draining atomic.Bool
	// changed is signalled after each successful load (watch_secrets.go).
	changed chan struct{}

	mu         sync.Mutex
	public     []*listener
	conns      *connlimit.Limit // the public listeners' connections, set by Listen
	adminConns *connlimit.Limit // the admin listener's
	adminSrv   *http.Server
	adminAddr  net.Addr
	started    *config.Server // the server section the listeners were started with

	state   *state // the store and what uses it (state.go)
	apiOnce sync.Once
	api     *admin.API
	obs     *observeState
}

type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
	tls  bool
	// fast serves plain HTTP/1.1 (h1), handing upgrades and the HTTP/2
	// preface to srv; nil on TLS listeners and the admin listener.
	fast *h1.Server
}

// New loads the configuration and compiles the first snapshot. It reports
// the configuration's problems and returns no server if it does not load.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		return nil, errors.New("server: a logger is required")
	}
	if opts.Secrets == nil {
		opts.Secrets = secret.Local{}
	}
	metrics := observe.NewMetrics()
	rt := &gateway.Runtime{
		Logger:  opts.Logger,
		Metrics: metrics,
		KeySets: identity.NewKeySets(opts.Logger, identity.Hooks{
			OnFetch: func(provider, outcome string) { metrics.JWKSFetches.WithLabelValues(provider, outcome).Inc() },
		}),
		Transports: upstream.NewTransports(),
		Upstreams:  gateway.NewUpstreams(opts.Logger, metrics),
		Secrets:    opts.Secrets,
	}
	rt.BackendIdentity = gateway.NewBackendIdentity(opts.Logger)
	switch {
	case opts.AccessLogJSON != nil:
		rt.AccessLog = observe.NewJSONAccessLog(opts.AccessLogJSON, 0)
	case opts.AccessLogger != nil:
		rt.AccessLog = observe.NewAccessLog(opts.AccessLogger)
	}
	s := &Server{opts: opts, logger: opts.Logger, gw: gateway.New(rt), metrics: metrics, changed: make(chan struct{}, 1)}
	s.setupObserve(rt)
	doc, diags := opts.Load()
	if diags == nil {
		if err := s.openState(ctx, doc); err != nil {
			rt.KeySets.Close()
			return nil, err
		}
		var snap *gateway.Snapshot
		snap, diags = s.gw.Load(ctx, doc)
		if diags == nil {
			s.loaded(snap)
			s.recordLoad(ctx, "start", audit.ActorSystem, nil, snap, nil)
		}
	}
	if diags != nil {
		metrics.Reloads.WithLabelValues("failure").Inc()
		rt.KeySets.Close()
		rt.BackendIdentity.Close()
		_ = rt.Quotas.Close()
		s.Close()
		rt.Upstreams.Close()
		return nil, diags
	}
	metrics.Reloads.WithLabelValues("success").Inc()
	return s, nil
}

// The admin listener's timeouts for a whole request (tests shorten it)
// and a whole answer.
var adminReadTimeout = 30 * time.Second

const adminWriteTimeout = 2 * time.Minute

// Gateway returns the gateway being served.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

func (s *Server) loaded(snap *gateway.Snapshot) {
	s.metrics.ConfigInfo.Reset()
	s.metrics.ConfigInfo.WithLabelValues(snap.Version).Set(1)
	s.metrics.LastReload.Set(float64(snap.Loaded.Unix()))
	select {
	case s.changed <- struct{}{}:
	default:
	}
	s.recordVersion(snap)
}

// Reload loads the configuration again and, if it is valid, swaps it in.
// An invalid configuration is refused: its problems are logged and
// returned, a metric counts it, and the running configuration keeps
// serving. Secrets are resolved afresh even if the file is unchanged.
func (s *Server) Reload(ctx context.Context, cause string) error {
	return s.reload(ctx, cause, audit.ActorSystem, true)
}

// ReloadAs is Reload on behalf of actor, as the audit log records it.
func (s *Server) ReloadAs(ctx context.Context, cause, actor string) error {
	return s.reload(ctx, cause, actor, true)
}

// reload is ReloadAs; unless force, an unchanged configuration is kept.
func (s *Server) reload(ctx context.Context, cause, actor string, force bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.gw.Snapshot()
	// A forced reload (SIGHUP, a secret file changed) recompiles even when
	// the file is unchanged: certificates, CA bundles and secrets it refers
	// to may have changed. A file-watch event with identical content is a
	// no-op.
	doc, diags := s.opts.Load()
	if diags == nil && old != nil && !force && gateway.Version(doc.Config) == old.Version {
		s.logger.Info("configuration unchanged", "cause", cause, "version", old.Version)
		return nil
	}
	s.mu.Lock()
	started := s.started // the listeners' configuration (nil before Listen)
	s.mu.Unlock()
	if diags == nil && started != nil {
		diags = unservable(started, doc)
	}
	var snap *gateway.Snapshot
	if diags == nil {
		snap, diags = s.gw.Load(ctx, doc)
	}
	if diags != nil {
		s.metrics.Reloads.WithLabelValues("failure").Inc()
		for _, d := range diags {
			s.logger.Error("configuration refused", "cause", cause, "problem", d.String())
		}
		s.logger.Error("reload failed; the running configuration keeps serving", "cause", cause, "problems", len(diags), "version", versionOf(old))
		s.recordLoad(ctx, cause, actor, old, nil, diags)
		return diags
	}
	s.metrics.Reloads.WithLabelValues("success").Inc()
	s.loaded(snap)
	s.recordLoad(ctx, cause, actor, old, snap, nil)
	s.reloadDashboard(snap)
	s.logger.Info("configuration reloaded", "cause", cause, "version", snap.Version, "previous", versionOf(old))
	if started != nil {
		if fixed := fixedAtStart(started, &doc.Config.Server); len(fixed) > 0 {
			s.logger.Warn("these changes take effect at the next restart", "settings", strings.Join(fixed, ", "))
		}
	}
	s.fetchKeys(ctx, snap)
	return nil
}

func versionOf(s *gateway.Snapshot) string {
	if s == nil {
		return ""
	}
	return s.Version
}

// fixedAtStart returns the settings fixed when the listeners started that
// b changes from a (the configuration they started with), for the reload
// to warn that they take effect at the next restart. A listener's TLS
// files and min_version are not among them: every handshake reads them
// from the snapshot in service. Values are compared as they take effect,
// so writing out a default changes nothing.
func fixedAtStart(a, b *config.Server) []string {
	plain := false
	for _, l := range a.EffectiveListeners() {
		plain = plain || l.TLS == nil
	}
	var changed []string
	if !reflect.DeepEqual(boundListeners(a), boundListeners(b)) {
		changed = append(changed, "server.listeners")
	}
	if a.AdminAddress() != b.AdminAddress() {
		changed = append(changed, "server.admin.address")
	}
	if effectiveTimeouts(a.Timeouts) != effectiveTimeouts(b.Timeouts) {
		changed = append(changed, "server.timeouts")
	}
	if maxConnections(a) != maxConnections(b) {
		changed = append(changed, "server.limits.max_connections")
	}
	if a.Limits.MaxHeaderBytes.Or(config.DefaultMaxHeaderBytes) != b.Limits.MaxHeaderBytes.Or(config.DefaultMaxHeaderBytes) {
		changed = append(changed, "server.limits.max_header_bytes")
	}
	if plain && b.Limits.MaxURI.Or(config.DefaultMaxURI) > a.Limits.MaxURI.Or(config.DefaultMaxURI) {
		changed = append(changed, "server.limits.max_uri (raised, on plain-HTTP listeners)")
	}
	return changed
}

// boundListener is what a listener fixes when it starts.
type boundListener struct {
	name, address string
	tls           bool
}

func boundListeners(s *config.Server) []boundListener {
	var out []boundListener
	for _, l := range s.EffectiveListeners() {
		out = append(out, boundListener{l.Name, l.Address, l.TLS != nil})
	}
	return out
}

func effectiveTimeouts(t config.ServerTimeouts) [5]time.Duration {
	return [5]time.Duration{
		t.ReadHeader.Or(config.DefaultReadHeaderTimeout), t.Read.Or(config.DefaultReadTimeout),
		t.Write.Or(config.DefaultWriteTimeout), t.Idle.Or(config.DefaultIdleTimeout),
		t.Shutdown.Or(config.DefaultShutdownTimeout),
	}
}

// unservable refuses the changes a reload cannot make that the listeners
// in service could not live with until a restart: TLS taken from a
// listener that serves it (its tls removed, or the listener renamed or
// removed: every handshake would fail, for want of its certificate), and
// admin TLS turned on or off (off: the same; on: the admin listener stays
// plain, so a required client certificate could never be presented). A
// restart applies them.
func unservable(started *config.Server, doc *config.Document) config.Diagnostics {
	r := config.NewReporter(doc)
	next := &doc.Config.Server
	for _, l := range started.EffectiveListeners() {
		if l.TLS == nil {
			continue
		}
		path, kept := "server.listeners", false
		for i, n := range next.EffectiveListeners() {
			if n.Name == l.Name {
				path, kept = config.Index("server.listeners", i), n.TLS != nil
				break
			}
		}
		if !kept {
			r.Errorf(path, "listener %q serves TLS since the start, and a reload cannot take its certificate away (remove its tls, rename or remove it) without failing every handshake: restart the server to make this change", l.Name)
		}
	}
	switch {
	case started.Admin.TLS == nil && next.Admin.TLS != nil:
		r.Errorf("server.admin.tls", "a reload cannot turn the admin listener's TLS on: it would go on serving plain HTTP, where no client certificate can be presented; restart the server to make this change")
	case started.Admin.TLS != nil && next.Admin.TLS == nil:
		r.Errorf("server.admin", "a reload cannot turn the admin listener's TLS off: it would go on serving TLS without a certificate, failing every handshake; restart the server to make this change")
	}
	return r.Diagnostics()
}

// fetchKeys fetches the keys of every identity provider that has none yet,
// waiting at most the startup timeout; failures are logged by the key set,
// which keeps retrying in the background.
func (s *Server) fetchKeys(ctx context.Context, snap *gateway.Snapshot) {
	timeout := s.opts.StartupTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ks := range snap.KeySets() {
		if ks.Ready() {
			continue
		}
		wg.Go(func() { _ = ks.Refresh(ctx) })
	}
	wg.Wait()
}

// Listen binds the public and admin listeners. It is separate from Serve
// so that callers (and tests using port 0) can learn the addresses first.
func (s *Server) Listen(ctx context.Context) error {
	snap := s.gw.Snapshot()
	cfg := &snap.Doc.Config.Server
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = cfg
	if s.conns == nil {
		s.conns = s.connLimit("public", maxConnections(cfg))
	}
	var lc net.ListenConfig
	for _, l := range cfg.EffectiveListeners() {
		ln, err := lc.Listen(ctx, "tcp", l.Address)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listener %s: %w", l.Name, err)
		}
		srv := s.httpServer(cfg, s.gw)
		pl := &listener{name: l.Name, ln: ln, srv: srv, tls: l.TLS != nil}
		if l.TLS != nil {
			srv.TLSConfig = s.tlsConfig(l.Name)
			pl.ln = s.conns.Listener(ln)
		} else {
			// h1 takes its slots itself: it needs the *net.TCPConn
			// a limited listener's connections would hide.
			pl.fast = s.fastServer(cfg, srv)
			pl.fast.ConnLimit = s.conns
		}
		s.public = append(s.public, pl)
	}
	ln, err := lc.Listen(ctx, "tcp", cfg.AdminAddress())
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("admin listener: %w", err)
	}
	if s.adminConns == nil {
		s.adminConns = s.connLimit("admin", adminMaxConnections)
	}
	ln = s.adminConns.Listener(ln)
	s.adminAddr = ln.Addr()
	dash, err := s.buildDashboard(snap)
	if err != nil {
		ln.Close()
		s.closeListeners()
		return fmt.Errorf("dashboard: %w", err)
	}
	s.obs.dash.Store(dash)
	s.adminSrv = &http.Server{
		Handler: admin.New(admin.Options{
			Metrics: s.metrics.Registry,
			Ready:   s.ready,
			API:     s.adminAPI(),
			UI:      http.HandlerFunc(s.serveDashboard),
			Guard:   s.AdminAPI().AdminOnly,
		}),
		// Bounded like a public listener's: a client that sends a
		// Content-Length and no body, or reads no answer, must not hold
		// its connection for good. The write timeout leaves room for a
		// CPU profile of up to adminWriteTimeout less a few seconds.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	adminTLS := snap.Admin() != nil && snap.Admin().Certificate != nil
	if adminTLS {
		s.adminSrv.TLSConfig = s.adminTLSConfig()
	}
	s.public = append(s.public, &listener{name: "admin", ln: ln, srv: s.adminSrv, tls: adminTLS})
	s.fetchKeys(ctx, snap)
	return nil
}

// adminMaxConnections bounds the admin listener's connections (API
// calls, metrics scrapes, the dashboard), apart from the public
// listeners' so that neither can take the other's.
const adminMaxConnections = 256

// maxConnections is the public listeners' connection limit that s sets.
func maxConnections(s *config.Server) int {
	if n := s.Limits.MaxConnections; n > 0 {
		return n
	}
	return connlimit.Default()
}

// connLimit makes the connection limit of a group of listeners ("public"
// or "admin") with at most n connections, with its metrics and a warning,
// at most once a minute, when it is reached.
func (s *Server) connLimit(group string, n int) *connlimit.Limit {
	l := connlimit.New(n)
	var lastWarn atomic.Int64
	l.OnWait = func() {
		now := time.Now().UnixNano()
		if last := lastWarn.Load(); now-last >= int64(time.Minute) && lastWarn.CompareAndSwap(last, now) {
			s.logger.Warn("connection limit reached: new connections wait until one closes", "listeners", group, "max_connections", n)
		}
	}
	observe.RegisterConnectionLimit(s.metrics.Registry, group, l)
	return l
}

func (s *Server) closeListeners() {
	for _, l := range s.public {
		l.ln.Close()
	}
	s.public = nil
}

// Addr returns the bound address of a public listener, or "admin".
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.public {
		if l.name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

func (s *Server) httpServer(cfg *config.Server, h http.Handler) *http.Server {
	t := cfg.Timeouts
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader.Or(config.DefaultReadHeaderTimeout),
		ReadTimeout:       t.Read.Or(config.DefaultReadTimeout),
		WriteTimeout:      t.Write.Or(config.DefaultWriteTimeout),
		IdleTimeout:       t.Idle.Or(config.DefaultIdleTimeout),
		MaxHeaderBytes:    int(cfg.Limits.MaxHeaderBytes.Or(config.DefaultMaxHeaderBytes)),
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		HTTP2:             http2Config(),
	}
}

// fastServer serves a plain listener with h1, the gateway's HTTP/1.1 hot
// path, with the same timeouts and limits as srv, which takes the
// connections h1 hands over (WebSocket and h2c upgrades, the HTTP/2
// preface).
func (s *Server) fastServer(cfg *config.Server, srv *http.Server) *h1.Server {
	return &h1.Server{
		Handler:           srv.Handler,
		Fallback:          srv,
		ReadHeaderTimeout: srv.ReadHeaderTimeout,
		ReadTimeout:       srv.ReadTimeout,
		WriteTimeout:      srv.WriteTimeout,
		IdleTimeout:       srv.IdleTimeout,
		MaxHeaderBytes:    srv.MaxHeaderBytes,
		MaxURIBytes:       int(cfg.Limits.MaxURI.Or(config.DefaultMaxURI)),
		Logger:            s.logger,
		// The gateway keeps nothing of a request once ServeHTTP returns
		// (protocol upgrades, whose copying outlasts nothing either, go
		// to Fallback before a request is built).
		ReuseRequests: true,
	}
}

// tlsConfig serves the certificate and client CAs of the current snapshot,
// so that a reload replaces them without restarting the listener.
func (s *Server) tlsConfig(name string) *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		snap := s.gw.Snapshot()
		cert := snap.ListenerCertificate(name)
		if cert == nil {
			return nil, fmt.Errorf("listener %s has no certificate", name)
		}
		c := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
			Certificates: []tls.Certificate{*cert},
		}
		for _, l := range snap.Doc.Config.Server.EffectiveListeners() {
			if l.Name == name && l.TLS != nil && l.TLS.MinVersion == "1.3" {
				c.MinVersion = tls.VersionTLS13
			}
		}
		if pool := snap.ListenerClientCAs(name); pool != nil {
			c.ClientAuth = tls.VerifyClientCertIfGiven
			c.ClientCAs = pool
		}
		return c, nil
	}
	return base
}

// ready reports whether the gateway should receive traffic.
func (s *Server) ready() (bool, string) {
	if s.draining.Load() {
		return false, "shutting down"
	}
	snap := s.gw.Snapshot()
	if snap == nil {
		return false, "no configuration loaded"
	}
	if !snap.Ready() {
		return false, "waiting for identity provider keys"
	}
	return true, "ready"
}

// Serve serves every listener until ctx is done, then drains: listeners
// stop accepting at once, in-flight requests get up to the shutdown
// timeout to finish. It returns nil after a clean drain.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	listeners := append([]*listener(nil), s.public...)
	cfg := s.started
	s.mu.Unlock()
	if len(listeners) == 0 {
		return errors.New("server: Listen was not called")
	}
	s.startBackground(ctx)
	defer s.Close()
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		s.logger.Info("listening", "listener", l.name, "address", l.ln.Addr().String())
		go func() {
			var err error
			switch {
			case l.tls:
				err = l.srv.ServeTLS(l.ln, "", "")
			case l.fast != nil:
				err = l.fast.Serve(l.ln)
			default:
				err = l.srv.Serve(l.ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		s.logger.Error("listener failed", "error", serveErr)
	}
	s.draining.Store(true)
	deadline := cfg.Timeouts.Shutdown.Or(config.DefaultShutdownTimeout)
	s.logger.Info("shutting down; draining in-flight requests", "deadline", deadline.String())
	sctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	var forced atomic.Bool
	for _, l := range listeners {
		wg.Go(func() {
			if l.fast != nil {
				// Also shuts down the fallback server.
				if err := l.fast.Shutdown(sctx); err != nil {
					forced.Store(true)
					l.fast.Close()
				}
				return
			}
			if err := l.srv.Shutdown(sctx); err != nil {
				forced.Store(true)
				l.srv.Close()
			}
		})
	}
	wg.Wait()
	rt := s.gw.Runtime()
	rt.KeySets.Close()
	rt.Upstreams.Close()
	rt.Transports.Close()
	rt.BackendIdentity.Close()
	_ = rt.Quotas.Close() // writes the quota counters one last time
	_ = rt.AccessLog.Close()
	s.closeObserve(sctx)
	if forced.Load() {
		s.logger.Warn("drain deadline passed; remaining connections were closed")
	} else {
		s.logger.Info("drained")
	}
	return serveErr
}

// AdminAddr returns the bound admin address.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminAddr
}
