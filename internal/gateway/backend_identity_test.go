package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/internal/backendtoken"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// idHarness is a gateway with backend identity on an injected clock, in
// front of a backend that verifies the gateway's tokens.
type idHarness struct {
	t       *testing.T
	clock   *fakeClock
	rt      *gateway.Runtime
	gw      *gateway.Gateway
	srv     *httptest.Server
	backend *recorder
	beSrv   *httptest.Server
	keyDir  string
	logs    *syncBuffer
	vars    map[string]any
}

const identityConfig = `
backend_identity:
  issuer: "{{.Issuer}}"
  key_dir: "{{.KeyDir}}"
  rotation: {interval: 1h, prepublish: 10m}
  clock_skew: 30s
consumers:
  - name: partner
    groups: [partners]
    scopes: [orders:read]
    keys:
      primary: {sha256: "{{.KeyHash}}"}
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
    identity:
      jwt:
        audience: https://orders.internal
        algorithm: {{.Alg}}
        ttl: 60s
        claims: [groups, scope, consumer, credential]
        anonymous_subject: {{.Anon}}
apis:
  - name: orders
    path_prefix: /orders
    backend: be
    auth: {credentials: [api_key]}
  - name: public
    path_prefix: /public
    backend: be
    auth: {anonymous: true}
`

func newIDHarness(t *testing.T, vars map[string]any) *idHarness {
	t.Helper()
	h := &idHarness{t: t, clock: &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		backend: &recorder{}, keyDir: t.TempDir(), logs: &syncBuffer{}}
	h.beSrv = httptest.NewServer(h.backend)
	t.Cleanup(h.beSrv.Close)
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.rt = &gateway.Runtime{
		Logger:          logger,
		Metrics:         observe.NewMetrics(),
		KeySets:         identity.NewKeySets(logger, identity.Hooks{}),
		Transports:      upstream.NewTransports(),
		Secrets:         secret.Local{},
		Now:             h.clock.Now,
		BackendIdentity: gateway.NewBackendIdentity(logger),
	}
	t.Cleanup(h.rt.KeySets.Close)
	t.Cleanup(h.rt.Transports.Close)
	t.Cleanup(h.rt.BackendIdentity.Close)
	h.gw = gateway.New(h.rt)
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(h.srv.Close)
	h.vars = map[string]any{"Issuer": h.srv.URL, "KeyDir": h.keyDir, "Backend": h.beSrv.URL,
		"KeyHash": identity.HashKey(testAPIKey).String(), "Alg": "ES256", "Anon": `""`}
	for k, v := range vars {
		h.vars[k] = v
	}
	if d := h.load(identityConfig); d != nil {
		t.Fatal(d)
	}
	return h
}

func (h *idHarness) load(cfg string) config.Diagnostics {
	h.t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(cfg)).Execute(&b, h.vars); err != nil {
		h.t.Fatal(err)
	}
	doc, diags := config.Parse("test.yaml", b.Bytes())
	if diags != nil {
		return diags
	}
	_, diags = h.gw.Load(context.Background(), doc)
	return diags
}

func (h *idHarness) keys() *backendtoken.Keys {
	k := h.rt.BackendIdentity.Keys(h.keyDir)
	if k == nil {
		h.t.Fatal("no keys open")
	}
	return k
}

func (h *idHarness) get(path string, hdr map[string]string) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// jwksBackend verifies tokens the way a real backend library does: it
// fetches the JWKS by URL, caches it for the response's max-age, and
// fetches again, once, when a token names a kid it does not know.
type jwksBackend struct {
	url, issuer, audience string
	now                   func() time.Time
	// alwaysFetch makes it a backend that has just started: it fetches
	// the JWKS for every token.
	alwaysFetch bool

	mu          sync.Mutex
	set         jose.JSONWebKeySet
	fetchedAt   time.Time
	maxAge      time.Duration
	fetches     int
	unknownKids int
}

type backendClaims struct {
	jwt.Claims
	ClientID   string   `json:"client_id"`
	Groups     []string `json:"groups"`
	Scope      string   `json:"scope"`
	Consumer   string   `json:"consumer"`
	Credential string   `json:"credential"`
}

func (b *jwksBackend) fetch() error {
	res, err := http.Get(b.url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("JWKS: %d", res.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		return err
	}
	b.set, b.fetchedAt, b.fetches = set, b.now(), b.fetches+1
	b.maxAge = 0
	if v, ok := strings.CutPrefix(res.Header.Get("Cache-Control"), "public, max-age="); ok {
		n, _ := strconv.Atoi(v)
		b.maxAge = time.Duration(n) * time.Second
	}
	return nil
}

func (b *jwksBackend) key(kid string) (*jose.JSONWebKey, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fetches == 0 || b.alwaysFetch || b.now().Sub(b.fetchedAt) >= b.maxAge {
		if err := b.fetch(); err != nil {
			return nil, err
		}
	}
	if ks := b.set.Key(kid); len(ks) == 1 {
		return &ks[0], nil
	}
	b.unknownKids++
	if err := b.fetch(); err != nil {
		return nil, err
	}
	if ks := b.set.Key(kid); len(ks) == 1 {
		return &ks[0], nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

func (b *jwksBackend) verify(header string) (*backendClaims, string, error) {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return nil, "", fmt.Errorf("no bearer token in %q", header)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		return nil, "", err
	}
	hd := tok.Headers[0]
	if typ, _ := hd.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		return nil, "", fmt.Errorf("typ %q", typ)
	}
	key, err := b.key(hd.KeyID)
	if err != nil {
		return nil, hd.KeyID, err
	}
	var c backendClaims
	if err := tok.Claims(key.Key, &c); err != nil {
		return nil, hd.KeyID, err
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: b.issuer, AnyAudience: jwt.Audience{b.audience}, Time: b.now()}, 0); err != nil {
		return nil, hd.KeyID, err
	}
	return &c, hd.KeyID, nil
}

// The promise: a backend that verifies the gateway's tokens with the
// published JWKS (cached as the response allows, refetched on an unknown
// kid) never sees a failure across signing key rotations, and never even
// needs the unknown-kid refetch, because every key is published for the
// prepublication period before it signs. Tokens a backend already holds
// keep verifying until they expire.
func TestBackendIdentity_BackendVerifiesAcrossKeyRotations(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			h := newIDHarness(t, map[string]any{"Alg": alg})
			be := &jwksBackend{url: h.srv.URL + "/.well-known/jwks.json", issuer: h.srv.URL,
				audience: "https://orders.internal", now: h.clock.Now}
			type held struct {
				header string
				exp    time.Time
			}
			var (
				mu       sync.Mutex
				failures []string
				kids     = map[string]bool{}
				holding  []held
			)
			h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
				c, kid, err := be.verify(r.Header.Get("Authorization"))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s: %v", h.clock.Now().Format(time.TimeOnly), err))
					w.WriteHeader(401)
					return
				}
				kids[kid] = true
				holding = append(holding, held{r.Header.Get("Authorization"), c.Expiry.Time()})
				if c.Subject != "partner" || c.ClientID != "partner" || c.Consumer != "partner" || c.Credential != "api_key" ||
					c.Scope != "orders:read" || len(c.Groups) != 1 || c.Groups[0] != "partners" || c.ID == "" {
					failures = append(failures, fmt.Sprintf("claims %+v", c))
				}
			}
			ctx := context.Background()
			// Six hours in steps shorter than a token's life: six
			// rotations at one hour each.
			for step := range 6 * 3600 / 25 {
				h.clock.Advance(25 * time.Second)
				if err := h.keys().Rotate(ctx); err != nil { // what the background loop does
					t.Fatal(err)
				}
				if n := len(h.keys().KeyIDs()); n > 3 {
					t.Fatalf("step %d: %d keys published; retired keys are not removed", step, n)
				}
				res := h.get("/orders/1", map[string]string{"X-API-Key": testAPIKey})
				if res.StatusCode != 200 {
					t.Fatalf("step %d: status %d", step, res.StatusCode)
				}
				// Tokens the backend holds verify until they expire, even
				// for a backend that fetches the JWKS just then.
				mu.Lock()
				keep := holding[:0]
				for _, tk := range holding {
					if h.clock.Now().Before(tk.exp) {
						keep = append(keep, tk)
					}
				}
				holding = keep
				toCheck := append([]held(nil), holding...)
				mu.Unlock()
				fresh := &jwksBackend{url: be.url, issuer: be.issuer, audience: be.audience, now: be.now, alwaysFetch: true}
				for _, tk := range toCheck {
					if _, _, err := fresh.verify(tk.header); err != nil {
						t.Fatalf("step %d: a held token stopped verifying before its exp: %v", step, err)
					}
				}
			}
			if len(failures) > 0 {
				t.Fatalf("%d failures, first: %s", len(failures), failures[0])
			}
			if len(kids) < 6 {
				t.Fatalf("tokens were signed by %d keys; want a rotation every hour", len(kids))
			}
			if be.unknownKids != 0 {
				t.Fatalf("the backend met %d unknown kids: a key signed before it was published", be.unknownKids)
			}
		})
	}
}

func TestBackendIdentity_TokenReplacesCallerCredentialAndIsCached(t *testing.T) {
	h := newIDHarness(t, nil)
	h.get("/orders/1", map[string]string{"X-API-Key": testAPIKey, "Authorization": "Basic Zm9vOmJhcg=="})
	first := h.backend.last().Header.Get("Authorization")
	if !strings.HasPrefix(first, "Bearer ey") {
		t.Fatalf("backend Authorization %q", first)
	}
	if h.backend.last().Header.Get("X-Api-Key") != "" {
		t.Fatal("the caller's API key reached the backend")
	}
	h.clock.Advance(30 * time.Second)
	h.get("/orders/1", map[string]string{"X-API-Key": testAPIKey})
	if got := h.backend.last().Header.Get("Authorization"); got != first {
		t.Fatal("a token with 30 of its 60s left was not reused")
	}
	h.clock.Advance(16 * time.Second) // less than a quarter left: a new one
	h.get("/orders/1", map[string]string{"X-API-Key": testAPIKey})
	if got := h.backend.last().Header.Get("Authorization"); got == first {
		t.Fatal("a token with 14s of 60s left was reused")
	}
}

// Threat: on an anonymous route, a caller sends its own Authorization
// header hoping the backend takes it for the gateway's.
func TestBackendIdentity_AnonymousRequestCarriesNoTokenAndNoForgery(t *testing.T) {
	h := newIDHarness(t, nil)
	h.get("/public/x", map[string]string{"Authorization": "Bearer forged.token.here"})
	if got := h.backend.last().Header.Get("Authorization"); got != "" {
		t.Fatalf("anonymous request reached the backend with Authorization %q", got)
	}
	h.get("/public/x", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="})
	if got := h.backend.last().Header.Get("Authorization"); got != "" {
		t.Fatalf("anonymous request reached the backend with Authorization %q", got)
	}

	h2 := newIDHarness(t, map[string]any{"Anon": "anonymous"})
	be := &jwksBackend{url: h2.srv.URL + "/.well-known/jwks.json", issuer: h2.srv.URL, audience: "https://orders.internal", now: h2.clock.Now}
	h2.get("/public/x", map[string]string{"Authorization": "Bearer forged.token.here"})
	c, _, err := be.verify(h2.backend.last().Header.Get("Authorization"))
	if err != nil || c.Subject != "anonymous" || c.Credential != "none" || c.ClientID != "gatehouse" || len(c.Groups) != 0 {
		t.Fatalf("anonymous token: %+v, %v", c, err)
	}
}

func TestBackendIdentity_JWKSAndDiscoveryServedBeforeRouting(t *testing.T) {
	h := newIDHarness(t, nil)
	res, err := h.srv.Client().Get(h.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != backendtoken.JWKSContentType ||
		!strings.HasPrefix(res.Header.Get("Cache-Control"), "public, max-age=") || res.Header.Get("Etag") == "" {
		t.Fatalf("JWKS: %d %v", res.StatusCode, res.Header)
	}
	if strings.Contains(string(body), `"d"`) {
		t.Fatal("the JWKS publishes a private key")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].Algorithm != "ES256" {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	if r := h.get("/.well-known/jwks.json", map[string]string{"If-None-Match": res.Header.Get("Etag")}); r.StatusCode != 304 {
		t.Fatalf("conditional JWKS: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/.well-known/jwks.json", nil)
	if r, _ := h.srv.Client().Do(req); r.StatusCode != 405 {
		t.Fatalf("POST JWKS: %d", r.StatusCode)
	}
	res, err = h.srv.Client().Get(h.srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	json.NewDecoder(res.Body).Decode(&meta)
	res.Body.Close()
	if meta["issuer"] != h.srv.URL || meta["jwks_uri"] != h.srv.URL+"/.well-known/jwks.json" {
		t.Fatalf("discovery %v", meta)
	}
	if h.backend.count() != 0 {
		t.Fatal("a well-known request reached the backend")
	}
}

// A reload must not make new keys, and a restart reads them from disk.
func TestBackendIdentity_KeysSurviveReloadAndRestart(t *testing.T) {
	h := newIDHarness(t, nil)
	before := h.keys().KeyIDs()
	h.vars["Anon"] = "someone" // a changed config
	if d := h.load(identityConfig); d != nil {
		t.Fatal(d)
	}
	if after := h.keys().KeyIDs(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("reload changed keys: %v → %v", before, after)
	}
	// A new process on the same directory.
	k, err := backendtoken.OpenKeys(backendtoken.KeysOptions{Dir: h.keyDir, Interval: time.Hour, Prepublish: 10 * time.Minute, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if err := k.Use(context.Background(), "ES256"); err != nil {
		t.Fatal(err)
	}
	if got := k.KeyIDs(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("restart: keys %v, want %v", got, before)
	}
}

// The signing keys are state outside the configuration: a reload that
// points key_dir elsewhere keeps the keys in service (and says which
// directory it asked for), so backends holding the JWKS keep verifying;
// a restart applies it. (The reload switched to new keys at once.)
func TestBackendIdentity_KeyDirChangeWaitsForARestart(t *testing.T) {
	h := newIDHarness(t, nil)
	before := h.keys().KeyIDs()
	other := t.TempDir()
	h.vars["KeyDir"] = other
	if d := h.load(identityConfig); d != nil {
		t.Fatal(d)
	}
	if got := h.gw.Snapshot().BackendKeyDirPending(); got != other {
		t.Fatalf("BackendKeyDirPending() = %q, want %q", got, other)
	}
	if after := h.keys().KeyIDs(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a reload changed the signing keys: %v → %v", before, after)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Fatalf("keys were made in the new directory before a restart: %v", entries)
	}
	// Back to the directory in service: nothing pending.
	h.vars["KeyDir"] = h.keyDir
	if d := h.load(identityConfig); d != nil {
		t.Fatal(d)
	}
	if got := h.gw.Snapshot().BackendKeyDirPending(); got != "" {
		t.Fatalf("BackendKeyDirPending() = %q, want none", got)
	}
}

// A reload refused after its compile made a signing key for a new
// algorithm does not leave that key published: it leaves the JWKS and
// the disk once the clock skew has passed, and the key in service signs
// on.
func TestBackendIdentity_RefusedReloadsKeyLeaves(t *testing.T) {
	h := newIDHarness(t, nil)
	before := h.keys().KeyIDs()
	h.vars["Alg"] = "EdDSA"
	refused := strings.Replace(identityConfig, "    auth: {anonymous: true}\n",
		"    auth: {anonymous: true}\n    openapi: {spec: testdata/missing-openapi.yaml}\n", 1)
	if d := h.load(refused); d == nil || !strings.Contains(d.Error(), "missing-openapi.yaml") {
		t.Fatalf("reload with a missing OpenAPI document: %v", d)
	}
	if n := len(h.keys().KeyIDs()); n != 2 {
		t.Fatalf("keys after the refused reload: %d, want the new EdDSA key still published for the skew", n)
	}
	h.clock.Advance(31 * time.Second)
	if err := h.keys().Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := h.keys().KeyIDs(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("keys %v, want those in service, %v", after, before)
	}
	if entries, _ := os.ReadDir(h.keyDir); len(entries) != len(before) {
		t.Fatalf("key files %v, want %d", entries, len(before))
	}
}
