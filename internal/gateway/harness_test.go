package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// harness is a gateway served by httptest, with an in-process OIDC issuer
// and a recording backend, all on loopback.
type harness struct {
	t       *testing.T
	issuer  *devissuer.Issuer
	issSrv  *httptest.Server
	backend *recorder
	beSrv   *httptest.Server
	gw      *gateway.Gateway
	srv     *httptest.Server
	rt      *gateway.Runtime
	logs    *syncBuffer
	vars    map[string]any
}

// recorder is a backend that records what it receives.
type recorder struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	handler  http.HandlerFunc // optional override
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, r.Clone(context.Background()))
	rec.bodies = append(rec.bodies, body)
	h := rec.handler
	rec.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "backend saw "+r.URL.EscapedPath())
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.requests)
}

func (rec *recorder) last() *http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.requests) == 0 {
		return nil
	}
	return rec.requests[len(rec.requests)-1]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitAccess returns the log once it holds at least n access lines,
// waiting up to 5 s (then the test fails). A complete response is sent
// before its access line is written, so a client can have it first.
func (h *harness) waitAccess(n int) string {
	h.t.Helper()
	var logs string
	waitFor(h.t, 5*time.Second, fmt.Sprintf("%d access lines", n), func() bool {
		logs = h.logs.String()
		return strings.Count(logs, `"msg":"access"`) >= n
	})
	return logs
}

// baseConfig is the configuration most tests use; {{.Issuer}} and
// {{.Backend}} are filled in.
const baseConfig = `
server:
  trusted_proxies: {{.Trusted}}
identity_providers:
  - name: idp
    issuer: "{{.Issuer}}"
    audiences: [gatehouse]
    jwks: {cooldown: 1s}
consumers:
  - name: partner
    groups: [partners]
    scopes: [orders:read]
    keys:
      primary: {sha256: "{{.KeyHash}}"}
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
    timeouts: {response_header: 1s}
apis:
  - name: orders
    path_prefix: /orders
    backend: be
    max_body: 1KiB
    auth:
      credentials: [jwt, api_key]
      require:
        scopes: {all_of: [orders:read]}
    operations:
      - {name: get, method: GET, path: "/{id}"}
      - {name: list, method: GET, path: /}
      - {name: create, method: POST, path: /}
      - name: delete
        method: DELETE
        path: "/{id}"
        auth:
          credentials: [jwt]
          require:
            groups: {any_of: [admins]}
  - name: passthrough
    path_prefix: /pass
    backend: be
    pass_credential: true
    auth: {credentials: [jwt]}
  - name: public
    path_prefix: /public
    backend: be
    auth: {anonymous: true}
`

const testAPIKey = "ghk_test-key-for-the-partner-consumer-0123456789"

func newHarness(t *testing.T, cfg string, vars map[string]any) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, vars, nil)
}

// newHarnessWith is newHarness with a chance to set up the runtime
// before the first configuration is loaded.
func newHarnessWith(t *testing.T, cfg string, vars map[string]any, setup func(*gateway.Runtime)) *harness {
	t.Helper()
	h := &harness{t: t, backend: &recorder{}, logs: &syncBuffer{}}
	iss, err := devissuer.New(devissuer.Options{Audience: "gatehouse"})
	if err != nil {
		t.Fatal(err)
	}
	h.issuer = iss
	h.issSrv = httptest.NewServer(iss.Handler())
	t.Cleanup(h.issSrv.Close)
	iss.SetURL(h.issSrv.URL)
	h.beSrv = httptest.NewServer(h.backend)
	t.Cleanup(h.beSrv.Close)

	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	metrics := observe.NewMetrics()
	h.rt = &gateway.Runtime{
		Logger:    logger,
		AccessLog: observe.NewAccessLog(logger),
		Metrics:   metrics,
		KeySets: identity.NewKeySets(logger, identity.Hooks{OnFetch: func(p, o string) {
			metrics.JWKSFetches.WithLabelValues(p, o).Inc()
		}}),
		Transports: upstream.NewTransports(),
		Upstreams:  gateway.NewUpstreams(logger, metrics),
		Secrets:    secret.Local{},
	}
	t.Cleanup(h.rt.KeySets.Close)
	t.Cleanup(h.rt.Upstreams.Close)
	t.Cleanup(h.rt.Transports.Close)
	if setup != nil {
		setup(h.rt)
	}
	h.gw = gateway.New(h.rt)
	h.vars = map[string]any{
		"Issuer":  h.issSrv.URL,
		"Backend": h.beSrv.URL,
		"KeyHash": identity.HashKey(testAPIKey).String(),
		"Trusted": "[]",
	}
	for k, v := range vars {
		h.vars[k] = v
	}
	if diags := h.load(cfg); diags != nil {
		t.Fatalf("config: %v", diags)
	}
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(h.srv.Close)
	return h
}

// load compiles cfg (a template) and swaps it in.
func (h *harness) load(cfg string) config.Diagnostics {
	h.t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(cfg)).Execute(&b, h.vars); err != nil {
		h.t.Fatal(err)
	}
	doc, diags := config.Parse("test.yaml", b.Bytes())
	if diags != nil {
		return diags
	}
	snap, diags := h.gw.Load(context.Background(), doc)
	if diags != nil {
		return diags
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ks := range snap.KeySets() {
		if err := ks.Refresh(ctx); err != nil {
			h.t.Fatalf("fetching keys: %v", err)
		}
	}
	return nil
}

// token mints a valid access token with the given extra claims.
func (h *harness) token(claims map[string]any) string {
	h.t.Helper()
	c := map[string]any{"sub": "alice", "aud": "gatehouse", "scope": "orders:read", "groups": []string{"staff"}}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	tok, err := h.issuer.Mint(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// do sends a request through the gateway.
func (h *harness) do(method, path string, hdr map[string]string, body io.Reader) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { res.Body.Close() })
	return res
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

func tlsConfig(l *testpki.Leaf) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{l.TLS}}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// serveWithH1 makes h's test server serve the gateway with h1.Server,
// as cmd/gatehouse does, instead of net/http's: h.srv keeps its URL,
// client and Close (it listens on a listener that accepts nothing and
// reports the address h1 serves on). Tests of what the two servers do
// differently (the forwarded fields as h1.Fields, the response header
// handed over with SetHeader) run under both.
func serveWithH1(h *harness) { serveWithH1Handler(h, h.gw) }

// serveWithH1HeaderMap is serveWithH1 with the server's writer hiding
// SetRawHead: responses forwarded from the h1 transport go through the
// header map (SetHeader), as those of a TLS backend do.
func serveWithH1HeaderMap(h *harness) {
	serveWithH1Handler(h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.gw.ServeHTTP(headerMapOnly{w.(mapSetter)}, r)
	}))
}

// headerMapOnly is a writer that takes a header map but not a RawHead.
type headerMapOnly struct{ mapSetter }

type mapSetter interface {
	http.ResponseWriter
	SetHeader(http.Header) bool
}

func (w headerMapOnly) Unwrap() http.ResponseWriter { return w.mapSetter }

func serveWithH1Handler(h *harness, handler http.Handler) {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	srv := &h1.Server{Handler: handler, ReuseRequests: true} // as internal/server runs it
	go srv.Serve(ln)
	h.t.Cleanup(func() { srv.Close() })
	h.srv.Close()
	h.srv = httptest.NewUnstartedServer(h.gw)
	h.srv.Listener = &idleListener{addr: ln.Addr(), closed: make(chan struct{})}
	h.srv.Start()
	h.t.Cleanup(h.srv.Close)
}

// idleListener accepts no connection; it only has an address.
type idleListener struct {
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

func (l *idleListener) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *idleListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *idleListener) Addr() net.Addr { return l.addr }

// servers runs f under net/http's server and under h1's, whose writer
// takes the backend's fields as lines (RawHead) or, when it hides that,
// as a header map.
func servers(t *testing.T, f func(t *testing.T, serve func(*harness))) {
	t.Run("net-http", func(t *testing.T) { f(t, func(*harness) {}) })
	t.Run("h1", func(t *testing.T) { f(t, serveWithH1) })
	t.Run("h1-header-map", func(t *testing.T) { f(t, serveWithH1HeaderMap) })
}
