package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// postgresSchema returns the test server's URL and a new schema on it,
// dropped when the test ends; it skips the test without a server.
func postgresSchema(t *testing.T) (pgURL, schema string) {
	t.Helper()
	pgURL = os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("GATEHOUSE_TEST_POSTGRES_URL is not set: the tests of several gateways on one PostgreSQL store need a server (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema = "gh_cluster_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return pgURL, schema
}

// eventually polls cond every 20 ms until it holds or within runs out.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(t *testing.T, url string, hdr ...string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// Two gateways with one PostgreSQL store and one Redis serve as one: an
// instance registered through one is routed to by the other, a key
// created through one works on the other and a key revoked through one
// stops working on the other, a quota counts the requests of both, a rate
// limit's bucket is shared exactly, and their audit records form one
// intact chain.
func TestCluster_TwoGatewaysShareOnePostgreSQLStore(t *testing.T) {
	pgURL, schema := postgresSchema(t)
	redisURL := os.Getenv("GATEHOUSE_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the test of several gateways shares its rate limits through Redis (e.g. redis://127.0.0.1:6379/0)")
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	bu, _ := url.Parse(backend.URL)
	port, _ := strconv.Atoi(bu.Port())

	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	cfg := fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin:
    address: "127.0.0.1:0"
    auth:
      api_keys:
        - {name: ops, sha256: %q, role: admin}
        - {name: orders-deployer, sha256: %q, role: registrar, services: [orders]}
  timeouts: {shutdown: 5s}
storage:
  postgres: {url: %q, schema: %s, sync_interval: 100ms}
  redis: {url: %q}
registry:
  allow_loopback: true
  default_ttl: 1m
backends:
  - name: static
    instances: [{url: %q}]
  - name: orders
    registry: {service: orders}
apis:
  - name: orders
    path_prefix: /orders
    backend: orders
    auth: {anonymous: true}
  - name: keyed
    path_prefix: /keyed
    backend: static
    auth: {credentials: [api_key]}
  - name: metered
    path_prefix: /metered
    backend: static
    auth: {anonymous: true}
    quotas:
      - {name: daily, limit: 20, period: day, key: [ip]}
  - name: limited
    path_prefix: /limited
    backend: static
    auth: {anonymous: true}
    rate_limits:
      - {name: %s, rate: 5, period: 1m, key: [ip]}
`, identity.HashKey(adminKey), identity.HashKey(registrarKey), pgURL, schema, redisURL, backend.URL, schema)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startIn(t, file, t.TempDir())
	b := startIn(t, file, t.TempDir())

	// An instance registered through a is routed to by b.
	if s := status(t, b.url+"/orders/x"); s == 200 {
		t.Fatalf("b routes /orders before any registration: %d", s)
	}
	code, body, _ := call(t, "POST", a.admin+"/v1/services/orders/instances", registrarKey, map[string]any{"address": "127.0.0.1", "port": port})
	if code != 200 {
		t.Fatalf("register through a: %d %v", code, body)
	}
	id := body["id"].(string)
	t0 := time.Now()
	eventually(t, 5*time.Second, "b routes to the instance registered through a", func() bool { return status(t, b.url+"/orders/x") == 200 })
	t.Logf("b routed to the instance registered through a after %v (sync_interval 100ms)", time.Since(t0).Round(time.Millisecond))

	// A consumer and key created through b work on a; revoked through a,
	// the key stops working on b.
	code, body, _ = call(t, "POST", b.admin+"/v1/consumers", adminKey, map[string]any{"name": "acme", "keys": []string{"primary"}})
	if code != 201 {
		t.Fatalf("create consumer through b: %d %v", code, body)
	}
	key := body["keys"].(map[string]any)["primary"].(string)
	t0 = time.Now()
	eventually(t, 5*time.Second, "a accepts the key created through b", func() bool { return status(t, a.url+"/keyed/x", "X-API-Key", key) == 200 })
	t.Logf("a accepted the key created through b after %v", time.Since(t0).Round(time.Millisecond))
	if code, body, _ := call(t, "DELETE", a.admin+"/v1/consumers/acme/keys/primary", adminKey, nil); code != 204 && code != 200 {
		t.Fatalf("revoke through a: %d %v", code, body)
	}
	t0 = time.Now()
	eventually(t, 5*time.Second, "b refuses the key revoked through a", func() bool { return status(t, b.url+"/keyed/x", "X-API-Key", key) == 401 })
	t.Logf("b refused the key revoked through a after %v", time.Since(t0).Round(time.Millisecond))

	// The quota counts both gateways' requests: 10 through each use it up
	// (each alone would allow 20).
	for i := range 10 {
		if s := status(t, a.url+"/metered/x"); s != 200 {
			t.Fatalf("request %d through a: %d", i, s)
		}
		if s := status(t, b.url+"/metered/x"); s != 200 {
			t.Fatalf("request %d through b: %d", i, s)
		}
	}
	// Each gateway adds its count every 100 ms and takes the total back;
	// a gateway that has not taken back the other's last count may admit
	// what it sees left until its next addition. Both must refuse within
	// a few intervals, having let through little more than the limit.
	extra := 0
	for _, g := range []*started{a, b} {
		eventually(t, 5*time.Second, "the gateway refuses once the shared quota is used up", func() bool {
			s := status(t, g.url+"/metered/x")
			if s == 200 {
				extra++
			}
			time.Sleep(50 * time.Millisecond)
			return s == 429
		})
	}
	t.Logf("requests admitted past the shared quota of 20 once both gateways had counted 10: %d", extra)
	if extra > 6 {
		t.Fatalf("%d requests past the limit of 20 were admitted after both gateways had counted 10, want a few at most (one sync interval's)", extra)
	}

	// The rate limit's bucket is in Redis: 3 requests through a and 2
	// through b use up the 5, exactly, and then both refuse. (The limit is
	// named after the schema so that reruns start from a full bucket.)
	for i, g := range []*started{a, a, a, b, b} {
		if s := status(t, g.url+"/limited/x"); s != 200 {
			t.Fatalf("rate-limited request %d: %d", i+1, s)
		}
	}
	for _, g := range []*started{a, b} {
		if s := status(t, g.url+"/limited/x"); s != 429 {
			t.Fatalf("a sixth request within the minute: %d, want 429 from either gateway", s)
		}
	}

	// Deregistered through b, the instance leaves a's pool.
	if code, body, _ := call(t, "DELETE", b.admin+"/v1/services/orders/instances/"+id, registrarKey, nil); code != 200 && code != 204 {
		t.Fatalf("deregister through b: %d %v", code, body)
	}
	eventually(t, 5*time.Second, "a stops routing to the instance deregistered through b", func() bool { return status(t, a.url+"/orders/x") != 200 })

	// One audit chain, intact, with records made through both.
	code, body, _ = call(t, "GET", b.admin+"/v1/audit/verify", adminKey, nil)
	if code != 200 || body["ok"] != true {
		t.Fatalf("audit verify through b: %d %v", code, body)
	}
	seen := map[string]bool{}
	for _, r := range auditRecords(t, a) {
		seen[r["action"].(string)] = true
	}
	for _, want := range []string{"instance.register", "consumer.create", "instance.deregister"} {
		if !seen[want] {
			t.Errorf("the audit log read through a lacks %s (has %v)", want, seen)
		}
	}
}

// Two gateways on one PostgreSQL store each sign backend tokens with keys
// of their own, and each serves both gateways' public keys: a backend that
// fetched the JWKS through a load balancer from either gateway verifies a
// token minted by the other.
func TestCluster_BackendTokensVerifyWithEitherGatewaysJWKS(t *testing.T) {
	pgURL, schema := postgresSchema(t)
	tokens := make(chan string, 16)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case tokens <- strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "):
		default:
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	cfg := fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
  timeouts: {shutdown: 5s}
storage:
  postgres: {url: %q, schema: %s, sync_interval: 100ms}
backend_identity:
  issuer: https://gateway.example
backends:
  - name: signed
    instances: [{url: %q}]
    identity:
      jwt: {audience: https://orders.internal, algorithm: ES256, ttl: 60s, anonymous_subject: anonymous}
apis:
  - name: signed
    path_prefix: /signed
    backend: signed
    auth: {anonymous: true}
`, pgURL, schema, backend.URL)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startIn(t, file, t.TempDir())
	b := startIn(t, file, t.TempDir())

	tokenVia := func(g *started) string {
		t.Helper()
		if s := status(t, g.url+"/signed/x"); s != 200 {
			t.Fatalf("GET /signed/x: %d", s)
		}
		return <-tokens
	}
	jwks := func(g *started) jose.JSONWebKeySet {
		t.Helper()
		res, err := http.Get(g.url + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var set jose.JSONWebKeySet
		if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
			t.Fatal(err)
		}
		return set
	}
	verifies := func(token string, set jose.JSONWebKeySet) bool {
		jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("the backend got %q: %v", token, err)
		}
		keys := set.Key(jws.Signatures[0].Header.KeyID)
		if len(keys) != 1 {
			return false
		}
		_, err = jws.Verify(keys[0])
		return err == nil
	}
	fromA, fromB := tokenVia(a), tokenVia(b)
	for _, c := range []struct {
		name  string
		token string
		via   *started
	}{{"minted by a, JWKS from b", fromA, b}, {"minted by b, JWKS from a", fromB, a}} {
		t0 := time.Now()
		eventually(t, 5*time.Second, c.name, func() bool { return verifies(c.token, jwks(c.via)) })
		t.Logf("%s: verified after %v (sync_interval 100ms)", c.name, time.Since(t0).Round(time.Millisecond))
	}
	if ka, kb := len(jwks(a).Keys), len(jwks(b).Keys); ka != 2 || kb != 2 {
		t.Fatalf("the JWKS hold %d and %d keys, want 2 each (one per gateway)", ka, kb)
	}
}

// Two gateways on one PostgreSQL store share the dashboard's sessions: a
// person signed in through one is signed in on the other, and a change of
// the dashboard's settings (a role taken away) ends the session on every
// gateway that applies it.
func TestCluster_DashboardSessionsAreShared(t *testing.T) {
	pgURL, schema := postgresSchema(t)
	issSrv := devProvider(t, false, nil)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer be.Close()
	dir := t.TempDir()
	caFile := testpki.NewCA(t, "provider CA").WriteFile(t, dir, "provider-ca.pem")
	file := filepath.Join(dir, "gatehouse.yaml")
	extra := func(admin, viewer string) string {
		return fmt.Sprintf("storage:\n  postgres: {url: %q, schema: %s, sync_interval: 100ms}\n", pgURL, schema) +
			dashboardOIDC(issSrv.URL, caFile, admin, viewer)
	}
	writeConfig(t, file, be.URL, extra("ops", ""))
	a := serve(t, file, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	b := serve(t, file, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))

	br := newDashboardBrowser(t, a.admin)
	br.signIn("alice")
	if r := br.role(); r != "admin" {
		t.Fatalf("signed in through a, a shows %q", r)
	}
	br.admin = b.admin // the same cookie (one host), another gateway
	if r := br.role(); r != "admin" {
		t.Fatalf("signed in through a, b shows %q, want admin", r)
	}
	// The role is taken away in the settings both gateways reload.
	writeConfig(t, file, be.URL, extra("", "ops"))
	for _, g := range []*started{a, b} {
		if err := g.srv.Reload(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
	}
	for name, g := range map[string]*started{"a": a, "b": b} {
		br.admin = g.admin
		if r := br.role(); r != "" {
			t.Fatalf("after the settings changed, %s shows %q: the old session must end", name, r)
		}
	}
	br.admin = b.admin
	br.signIn("alice")
	br.admin = a.admin
	if r := br.role(); r != "viewer" {
		t.Fatalf("signed in again through b, a shows %q, want viewer", r)
	}
}
