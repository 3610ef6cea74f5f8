package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Admin API keys of the tests, one per role.
var (
	adminKey     = mustKey()
	registrarKey = mustKey() // registrar for orders only
	viewerKey    = mustKey()
)

func mustKey() string {
	k, err := identity.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
}

// adminConfig is a gateway with the admin API keys above, a backend that
// takes registered instances of "orders", and an API on it.
func adminConfig(backend string) string {
	return fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin:
    address: "127.0.0.1:0"
    auth:
      api_keys:
        - {name: ops, sha256: %q, role: admin}
        - {name: orders-deployer, sha256: %q, role: registrar, services: [orders]}
        - {name: auditor, sha256: %q, role: viewer}
  timeouts: {shutdown: 5s}
registry:
  allow_loopback: true
  default_ttl: 1s
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
`, identity.HashKey(adminKey), identity.HashKey(registrarKey), identity.HashKey(viewerKey), backend)
}

func startAdmin(t *testing.T, backend string) *started {
	t.Helper()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(file, []byte(adminConfig(backend)), 0o644); err != nil {
		t.Fatal(err)
	}
	return start(t, file)
}

// call sends an admin API request and decodes the JSON reply into a map.
func call(t *testing.T, method, url, key string, body any, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, m, res.Header
}

func auditRecords(t *testing.T, s *started) []map[string]any {
	t.Helper()
	_, m, _ := call(t, "GET", s.admin+"/v1/audit?limit=1000", adminKey, nil)
	var out []map[string]any
	for _, r := range m["records"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func TestAdmin_RegistrarScopedToOrdersCannotRegisterIntoPayments(t *testing.T) {
	s := startAdmin(t, "http://127.0.0.1:1")
	code, body, _ := call(t, "POST", s.admin+"/v1/services/payments/instances", registrarKey, map[string]any{"address": "10.0.0.9", "port": 8080})
	if code != http.StatusForbidden {
		t.Fatalf("status %d %v, want 403", code, body)
	}
	if !strings.Contains(fmt.Sprint(body["detail"]), `"payments"`) {
		t.Fatalf("detail %q does not name the service", body["detail"])
	}
	if n := len(s.srv.Registry().Current("payments").Instances); n != 0 {
		t.Fatalf("%d instances registered into payments", n)
	}
	recs := auditRecords(t, s)
	last := recs[len(recs)-1]
	if last["action"] != "admin.denied" || last["outcome"] != "denied" || last["actor"] != "key:orders-deployer" ||
		!strings.Contains(last["target"].(string), "/v1/services/payments/instances") {
		t.Fatalf("audit record = %v", last)
	}
	// The same registrar may register into orders.
	if code, body, _ := call(t, "POST", s.admin+"/v1/services/orders/instances", registrarKey, map[string]any{"address": "10.0.0.9", "port": 8080}); code != 200 {
		t.Fatalf("orders: %d %v", code, body)
	}
}

// Every role against every route: allowed routes answer with anything but
// 401/403; denied ones with 403 (or 401 without credentials).
func TestAdmin_AuthorizationTable(t *testing.T) {
	s := startAdmin(t, "http://127.0.0.1:1")
	type req struct {
		method, path string
		body         any
	}
	reg := map[string]any{"address": "10.0.0.1", "port": 80}
	routes := map[string]req{
		"openapi":          {"GET", "/v1/openapi.json", nil},
		"whoami":           {"GET", "/v1/whoami", nil},
		"services":         {"GET", "/v1/services", nil},
		"instances":        {"GET", "/v1/services/orders/instances", nil},
		"register orders":  {"POST", "/v1/services/orders/instances", reg},
		"register other":   {"POST", "/v1/services/payments/instances", reg},
		"heartbeat orders": {"PUT", "/v1/services/orders/instances/10.0.0.1:80/heartbeat", nil},
		"heartbeat other":  {"PUT", "/v1/services/payments/instances/10.0.0.1:80/heartbeat", nil},
		"deregister other": {"DELETE", "/v1/services/payments/instances/10.0.0.1:80", nil},
		"consumers":        {"GET", "/v1/consumers", nil},
		"create consumer":  {"POST", "/v1/consumers", map[string]any{"name": "c-ROLE"}},
		"get consumer":     {"GET", "/v1/consumers/nobody", nil},
		"rotate key":       {"POST", "/v1/consumers/nobody/keys/primary", nil},
		"revoke key":       {"DELETE", "/v1/consumers/nobody/keys/primary", nil},
		"delete consumer":  {"DELETE", "/v1/consumers/nobody", nil},
		"audit":            {"GET", "/v1/audit", nil},
		"audit verify":     {"GET", "/v1/audit/verify", nil},
		"config":           {"GET", "/v1/config", nil},
		"revisions":        {"GET", "/v1/config/revisions", nil},
		"reload":           {"POST", "/v1/config/reload", nil},
	}
	const Y, N, U = "allowed", "denied", "unauthenticated"
	table := map[string]map[string]string{
		//                  admin  registrar viewer none bad key
		"openapi":          {"admin": Y, "registrar": Y, "viewer": Y, "none": U, "bad": U},
		"whoami":           {"admin": Y, "registrar": Y, "viewer": Y, "none": U, "bad": U},
		"services":         {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"instances":        {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"register orders":  {"admin": Y, "registrar": Y, "viewer": N, "none": U, "bad": U},
		"register other":   {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"heartbeat orders": {"admin": Y, "registrar": Y, "viewer": N, "none": U, "bad": U},
		"heartbeat other":  {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"deregister other": {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"consumers":        {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"create consumer":  {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"get consumer":     {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"rotate key":       {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"revoke key":       {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"delete consumer":  {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
		"audit":            {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"audit verify":     {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"config":           {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"revisions":        {"admin": Y, "registrar": N, "viewer": Y, "none": U, "bad": U},
		"reload":           {"admin": Y, "registrar": N, "viewer": N, "none": U, "bad": U},
	}
	keys := map[string]string{"admin": adminKey, "registrar": registrarKey, "viewer": viewerKey, "none": "", "bad": "ghk_not-a-real-key"}
	if len(table) != len(routes) {
		t.Fatal("table and routes disagree")
	}
	for name, rq := range routes {
		for role, want := range table[name] {
			t.Run(name+"/"+role, func(t *testing.T) {
				body := rq.body
				if m, ok := body.(map[string]any); ok && m["name"] == "c-ROLE" {
					body = map[string]any{"name": "c-" + role}
				}
				code, res, hdr := call(t, rq.method, s.admin+rq.path, keys[role], body)
				got := Y
				switch code {
				case 401:
					got = U
					if hdr.Get("WWW-Authenticate") == "" {
						t.Error("401 without WWW-Authenticate")
					}
				case 403:
					if res["type"] != "https://gatehouse.dev/problems/admin/forbidden" {
						t.Fatalf("403 of another kind: %v", res)
					}
					got = N
				}
				if code >= 500 {
					t.Fatalf("status %d: %v", code, res)
				}
				if got != want {
					t.Fatalf("%s %s as %s: %d (%s), want %s: %v", rq.method, rq.path, role, code, got, want, res)
				}
				if ct := hdr.Get("Content-Type"); code >= 400 && ct != "application/problem+json" {
					t.Fatalf("error Content-Type %q", ct)
				}
			})
		}
	}
}

func TestRegistration_RoutableAtOnceAndLeavesWhenTTLLapses(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "registered backend") }))
	defer backend.Close()
	s := startAdmin(t, backend.URL)
	host, port := splitURL(t, backend.URL)

	// The metadata address is refused.
	code, body, _ := call(t, "POST", s.admin+"/v1/services/orders/instances", registrarKey, map[string]any{"address": "169.254.169.254", "port": 80})
	if code != http.StatusForbidden || !strings.Contains(fmt.Sprint(body["detail"]), "metadata") {
		t.Fatalf("metadata address: %d %v", code, body)
	}

	if code, _ := get(t, s.url+"/orders/x"); code != 503 {
		t.Fatalf("before registration: %d", code)
	}
	registered := time.Now()
	code, body, _ = call(t, "POST", s.admin+"/v1/services/orders/instances", registrarKey, map[string]any{"address": host, "port": port, "ttl": "1s"})
	if code != 200 {
		t.Fatalf("register: %d %v", code, body)
	}
	// Routable within a second of the registration, without a reload.
	for {
		if code, b := get(t, s.url+"/orders/x"); code == 200 && b == "registered backend" {
			break
		}
		if time.Since(registered) > time.Second {
			t.Fatal("not routable within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No heartbeat: it leaves once its TTL has lapsed (plus the sweep).
	for {
		code, _ := get(t, s.url+"/orders/x")
		if code == 503 {
			break
		}
		if time.Since(registered) > 5*time.Second {
			t.Fatal("still routed 5s after a 1s TTL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Since(registered) < time.Second {
		t.Fatal("left before its TTL lapsed")
	}
	// The expiry sweep writes its audit record; it may trail the pool
	// update by a sweep interval.
	for {
		recs := auditRecords(t, s)
		last := recs[len(recs)-1]
		if last["action"] == "instance.expire" {
			break
		}
		if time.Since(registered) > 5*time.Second {
			t.Fatalf("last audit record %v, want instance.expire", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func splitURL(t *testing.T, u string) (string, int) {
	t.Helper()
	var host string
	var port int
	hp := strings.TrimPrefix(u, "http://")
	i := strings.LastIndexByte(hp, ':')
	host = hp[:i]
	fmt.Sscanf(hp[i+1:], "%d", &port)
	return host, port
}

// Deregistration drains: requests in flight on the instance finish, new
// ones do not reach it.
func TestRegistration_DeregisterDrains(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/orders/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	s := startAdmin(t, backend.URL)
	host, port := splitURL(t, backend.URL)
	code, body, _ := call(t, "POST", s.admin+"/v1/services/orders/instances", registrarKey, map[string]any{"address": host, "port": port, "ttl": "1m"})
	if code != 200 {
		t.Fatalf("register: %d %v", code, body)
	}
	inflight := make(chan int, 1)
	go func() {
		code, _ := get(t, s.url+"/orders/slow")
		inflight <- code
	}()
	<-entered
	if code, _, _ := call(t, "DELETE", s.admin+"/v1/services/orders/instances/"+body["id"].(string), registrarKey, nil); code != 204 {
		t.Fatalf("deregister: %d", code)
	}
	if code, _ := get(t, s.url+"/orders/new"); code != 503 {
		t.Fatalf("new request after deregistration: %d", code)
	}
	close(release)
	if code := <-inflight; code != 200 {
		t.Fatalf("in-flight request: %d", code)
	}
}

// Regenerating the primary key while clients use the secondary fails no
// request; a revoked key is refused on the very next request.
func TestKeys_RotationWithoutFailuresAndRevocationWithinASecond(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	s := startAdmin(t, backend.URL)
	code, body, _ := call(t, "POST", s.admin+"/v1/consumers", adminKey, map[string]any{"name": "acme", "scopes": []string{"orders:read"}, "keys": []string{"primary", "secondary"}})
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	keys := body["keys"].(map[string]any)
	primary, secondary := keys["primary"].(string), keys["secondary"].(string)
	withKey := func(k string) int {
		req, _ := http.NewRequest("GET", s.url+"/keyed/x", nil)
		req.Header.Set("X-API-Key", k)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if withKey(primary) != 200 || withKey(secondary) != 200 {
		t.Fatal("new keys do not work")
	}

	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if withKey(secondary) != 200 {
					failed.Add(1)
				}
				served.Add(1)
			}
		})
	}
	for range 5 {
		code, body, _ := call(t, "POST", s.admin+"/v1/consumers/acme/keys/primary", adminKey, nil)
		if code != 201 {
			t.Fatalf("rotate: %d %v", code, body)
		}
		if withKey(body["key"].(string)) != 200 {
			t.Fatal("the new primary key does not work")
		}
		if withKey(primary) != 401 {
			t.Fatal("the replaced primary key still works")
		}
		primary = body["key"].(string)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || served.Load() == 0 {
		t.Fatalf("%d of %d requests with the secondary key failed during rotation", failed.Load(), served.Load())
	}

	if code, _, _ := call(t, "DELETE", s.admin+"/v1/consumers/acme/keys/secondary", adminKey, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	revoked := time.Now()
	for withKey(secondary) != 401 {
		if time.Since(revoked) > time.Second {
			t.Fatal("revoked key still accepted after a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
	recs := auditRecords(t, s)
	var actions []string
	for _, r := range recs {
		actions = append(actions, r["action"].(string))
		if strings.Contains(fmt.Sprint(r), primary) || strings.Contains(fmt.Sprint(r), secondary) {
			t.Fatal("an audit record contains a key")
		}
	}
	joined := strings.Join(actions, " ")
	for _, want := range []string{"consumer.create", "key.create", "key.rotate", "key.revoke"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %s in the audit log: %s", want, joined)
		}
	}
}

func TestAdmin_ReloadWithStaleIfMatchIs412(t *testing.T) {
	s := startAdmin(t, "http://127.0.0.1:1")
	_, _, hdr := call(t, "GET", s.admin+"/v1/config", viewerKey, nil)
	etag := hdr.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if code, body, _ := call(t, "POST", s.admin+"/v1/config/reload", adminKey, nil, "If-Match", `"0000"`); code != 412 {
		t.Fatalf("stale If-Match: %d %v", code, body)
	}
	if code, body, _ := call(t, "POST", s.admin+"/v1/config/reload", adminKey, nil, "If-Match", etag); code != 200 {
		t.Fatalf("current If-Match: %d %v", code, body)
	}
	_, m, _ := call(t, "GET", s.admin+"/v1/config", viewerKey, nil)
	if strings.Contains(fmt.Sprint(m), registrarKey) {
		t.Fatal("config view holds a key")
	}
}

func TestAdmin_WithoutCredentialsIsRefusedUnlessInsecureLocal(t *testing.T) {
	s := startAdmin(t, "http://127.0.0.1:1")
	if code, _, _ := call(t, "GET", s.admin+"/v1/whoami", "", nil); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	// Probes stay open.
	if code, _ := get(t, s.admin+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	cfg := strings.Replace(adminConfig("http://127.0.0.1:1"), "    auth:\n", "    insecure_local: true\n    auth:\n", 1)
	os.WriteFile(file, []byte(cfg), 0o644)
	local := start(t, file)
	code, body, _ := call(t, "GET", local.admin+"/v1/whoami", "", nil)
	if code != 200 || body["actor"] != "local" {
		t.Fatalf("insecure_local: %d %v", code, body)
	}
	_ = context.Background
}
