// Package dashboard is the one-pane web dashboard served at /ui on the
// admin listener: live latency and error rates per API, every operation
// with its effective auth requirement, backend instances, consumers and
// their keys, the audit log and configuration history with diffs.
//
// Pages are rendered on the server with html/template; a small script
// (no dependencies, no CDN) draws the live SVG charts. People sign in with
// OpenID Connect (authorization code with PKCE) and get a server-side
// session; every change carries a per-session CSRF token and is checked
// for its Origin. For local development, insecure_local skips sign-in on
// a loopback admin listener.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the dashboard.
type Options struct {
	Logger *slog.Logger
	// Snapshot returns the configuration being served (APIs page, config
	// page, static backends).
	Snapshot func() *gateway.Snapshot
	// Stats are the latency statistics (overview).
	Stats *observe.Stats

	// Sources of the other pages; nil shows a page as not connected.
	Backends  Backends
	Consumers Consumers
	Audit     Audit
	History   ConfigHistory
	Anomalies Anomalies
	// Suggestions are the settings suggested from the upstream
	// statistics.
	Suggestions Suggestions
	// Recorder, when set, audits sign-ins and sign-outs. outcome is ""
	// for a success or OutcomeDenied for a refusal.
	Recorder interface {
		Append(actor, action, target, outcome, detail string)
	}

	// OIDC enables sign-in with an identity provider.
	OIDC *OIDCOptions
	// InsecureLocal lets anyone on a loopback address in as an admin,
	// without signing in. Validation allows it only on a loopback admin
	// listener; the dashboard also refuses non-loopback peers.
	InsecureLocal bool
	// IdleTimeout and AbsoluteTimeout end sessions (defaults 30m, 12h).
	IdleTimeout, AbsoluteTimeout time.Duration
	// Sessions, when set, keeps the sessions and the sign-ins in progress
	// in a store that gateways share, so that a person's requests may
	// reach any of them. When nil, they are kept in memory, for this
	// dashboard alone.
	Sessions store.DashboardSessions
	// SessionScope, with Sessions, confines sessions and sign-ins to the
	// dashboards given the same scope: one made under another scope is
	// unknown here. The server gives a digest of the dashboard's settings,
	// so that a change of them (a role taken away, another identity
	// provider) ends every session on every gateway that applies it, as
	// rebuilding a dashboard ends the sessions it keeps in memory.
	SessionScope string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Dashboard is the /ui handler.
type Dashboard struct {
	o        Options
	logger   *slog.Logger
	now      func() time.Time
	pages    map[string]*template.Template
	sessions sessionTable
	pending  loginTable
	oidc     *oidcClient
	keySets  *identity.KeySets // made by New, when the options gave none
	// secureCookies is true unless sign-in happens over plain http on a
	// loopback host (development).
	secureCookies bool
	// origin is the origin state-changing requests must come from, when
	// known from the redirect URL.
	origin string
	mux    *http.ServeMux
}

// Cookie names on plain http (a loopback host, for development). With
// Secure cookies they carry the __Host- prefix (and the path / it needs):
// a browser then takes them only from this host, so a sibling subdomain
// cannot plant its own session or sign-in state in the dashboard.
const (
	sessionCookie = "gatehouse_session"
	loginCookie   = "gatehouse_login"
)

// cookie returns the name and path of the session cookie (login false) or
// of the sign-in state cookie (login true).
func (d *Dashboard) cookie(login bool) (name, path string) {
	switch {
	case d.secureCookies && login:
		return "__Host-" + loginCookie, "/"
	case d.secureCookies:
		return "__Host-" + sessionCookie, "/"
	case login:
		return loginCookie, "/ui/callback"
	}
	return sessionCookie, "/ui/"
}

// setCookie sets (maxAge > 0 or 0: for the browser's session) or deletes
// (maxAge < 0) one of the dashboard's cookies.
func (d *Dashboard) setCookie(w http.ResponseWriter, login bool, value string, maxAge int) {
	name, path := d.cookie(login)
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: d.secureCookies, SameSite: http.SameSiteLaxMode})
}

// New returns the dashboard, or an error when it is misconfigured.
func New(o Options) (*Dashboard, error) {
	if o.Logger == nil {
		return nil, errors.New("dashboard: a logger is required")
	}
	if o.Snapshot == nil {
		return nil, errors.New("dashboard: a snapshot source is required")
	}
	if o.OIDC == nil && !o.InsecureLocal {
		return nil, errors.New("dashboard: configure oidc or insecure_local")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.AbsoluteTimeout <= 0 {
		o.AbsoluteTimeout = 12 * time.Hour
	}
	d := &Dashboard{o: o, logger: o.Logger, now: o.Now}
	if o.Sessions != nil {
		d.sessions = &storeSessions{st: o.Sessions, scope: o.SessionScope, idle: o.IdleTimeout, absolute: o.AbsoluteTimeout, now: o.Now, logger: o.Logger}
		d.pending = &storeLogins{st: o.Sessions, scope: o.SessionScope, now: o.Now}
		// The sessions made under other settings end now, on every
		// gateway, rather than at their timeouts: hidden by the scope,
		// they would come back with those settings.
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		n, err := o.Sessions.DeleteDashboardSessionsOutside(ctx, o.SessionScope)
		cancel()
		switch {
		case err != nil:
			o.Logger.Error("dashboard: ending the sessions made under other settings failed; they stay hidden until they time out", "error", err.Error())
		case n > 0:
			o.Logger.Info("dashboard: the sessions made under other settings ended", "sessions", n)
		}
	} else {
		d.sessions = newSessions(o.IdleTimeout, o.AbsoluteTimeout, o.Now)
		d.pending = &pendingLogins{now: o.Now, m: map[string]*pendingLogin{}}
	}
	if o.OIDC != nil {
		u, err := url.Parse(o.OIDC.RedirectURL)
		if err != nil || u.Host == "" {
			return nil, errors.New("dashboard: the redirect URL is not absolute")
		}
		if o.OIDC.KeySets == nil {
			oc := *o.OIDC
			oc.KeySets = identity.NewKeySets(o.Logger, identity.Hooks{})
			o.OIDC, d.o.OIDC, d.keySets = &oc, &oc, oc.KeySets
		}
		d.secureCookies = u.Scheme == "https"
		d.origin = u.Scheme + "://" + u.Host
		d.oidc = newOIDCClient(*o.OIDC, o.Logger, o.Now)
	}
	pages, err := parsePages()
	if err != nil {
		d.Close()
		return nil, err
	}
	d.pages = pages
	d.routes()
	return d, nil
}

// Close stops what the dashboard made besides its handler: the key sets'
// refreshes and its client's idle connections to the provider. Requests
// still being served may fail a sign-in.
func (d *Dashboard) Close() {
	if d.keySets != nil {
		d.keySets.Close()
	}
	if d.oidc != nil && d.oidc.transport != nil {
		d.oidc.transport.CloseIdleConnections()
	}
}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticHandler(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/login", d.serveLogin)
	m.HandleFunc("GET /ui/login/start", d.serveLoginStart)
	m.HandleFunc("GET /ui/callback", d.serveCallback)
	m.HandleFunc("POST /ui/logout", d.change(RoleViewer, d.serveLogout))

	m.HandleFunc("GET /ui/{$}", d.page(d.serveOverview))
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	m.HandleFunc("GET /ui/data/stats", d.page(d.serveStatsJSON))
	m.HandleFunc("GET /ui/apis", d.page(d.serveAPIs))
	m.HandleFunc("GET /ui/backends", d.page(d.serveBackends))
	m.HandleFunc("GET /ui/consumers", d.page(d.serveConsumers))
	m.HandleFunc("POST /ui/consumers", d.change(RoleAdmin, d.serveCreateConsumer))
	m.HandleFunc("POST /ui/consumers/{name}/rotate", d.change(RoleAdmin, d.serveRotate))
	m.HandleFunc("POST /ui/consumers/{name}/revoke", d.change(RoleAdmin, d.serveRevoke))
	m.HandleFunc("GET /ui/audit", d.page(d.serveAudit))
	m.HandleFunc("GET /ui/anomalies", d.page(d.serveAnomalies))
	m.HandleFunc("GET /ui/suggestions", d.page(d.serveSuggestions))
	m.HandleFunc("GET /ui/config", d.page(d.serveConfig))
	m.HandleFunc("GET /ui/config/versions/{id}", d.page(d.serveConfigVersion))
	m.HandleFunc("GET /ui/config/diff", d.page(d.serveConfigDiff))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, nil, http.StatusNotFound, "There is no such page.", nil)
	})
	d.mux = m
}

// ServeHTTP serves /ui.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			d.logger.Error("dashboard: panic", "path", r.URL.Path, "panic", v)
			d.fail(w, r, nil, http.StatusInternalServerError, "Something went wrong while showing this page.", nil)
		}
	}()
	d.mux.ServeHTTP(w, r)
}

func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// pageHandler serves a page for a signed-in person.
type pageHandler func(w http.ResponseWriter, r *http.Request, s *Session)

// page requires a session (any role); without one, a page request is sent
// to sign in and comes back afterwards.
func (d *Dashboard) page(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(w, r)
		if err != nil {
			d.sessionStoreFailed(w, r, err)
			return
		}
		if s == nil {
			if strings.HasPrefix(r.URL.Path, "/ui/data/") {
				writeJSONError(w, http.StatusUnauthorized, "signed out")
				return
			}
			http.Redirect(w, r, "/ui/login?return="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	}
}

// change requires a session with at least role, a valid CSRF token and a
// same-origin request.
func (d *Dashboard) change(role Role, h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.session(w, r)
		if err != nil {
			d.sessionStoreFailed(w, r, err)
			return
		}
		if s == nil {
			d.fail(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again, then repeat the change.", nil)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			d.fail(w, r, s, http.StatusBadRequest, "The form could not be read.", err)
			return
		}
		if !d.sameOrigin(r) {
			d.fail(w, r, s, http.StatusForbidden, "The change was refused: it did not come from a dashboard page.", errors.New("cross-origin request"))
			return
		}
		if !s.CheckCSRF(r.PostForm.Get("csrf")) {
			d.fail(w, r, s, http.StatusForbidden, "The change was refused: the form has expired or did not come from this dashboard. Reload the page and try again.", errors.New("bad CSRF token"))
			return
		}
		if s.Role < role {
			d.fail(w, r, s, http.StatusForbidden, "Only dashboard admins may do this; you are signed in as a "+s.Role.String()+".", nil)
			return
		}
		h(w, r, s)
	}
}

// sameOrigin checks Origin (or, when a browser sent none, Referer and
// Sec-Fetch-Site) against the dashboard's origin.
func (d *Dashboard) sameOrigin(r *http.Request) bool {
	want := d.origin
	if want == "" {
		want = "http://" + r.Host
		if r.TLS != nil {
			want = "https://" + r.Host
		}
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == want
	}
	if sf := r.Header.Get("Sec-Fetch-Site"); sf != "" && sf != "same-origin" {
		return false
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return strings.HasPrefix(ref, want+"/")
	}
	return true // no browser signal at all: the CSRF token decides
}

// session returns the request's live session, or nil. With
// insecure_local, a loopback peer without one gets a new admin session.
// An error means the session table could not be read or written: the
// person is then neither signed in nor sent to sign in.
func (d *Dashboard) session(w http.ResponseWriter, r *http.Request) (*Session, error) {
	name, _ := d.cookie(false)
	if c, err := r.Cookie(name); err == nil {
		s, err := d.sessions.get(r.Context(), c.Value, !strings.HasPrefix(r.URL.Path, "/ui/data/"))
		if s != nil || err != nil {
			return s, err
		}
	}
	// Loopback by its peer and by the name it was asked under, so that a
	// DNS-rebound name cannot use an insecure_local dashboard.
	if d.o.InsecureLocal && config.IsLoopbackHostPort(r.RemoteAddr) && config.IsLoopbackHostPort(r.Host) {
		id, s, err := d.sessions.create(r.Context(), "local", "local developer", RoleAdmin)
		if err != nil {
			return nil, err
		}
		d.setSessionCookie(w, id)
		return s, nil
	}
	return nil, nil
}

// sessionStoreFailed answers a request whose session or sign-in could not
// be read or written (a shared store that is down): 503, neither signed
// in (fail closed) nor sent to sign in, which would fail the same way, in
// a loop. The cause goes to the log; it holds no cookie or token.
func (d *Dashboard) sessionStoreFailed(w http.ResponseWriter, r *http.Request, err error) {
	if strings.HasPrefix(r.URL.Path, "/ui/data/") {
		d.logger.Error("dashboard: request failed", "path", r.URL.Path, "status", http.StatusServiceUnavailable, "error", err.Error())
		writeJSONError(w, http.StatusServiceUnavailable, "the dashboard's session store is unavailable")
		return
	}
	d.fail(w, r, nil, http.StatusServiceUnavailable, "The dashboard's session store is unavailable, so it cannot tell who you are. Try again in a moment.", err)
}

func (d *Dashboard) setSessionCookie(w http.ResponseWriter, id string) {
	d.setCookie(w, false, id, 0)
}

// OutcomeDenied is the outcome of a refusal the dashboard records (a
// sign-in without a role), as the audit log names it.
const OutcomeDenied = "denied"

func (d *Dashboard) audit(actor, action, target, outcome, detail string) {
	if d.o.Recorder != nil {
		d.o.Recorder.Append(actor, action, target, outcome, detail)
	}
}

// fail renders the friendly error page. The cause goes to the log only.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, s *Session, status int, msg string, cause error) {
	if cause != nil {
		lvl := slog.LevelWarn
		if status >= 500 {
			lvl = slog.LevelError
		}
		d.logger.Log(r.Context(), lvl, "dashboard: request failed", "path", r.URL.Path, "status", status, "error", cause.Error())
	}
	w.Header().Set("Cache-Control", "no-store")
	d.render(w, r, s, status, "error", "Something is wrong", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}

// ctxTimeout bounds calls to sources.
func ctxTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
