package dashboard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

const testConfig = `consumers:
  - name: partner
    keys: {primary: {sha256: "0000000000000000000000000000000000000000000000000000000000000001"}}
backends:
  - name: orders-svc
    instances: [{url: "http://127.0.0.1:1"}]
apis:
  - name: orders
    path_prefix: /orders
    backend: orders-svc
    auth:
      credentials: [api_key]
      require:
        scopes: {all_of: ["orders:read"]}
    operations:
      - {name: getOrder, method: GET, path: "/{id}"}
      - name: deleteOrder
        method: DELETE
        path: "/{id}"
        auth:
          credentials: [api_key]
          require:
            groups: {any_of: [admins]}
`

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testEnv is a dashboard served by httptest with a development issuer for
// sign-in, fake sources and a compiled snapshot.
type testEnv struct {
	t    *testing.T
	dash *Dashboard
	// srv sends each request to the dashboard in serving: dash, unless a
	// test switches it, as a load balancer in front of gateways would.
	srv       *httptest.Server
	serving   atomic.Pointer[Dashboard]
	issuer    *devissuer.Issuer
	audit     *MemoryAudit
	consumers *MemoryConsumers
	history   *MemoryHistory
	stats     *observe.Stats
	snap      *gateway.Snapshot
	clk       *clock
	logs      *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func compileSnapshot(t testing.TB, stats *observe.Stats, text string) *gateway.Snapshot {
	t.Helper()
	rt := &gateway.Runtime{Logger: slog.New(slog.DiscardHandler), Transports: upstream.NewTransports(), Secrets: secret.Local{}, Stats: stats}
	t.Cleanup(rt.Transports.Close)
	doc, diags := config.Parse("gatehouse.yaml", []byte(text))
	if diags != nil {
		t.Fatal(diags)
	}
	snap, diags := gateway.New(rt).Load(context.Background(), doc)
	if diags != nil {
		t.Fatal(diags)
	}
	return snap
}

func newTestEnv(t *testing.T, mutate func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clk: &clock{}, logs: &syncBuf{}}
	e.clk.ns.Store(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	iss, err := devissuer.New(devissuer.Options{
		Now:     e.clk.Now,
		Clients: []devissuer.Client{{ID: "dash"}, {ID: "dash-confidential", Secret: "dash-secret-1"}},
		Users: []devissuer.User{
			{Subject: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins"}},
			{Subject: "bob", Name: "Bob Viewer", Email: "bob@example.com", Groups: []string{"staff"}},
			{Subject: "carol", Name: "Carol Nobody", Groups: []string{"guests"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	issSrv := httptest.NewServer(iss.Handler())
	t.Cleanup(issSrv.Close)
	iss.SetURL(issSrv.URL)
	e.issuer = iss

	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.serving.Load().ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)

	e.audit = NewMemoryAudit(e.clk.Now, 0)
	e.consumers = NewMemoryConsumers(e.clk.Now, e.audit)
	if _, err := e.consumers.Create(context.Background(), "setup", NewConsumer{Name: "mobile-app", Groups: []string{"partners"}}); err != nil {
		t.Fatal(err)
	}
	e.history = NewMemoryHistory(0)
	e.history.Record("v1", "a: 1\nb: 2\n", "file", e.clk.Now())
	e.history.Record("v2", "a: 1\nb: 3\n", "file", e.clk.Now())
	e.stats = observe.NewStats(nil)
	e.snap = compileSnapshot(t, e.stats, testConfig)
	keySets := identity.NewKeySets(slog.New(slog.DiscardHandler), identity.Hooks{})
	t.Cleanup(keySets.Close)
	o := Options{
		Logger:    slog.New(slog.NewTextHandler(e.logs, nil)),
		Snapshot:  func() *gateway.Snapshot { return e.snap },
		Stats:     e.stats,
		Backends:  SnapshotBackends{Snapshot: func() *gateway.Snapshot { return e.snap }},
		Consumers: e.consumers,
		Audit:     e.audit,
		History:   e.history,
		Recorder:  e.audit,
		OIDC: &OIDCOptions{
			Issuer: issSrv.URL, ClientID: "dash", RedirectURL: e.srv.URL + "/ui/callback",
			Scopes: []string{"openid", "profile", "email"}, RoleClaim: "groups",
			AdminValues: []string{"admins"}, ViewerValues: []string{"staff"}, KeySets: keySets,
		},
		Now: e.clk.Now,
	}
	if mutate != nil {
		mutate(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.dash = d
	e.serving.Store(d)
	return e
}

// browser is a client with a cookie jar that does not follow redirects.
type browser struct {
	t   *testing.T
	c   *http.Client
	env *testEnv
}

func (e *testEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, env: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (b *browser) do(method, u string, form url.Values, hdr map[string]string) page {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.env.srv.URL + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, location: res.Header.Get("Location"), body: string(raw), header: res.Header}
}

func (b *browser) get(u string) page { return b.do("GET", u, nil, nil) }

// signIn runs the authorization code flow as the demo user sub and
// returns the page it lands on.
func (b *browser) signIn(sub string) page {
	b.t.Helper()
	cb, _ := b.startSignIn(sub)
	return b.get(cb)
}

// startSignIn starts a sign-in as sub and takes it through the provider:
// it returns the callback URL the provider sends the browser to, and the
// state, without following it.
func (b *browser) startSignIn(sub string) (callback, state string) {
	b.t.Helper()
	p := b.get("/ui/login/start?return=/ui/apis")
	if p.status != http.StatusFound {
		b.t.Fatalf("login start: %d %s", p.status, p.body)
	}
	auth, _ := url.Parse(p.location)
	q := auth.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || q.Get("state") == "" {
		b.t.Fatalf("authorization request lacks PKCE, nonce or state: %s", p.location)
	}
	q.Set("login_hint", sub)
	auth.RawQuery = q.Encode()
	p = b.get(auth.String())
	if p.status != http.StatusFound {
		b.t.Fatalf("authorize: %d %s", p.status, p.body)
	}
	return p.location, q.Get("state")
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("page has no CSRF token")
	}
	return m[1]
}

type failingConsumers struct{ Consumers }

func (failingConsumers) List(context.Context) ([]Consumer, error) {
	return nil, errors.New("store at postgres://admin:hunter2@db failed")
}
