package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func newClock() *fakeClock { return &fakeClock{t: time.Now()} }

const otherAPIKey = "ghk_other-key-for-the-second-consumer-9876543210"

// policyConfig has two API-key consumers, a rate-limited and quota'd
// API, and the other policies on their own APIs.
const policyConfig = `
storage: {data_dir: "{{.DataDir}}"}
server:
  trusted_proxies: {{.Trusted}}
identity_providers:
  - name: idp
    issuer: "{{.Issuer}}"
    audiences: [gatehouse]
consumers:
  - name: partner
    scopes: [orders:read, orders:write]
    keys: {primary: {sha256: "{{.KeyHash}}"}}
  - name: other
    scopes: [orders:read, orders:write]
    keys: {primary: {sha256: "{{.OtherHash}}"}}
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
apis:
  - name: limited
    path_prefix: /limited
    backend: be
    auth: {credentials: [api_key, jwt]}
    rate_limits:
      - {name: burst, rate: 3, period: 1s}
      - {name: minute, rate: 5, period: 1m, key: [consumer]}
    quotas:
      - {name: daily, limit: {{.QuotaLimit}}, period: day, time_zone: Europe/Paris, key: [consumer]}
    operations:
      - {name: get, method: GET, path: "/{id}"}
      - name: strict
        method: GET
        path: /strict/x
        rate_limits: [{name: minute, rate: 1, period: 1m, key: [consumer]}]
  - name: shop
    path_prefix: /shop
    backend: be
    auth: {credentials: [api_key]}
    openapi: {spec: "{{.Spec}}", validate_request: true}
    cors:
      allow_origins: [https://app.example.com, "https://*.example.org"]
      allow_headers: [Content-Type, X-API-Key, X-Tenant]
      expose_headers: [RateLimit]
      allow_credentials: true
      max_age: 10m
    operations:
      - {name: list, method: GET, path: /orders}
      - {name: create, method: POST, path: /orders}
      - {name: get, method: GET, path: "/orders/{id}"}
  - name: edge
    path_prefix: /edge
    backend: be
    auth: {anonymous: true}
    ip_filter: {allow: [127.0.0.0/8, 10.0.0.0/8], deny: [10.9.0.0/16]}
    transforms:
      request_headers: {set: {X-Env: prod}, remove: [X-Debug]}
      response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}
      strip_prefix: /edge
    operations:
      - {name: any, method: GET, path: "/{rest...}"}
      - name: rewrite
        method: GET
        path: "/orders/{id}/items/{item}"
        transforms: {path: "/v2/items/{item}/of/{id}", request_headers: {append: {X-Env: canary}}}
      - name: mocked
        method: GET
        path: /mock
        mock: {status: 202, headers: {X-Mock: "yes"}, body: '{"ok":true}'}
      - name: office
        method: GET
        path: /office
        ip_filter: {allow: [192.0.2.0/24]}
`

func policyVars(t *testing.T, extra map[string]any) map[string]any {
	v := map[string]any{
		"DataDir":    t.TempDir(),
		"OtherHash":  identity.HashKey(otherAPIKey).String(),
		"Spec":       "testdata/orders-openapi.yaml",
		"QuotaLimit": 1000,
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

func newPolicyHarness(t *testing.T, extra map[string]any) (*harness, *fakeClock) {
	t.Helper()
	h := newHarness(t, policyConfig, policyVars(t, extra))
	clock := newClock()
	h.rt.Now = clock.Now
	t.Cleanup(func() { h.rt.Quotas.Close() })
	if diags := h.load(policyConfig); diags != nil { // recompile with the clock
		t.Fatal(diags)
	}
	return h, clock
}

func key(k string) map[string]string { return map[string]string{"X-API-Key": k} }

func problemOf(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(readBody(t, res)), &m); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return m
}

func TestRateLimit_ConsumerOverLimitGets429OthersUnaffected(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	for i := range 3 {
		res := h.do("GET", "/limited/1", key(testAPIKey), nil)
		if res.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
		want := fmt.Sprintf(`"burst";r=%d;t=1, "minute";r=%d;t=`, 2-i, 4-i)
		if got := res.Header.Get("RateLimit"); !strings.HasPrefix(got, want) {
			t.Errorf("request %d: RateLimit %q, want prefix %q", i, got, want)
		}
		if got := res.Header.Values("RateLimit-Policy"); len(got) != 2 || got[0] != `"burst";q=3;w=1, "minute";q=5;w=60` || got[1] != `"daily";q=1000` {
			t.Errorf("RateLimit-Policy %q", got)
		}
	}
	before := h.backend.count()
	res := h.do("GET", "/limited/1", key(testAPIKey), nil)
	if res.StatusCode != 429 {
		t.Fatalf("4th request: status %d, want 429", res.StatusCode)
	}
	if got := res.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	if got := res.Header.Get("RateLimit"); got != `"burst";r=0;t=1` {
		t.Errorf("RateLimit %q", got)
	}
	if got := res.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type %q", got)
	}
	p := problemOf(t, res)
	if p["type"] != "https://gatehouse.dev/problems/rate-limited" || p["limit"] != "burst" {
		t.Errorf("problem %v", p)
	}
	if h.backend.count() != before {
		t.Error("a limited request reached the backend")
	}
	// The other consumer has buckets of its own.
	if res := h.do("GET", "/limited/1", key(otherAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("other consumer: status %d", res.StatusCode)
	}
	if !strings.Contains(h.logs.String(), `"denial":"rate_limited"`) {
		t.Error("the access log lacks denial rate_limited")
	}
}

func TestRateLimit_OperationLimitReplacesTheAPIsOfTheSameName(t *testing.T) {
	h, clock := newPolicyHarness(t, nil)
	if res := h.do("GET", "/limited/strict/x", key(testAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	clock.Advance(2 * time.Second) // the burst limit refills; the minute does not
	res := h.do("GET", "/limited/strict/x", key(testAPIKey), nil)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "58" {
		t.Fatalf("status %d, Retry-After %q; want 429, 58", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// The operation's own "minute" counts apart from the API's.
	if res := h.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("API operation: status %d", res.StatusCode)
	}
}

func TestRateLimit_RefillsWithTime(t *testing.T) {
	h, clock := newPolicyHarness(t, nil)
	for range 3 {
		h.do("GET", "/limited/1", key(testAPIKey), nil)
	}
	if res := h.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 429 {
		t.Fatalf("status %d", res.StatusCode)
	}
	clock.Advance(time.Second / 3)
	if res := h.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("after one interval: status %d", res.StatusCode)
	}
}

// A reload while requests flow keeps every counter: exactly the limit's
// worth of requests is allowed over the reloads.
func TestRateLimit_ReloadDuringLoadKeepsCounters(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	var allowed, limited atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", h.srv.URL+"/limited/strict/x", nil)
				req.Header.Set("X-API-Key", testAPIKey)
				res, err := h.srv.Client().Do(req)
				if err != nil {
					continue
				}
				res.Body.Close()
				switch res.StatusCode {
				case 200:
					allowed.Add(1)
				case 429:
					limited.Add(1)
				}
			}
		})
	}
	for i := range 5 {
		// Each reload changes the configuration (the quota's limit).
		h.vars["QuotaLimit"] = 1000 + i
		if diags := h.load(policyConfig); diags != nil {
			t.Fatal(diags)
		}
	}
	close(stop)
	wg.Wait()
	if allowed.Load() != 1 {
		t.Fatalf("%d requests allowed across reloads (limit 1 per minute), %d limited", allowed.Load(), limited.Load())
	}
}

func TestQuota_ExhaustedGets429WithRenewal(t *testing.T) {
	h, clock := newPolicyHarness(t, map[string]any{"QuotaLimit": 2})
	paris, _ := time.LoadLocation("Europe/Paris")
	for range 2 {
		clock.Advance(time.Second) // stay under the burst limit
		if res := h.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	clock.Advance(time.Second)
	res := h.do("GET", "/limited/1", key(testAPIKey), nil)
	if res.StatusCode != 429 {
		t.Fatalf("status %d, want 429", res.StatusCode)
	}
	now := clock.Now().In(paris)
	renews := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, paris)
	want := int64((renews.Sub(now) + time.Second - 1) / time.Second)
	if got := res.Header.Get("Retry-After"); got != fmt.Sprint(want) {
		t.Errorf("Retry-After %s, want %d", got, want)
	}
	p := problemOf(t, res)
	if p["renews_at"] != renews.Format(time.RFC3339) || p["type"] != "https://gatehouse.dev/problems/quota-exhausted" {
		t.Errorf("problem %v, want renews_at %s", p, renews.Format(time.RFC3339))
	}
	if !strings.Contains(h.logs.String(), `"denial":"quota_exhausted"`) {
		t.Error("the access log lacks denial quota_exhausted")
	}
	if res := h.do("GET", "/limited/1", key(otherAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("other consumer: status %d", res.StatusCode)
	}
}

// A restart (a new runtime on the same data directory) keeps the counts.
func TestQuota_SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]any{"QuotaLimit": 3, "DataDir": dir}
	h1, clock := newPolicyHarness(t, vars)
	for range 2 {
		clock.Advance(time.Second)
		if res := h1.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if err := h1.rt.Quotas.Close(); err != nil { // what a clean shutdown does
		t.Fatal(err)
	}

	h2, _ := newPolicyHarness(t, vars)
	if res := h2.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("third request after restart: status %d", res.StatusCode)
	}
	h2.rt.Now = func() time.Time { return clock.Now().Add(time.Minute) }
	if diags := h2.load(policyConfig); diags != nil {
		t.Fatal(diags)
	}
	if res := h2.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 429 {
		t.Fatalf("fourth request after restart: status %d, want 429 (the quota was reset)", res.StatusCode)
	}
}

func TestValidation_InvalidBodyNeverReachesBackend(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	hdr := map[string]string{"X-API-Key": testAPIKey, "Content-Type": "application/json", "X-Tenant": "acme"}
	cases := []struct {
		name      string
		body      string
		hdr       map[string]string
		wantIn    string
		wantField string
		wantText  string
	}{
		{"missing required property", `{"sku":"abc"}`, hdr, "body", "", "quantity"},
		{"wrong type", `{"sku":"abc","quantity":"two"}`, hdr, "body", "/quantity", "integer"},
		{"below minimum", `{"sku":"abc","quantity":0}`, hdr, "body", "/quantity", "at least 1"},
		{"unknown property", `{"sku":"abc","quantity":1,"admin":true}`, hdr, "body", "", "admin"},
		{"not JSON", `{"sku":`, hdr, "body", "", ""},
		{"data after the body", `{"sku":"abc","quantity":1}xyz`, hdr, "body", "", "after the JSON value"},
		{"a second body", `{"sku":"abc","quantity":1}{"sku":"abc","quantity":-5,"admin":true}`, hdr, "body", "", "one JSON value"},
		{"duplicate name", `{"sku":"abc","quantity":0,"quantity":2}`, hdr, "body", "/quantity", `property "quantity" is given more than once`},
		{"number out of range", `{"sku":"abc","quantity":1e400}`, hdr, "body", "/quantity", "1e400 is out of the range of a number"},
		{"bad header", `{"sku":"abc","quantity":1}`, map[string]string{"X-API-Key": testAPIKey, "Content-Type": "application/json", "X-Tenant": "ACME"}, "header", "X-Tenant", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.backend.count()
			res := h.do("POST", "/shop/orders", tc.hdr, strings.NewReader(tc.body))
			if res.StatusCode != 400 {
				t.Fatalf("status %d, want 400", res.StatusCode)
			}
			p := problemOf(t, res)
			errs, _ := p["errors"].([]any)
			if len(errs) == 0 {
				t.Fatalf("no errors member: %v", p)
			}
			found := false
			for _, e := range errs {
				v := e.(map[string]any)
				if v["in"] == tc.wantIn && (tc.wantField == "" || v["field"] == tc.wantField) &&
					strings.Contains(fmt.Sprint(v["message"]), tc.wantText) {
					found = true
				}
			}
			if !found {
				t.Errorf("no violation in %s %q mentioning %q: %v", tc.wantIn, tc.wantField, tc.wantText, errs)
			}
			if h.backend.count() != before {
				t.Error("an invalid request reached the backend")
			}
		})
	}
	res := h.do("POST", "/shop/orders", hdr, strings.NewReader(`{"sku":"abc","quantity":2}`))
	if res.StatusCode != 200 {
		t.Fatalf("valid request: status %d: %s", res.StatusCode, readBody(t, res))
	}
	if got := string(h.backend.bodies[len(h.backend.bodies)-1]); got != `{"sku":"abc","quantity":2}` {
		t.Errorf("backend got body %q", got)
	}
	if !strings.Contains(h.logs.String(), `"denial":"request_invalid"`) {
		t.Error("the access log lacks denial request_invalid")
	}
}

func TestValidation_ParametersAndOpenAPI31(t *testing.T) {
	for _, spec := range []string{"testdata/orders-openapi.yaml", "testdata/orders-openapi31.yaml"} {
		t.Run(spec, func(t *testing.T) {
			h, _ := newPolicyHarness(t, map[string]any{"Spec": spec})
			for _, tc := range []struct {
				path string
				want int
			}{
				{"/shop/orders?limit=10", 200},
				{"/shop/orders?limit=1000", 400},
				{"/shop/orders?limit=ten", 400},
				{"/shop/orders?limit=10&limit=1000", 400}, // every value, not the first alone
				{"/shop/orders?limit=10&limit=10", 400},   // limit takes one value
				{"/shop/orders/42", 200},
				{"/shop/orders/forty-two", 400},
			} {
				if res := h.do("GET", tc.path, key(testAPIKey), nil); res.StatusCode != tc.want {
					t.Errorf("GET %s: status %d, want %d", tc.path, res.StatusCode, tc.want)
				}
			}
			hdr := map[string]string{"X-API-Key": testAPIKey, "Content-Type": "application/json", "X-Tenant": "acme"}
			res := h.do("POST", "/shop/orders", hdr, strings.NewReader(`{"sku":"abc","quantity":1,"note":null}`))
			want := 400 // 3.0: note is not nullable
			if strings.Contains(spec, "31") {
				want = 200 // 3.1: type [string, "null"]
			}
			if res.StatusCode != want {
				t.Errorf("null note: status %d, want %d: %s", res.StatusCode, want, readBody(t, res))
			}
			// 3.1 saw an infinity, at least 1.
			res = h.do("POST", "/shop/orders", hdr, strings.NewReader(`{"sku":"abc","quantity":1e400}`))
			if res.StatusCode != 400 {
				t.Errorf("quantity 1e400: status %d, want 400: %s", res.StatusCode, readBody(t, res))
			}
		})
	}
}

func TestValidation_BadSpecIsAConfigDiagnostic(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	h.vars["Spec"] = "testdata/missing.yaml"
	diags := h.load(policyConfig)
	if diags == nil || !strings.Contains(diags.Error(), "apis[1].openapi.spec") {
		t.Fatalf("diagnostics %v", diags)
	}
}

// The document is read and checked even where it validates nothing: a
// wrong path is reported, once.
func TestValidation_DocumentCheckedWithoutValidation(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	cfg := strings.Replace(policyConfig, `spec: "{{.Spec}}", validate_request: true`, `spec: "testdata/missing.yaml"`, 1)
	if cfg == policyConfig {
		t.Fatal("the configuration has no openapi line to change")
	}
	diags := h.load(cfg)
	if diags == nil || !strings.Contains(diags.Error(), "apis[1].openapi.spec") || strings.Count(diags.Error(), "missing.yaml") != 1 {
		t.Fatalf("diagnostics %v, want one at apis[1].openapi.spec", diags)
	}
	h.vars["Spec"] = "testdata/missing.yaml"
	if diags := h.load(policyConfig); diags == nil || strings.Count(diags.Error(), "missing.yaml") != 1 {
		t.Fatalf("with validation: diagnostics %v, want one", diags)
	}
}

func TestCORS(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	pre := func(origin, method, headers string) map[string]string {
		m := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			m["Access-Control-Request-Headers"] = headers
		}
		return m
	}
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
		acao   string
	}{
		{"preflight for a GET-only path", "OPTIONS", "/shop/orders/7", pre("https://app.example.com", "GET", "x-api-key"), 204, "https://app.example.com"},
		{"preflight for POST", "OPTIONS", "/shop/orders", pre("https://app.example.com", "POST", "content-type, x-api-key, x-tenant"), 204, "https://app.example.com"},
		{"wildcard subdomain", "OPTIONS", "/shop/orders", pre("https://a.b.example.org", "GET", ""), 204, "https://a.b.example.org"},
		{"wildcard needs a subdomain", "OPTIONS", "/shop/orders", pre("https://example.org", "GET", ""), 403, ""},
		{"disallowed origin", "OPTIONS", "/shop/orders", pre("https://evil.example.net", "GET", ""), 403, ""},
		{"disallowed method", "OPTIONS", "/shop/orders", pre("https://app.example.com", "DELETE", ""), 403, ""},
		{"disallowed header", "OPTIONS", "/shop/orders", pre("https://app.example.com", "GET", "x-secret"), 403, ""},
		{"plain OPTIONS is still 405", "OPTIONS", "/shop/orders", nil, 405, ""},
		{"actual request from an allowed origin", "GET", "/shop/orders", map[string]string{"Origin": "https://app.example.com", "X-API-Key": testAPIKey}, 200, "https://app.example.com"},
		{"actual request from another origin", "GET", "/shop/orders", map[string]string{"Origin": "https://evil.example.net", "X-API-Key": testAPIKey}, 200, ""},
		{"error responses carry CORS headers", "GET", "/shop/orders", map[string]string{"Origin": "https://app.example.com"}, 401, "https://app.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.backend.count()
			res := h.do(tc.method, tc.path, tc.hdr, nil)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.acao {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.acao)
			}
			if tc.method == "OPTIONS" && h.backend.count() != before {
				t.Error("a preflight reached the backend")
			}
			if tc.status == 204 {
				if res.Header.Get("Access-Control-Allow-Credentials") != "true" || res.Header.Get("Access-Control-Max-Age") != "600" {
					t.Errorf("preflight headers %v", res.Header)
				}
			}
			if tc.status == 403 && !strings.Contains(readBody(t, res), "cors-rejected") {
				t.Error("the refusal is not a cors-rejected problem")
			}
		})
	}
	if !strings.Contains(h.logs.String(), `"denial":"cors_rejected"`) {
		t.Error("the access log lacks denial cors_rejected")
	}
}

func TestIPFilter(t *testing.T) {
	h, _ := newPolicyHarness(t, map[string]any{"Trusted": "[127.0.0.1/32]"})
	cases := []struct {
		name, path, xff string
		want            int
	}{
		{"loopback allowed", "/edge/a", "", 200},
		{"allowed range", "/edge/a", "10.1.2.3", 200},
		{"deny wins over allow", "/edge/a", "10.9.1.1", 403},
		{"not in the allow list", "/edge/a", "203.0.113.5", 403},
		{"operation list also applies", "/edge/office", "10.1.2.3", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.xff != "" {
				hdr["X-Forwarded-For"] = tc.xff
			}
			res := h.do("GET", tc.path, hdr, nil)
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
	if !strings.Contains(h.logs.String(), `"denial":"ip_denied"`) {
		t.Error("the access log lacks denial ip_denied")
	}
}

func TestTransforms(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "secret-stack/1.0")
		w.WriteHeader(200)
	}
	res := h.do("GET", "/edge/a/b%20c", map[string]string{"X-Debug": "1", "X-Gatehouse-Subject": "forged"}, nil)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	r := h.backend.last()
	if r.URL.EscapedPath() != "/a/b%20c" {
		t.Errorf("forwarded path %q, want /a/b%%20c (prefix stripped)", r.URL.EscapedPath())
	}
	if r.Header.Get("X-Env") != "prod" || r.Header.Get("X-Debug") != "" || r.Header.Get("X-Gatehouse-Subject") != "" {
		t.Errorf("request headers %v", r.Header)
	}
	if res.Header.Get("Server") != "" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("response headers %v", res.Header)
	}

	h.do("GET", "/edge/orders/7/items/a%2Bb", nil, nil)
	r = h.backend.last()
	if r.URL.Path != "/v2/items/a+b/of/7" {
		t.Errorf("rewritten path %q", r.URL.Path)
	}
	if got := r.Header.Values("X-Env"); len(got) != 2 || got[1] != "canary" {
		t.Errorf("X-Env %q: the operation's append should follow the API's set", got)
	}
}

// A transform's request fields reach the backend under h1's server too,
// where the gateway skips lookups of the names the client did not send:
// a transform that sets one the client lacks (User-Agent here) makes
// those names unknown (policy.Exchange.RequestHeaderChanged). Without
// that, the proxy would take User-Agent for absent and send it empty.
func TestTransforms_FieldTheClientLacks(t *testing.T) {
	const cfg = `backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
apis:
  - name: a
    path_prefix: /a
    backend: be
    auth: {anonymous: true}
    transforms:
      request_headers: {set: {User-Agent: from-transform, X-Env: prod}}
  - name: b
    path_prefix: /b
    backend: be
    auth: {anonymous: true}
`
	for _, h1 := range []bool{false, true} {
		h := newHarness(t, cfg, nil)
		if h1 {
			serveWithH1(h)
		}
		for _, ua := range []string{"", "client-agent"} {
			// An empty User-Agent: Go's client sends none.
			if res := h.do("GET", "/a/x", map[string]string{"User-Agent": ua}, nil); res.StatusCode != 200 {
				t.Fatalf("h1 %v: status %d", h1, res.StatusCode)
			}
			r := h.backend.last()
			if got := r.Header.Values("User-Agent"); len(got) != 1 || got[0] != "from-transform" || r.Header.Get("X-Env") != "prod" {
				t.Errorf("h1 %v, client's User-Agent %q: backend got User-Agent %q, X-Env %q", h1, ua, got, r.Header.Get("X-Env"))
			}
			// Without a transform, the client's own (or none).
			h.do("GET", "/b/x", map[string]string{"User-Agent": ua}, nil)
			if got := h.backend.last().Header.Get("User-Agent"); got != ua {
				t.Errorf("h1 %v: untransformed User-Agent %q, want %q", h1, got, ua)
			}
		}
	}
}

func TestMock_BackendNeverContacted(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	before := h.backend.count()
	res := h.do("GET", "/edge/mock", nil, nil)
	body := readBody(t, res)
	if res.StatusCode != 202 || body != `{"ok":true}` || res.Header.Get("X-Mock") != "yes" ||
		res.Header.Get("Content-Type") != "application/json" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("status %d, body %q, headers %v", res.StatusCode, body, res.Header)
	}
	if h.backend.count() != before {
		t.Fatal("the backend was called")
	}
}

func TestPolicies_DecisionsAreCounted(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	for range 4 {
		h.do("GET", "/limited/1", key(testAPIKey), nil)
	}
	mfs, err := h.rt.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_policy_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got[l["api"]+" "+l["operation"]+" "+l["policy"]+" "+l["outcome"]] = m.GetCounter().GetValue()
		}
	}
	if got["limited get rate_limit allowed"] != 3 || got["limited get rate_limit denied"] != 1 || got["limited get quota allowed"] != 3 {
		t.Fatalf("decisions %v", got)
	}
}

var _ = context.Background

// A reload refused while compiling (an OpenAPI document that is not
// there, which only the compile reads) changes no limit the configuration
// in service counts with: a rate limit keeps its rate and a quota its
// limit. (Both took the refused configuration's values.)
func TestReload_RefusedCompileKeepsLimits(t *testing.T) {
	h, _ := newPolicyHarness(t, nil)
	refused := strings.NewReplacer(
		"{name: burst, rate: 3, period: 1s}", "{name: burst, rate: 1000, period: 1s}",
		"{{.QuotaLimit}}", "1",
		`spec: "{{.Spec}}"`, `spec: "testdata/missing-openapi.yaml"`,
	).Replace(policyConfig)
	if diags := h.load(refused); diags == nil || !strings.Contains(diags.Error(), "missing-openapi.yaml") {
		t.Fatalf("reload with a missing OpenAPI document: %v", diags)
	}
	for i := range 3 { // a quota of 1 would refuse the second
		if res := h.do("GET", "/limited/1", key(testAPIKey), nil); res.StatusCode != 200 {
			t.Fatalf("request %d after the refused reload: %d", i, res.StatusCode)
		}
	}
	res := h.do("GET", "/limited/1", key(testAPIKey), nil)
	if res.StatusCode != 429 || res.Header.Get("RateLimit") != `"burst";r=0;t=1` {
		t.Fatalf("4th request: %d %q, want 429 from the burst limit of 3", res.StatusCode, res.Header.Get("RateLimit"))
	}
	// The same changes without the error apply.
	if diags := h.load(strings.Replace(refused, `spec: "testdata/missing-openapi.yaml"`, `spec: "{{.Spec}}"`, 1)); diags != nil {
		t.Fatal(diags)
	}
	if res := h.do("GET", "/limited/1", key(otherAPIKey), nil); res.StatusCode != 200 {
		t.Fatalf("the other consumer's first request: %d", res.StatusCode)
	}
	if res := h.do("GET", "/limited/1", key(otherAPIKey), nil); res.StatusCode != 429 {
		t.Fatalf("the other consumer's second request, over a quota of 1: %d, want 429", res.StatusCode)
	}
	if !strings.Contains(h.waitAccess(1), `"denial":"quota_exhausted"`) {
		t.Fatalf("the other consumer's second request was not refused by the quota:\n%s", h.logs.String())
	}
}
