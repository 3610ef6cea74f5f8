package lint

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// lintFile loads, compiles and lints a configuration that must be valid.
func lintFile(t *testing.T, file string) []Finding {
	t.Helper()
	return lintDoc(t, file, nil)
}

func lintDoc(t *testing.T, file string, data []byte) []Finding {
	t.Helper()
	var doc *config.Document
	var diags config.Diagnostics
	if data == nil {
		doc, diags = config.Load(file)
	} else {
		doc, diags = config.Parse(file, data)
	}
	var snap *gateway.Snapshot
	if diags == nil {
		snap, diags = gateway.Compile(context.Background(), doc, &gateway.Runtime{
			Logger:  slog.New(slog.DiscardHandler),
			Secrets: secret.Local{},
		})
	}
	if diags != nil {
		t.Fatalf("%s does not compile:\n%v", file, diags)
	}
	return Run(context.Background(), doc, snap)
}

// brief lists findings as "severity code path", in their order.
func brief(fs []Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f.Severity) + " " + f.Code + " " + f.Path
	}
	return out
}

func expect(t *testing.T, fs []Finding, want ...string) {
	t.Helper()
	got := brief(fs)
	if !slices.Equal(got, want) {
		var b strings.Builder
		for _, f := range fs {
			b.WriteString("\n  " + f.String())
		}
		t.Fatalf("findings:\n  %s\nwant:\n  %s\nin full:%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), b.String())
	}
	for _, f := range fs {
		if f.Line == 0 || f.File == "" || f.Message == "" {
			t.Errorf("finding without a position or message: %+v", f)
		}
	}
}

// find returns the finding with code at path.
func find(t *testing.T, fs []Finding, code, path string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Code == code && f.Path == path {
			return f
		}
	}
	t.Fatalf("no %s finding at %s", code, path)
	return Finding{}
}

func mentions(t *testing.T, f Finding, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(f.Message, p) {
			t.Errorf("%s at %s: message lacks %q: %s", f.Code, f.Path, p, f.Message)
		}
	}
}

func TestUnauthenticatedRoutes(t *testing.T) {
	fs := lintFile(t, "testdata/unauthenticated.yaml")
	// mixed's GET /orders (jwt from its API) and closed are not reported.
	expect(t, fs,
		"warning unauthenticated-route apis[0].auth",
		"warning unauthenticated-route apis[1].operations[0].auth",
		"warning unauthenticated-route apis[2].operations[0]",
	)
	mentions(t, find(t, fs, CodeUnauthenticatedRoute, "apis[0].auth"), "every method and path under /site")
	mentions(t, find(t, fs, CodeUnauthenticatedRoute, "apis[1].operations[0].auth"), "GET /mixed/health")
	mentions(t, find(t, fs, CodeUnauthenticatedRoute, "apis[2].operations[0]"), "GET,POST /open/items", "inherits", "apis[2].auth")
	if f := fs[0]; f.Line != 14 || f.Col != 11 || f.File != "testdata/unauthenticated.yaml" {
		t.Errorf("first finding at %s:%d:%d, want testdata/unauthenticated.yaml:14:11", f.File, f.Line, f.Col)
	}
}

func TestShadowedRoutes(t *testing.T) {
	fs := lintFile(t, "testdata/shadowed.yaml")
	expect(t, fs,
		"error shadowed-operation apis[0].operations[1]",
		"error shadowed-api apis[2]",
		"warning shadowed-operation apis[5].operations[0]",
		"warning shadowed-api apis[6]",
	)
	mentions(t, find(t, fs, CodeShadowedOperation, "apis[0].operations[1]"),
		"GET /shop/orders/{id} can never be reached", "gets 404", `API "orders"`, "path_prefix /shop/orders")
	mentions(t, find(t, fs, CodeShadowedAPI, "apis[2]"),
		`API "store" can never be reached`, `served by apis[3].operations[0] (API "store-orders"`, "line 39", "POST /store/orders gets 404")
	mentions(t, find(t, fs, CodeShadowedOperation, "apis[5].operations[0]"),
		"gets 405 (Allow: POST)", "host api.example.com", `API "exact"`)
	mentions(t, find(t, fs, CodeShadowedAPI, "apis[6]"),
		`served by apis[7].operations[0] (API "files-get"`, "host api.example.com", "still reached on a host no API names")
}

// Overlapping routes that the router tells apart are not shadowed.
func TestReachableRoutes(t *testing.T) {
	expect(t, lintFile(t, "testdata/reachable.yaml"))
}

func TestOpenAPIMisaligned(t *testing.T) {
	fs := lintFile(t, "testdata/misaligned.yaml")
	expect(t, fs,
		"info operation-not-routed apis[0].openapi.spec",
		"warning scope-not-enforced apis[0].operations[1]",
		"error backend-requires-auth apis[0].operations[2].auth",
		"warning unauthenticated-route apis[0].operations[2].auth",
		"warning scheme-not-accepted apis[0].operations[3]",
		"warning unauthenticated-route apis[0].operations[4].auth",
		"info operation-not-documented apis[0].operations[5]",
		"warning scope-not-enforced apis[1].auth",
	)
	mentions(t, find(t, fs, CodeOperationNotRouted, "apis[0].openapi.spec"), "GET /reports (listReports)", "GET /v1/reports gets 404")
	f := find(t, fs, CodeScopeNotEnforced, "apis[0].operations[1]")
	mentions(t, f, "POST /items (createItem)", "scopes items:write in")
	if strings.Contains(f.Message, "items:read") {
		t.Errorf("items:read is enforced, yet listed: %s", f.Message)
	}
	mentions(t, find(t, fs, CodeBackendRequiresAuth, "apis[0].operations[2].auth"), "GET /items/{item-id} (getItem)", "oauth (oauth2)")
	mentions(t, find(t, fs, CodeSchemeNotAccepted, "apis[0].operations[3]"), "key (apiKey)", "only credentials jwt")
	mentions(t, find(t, fs, CodeOperationNotDocumented, "apis[0].operations[5]"), "GET /v1/admin")
	mentions(t, find(t, fs, CodeScopeNotEnforced, "apis[1].auth"), "catalog:read", `API "catalog", which has no operations`)
}

// An API that gives what its document asks, with alternatives, any_of,
// http bearer, openIdConnect, mutualTLS and paths written with the
// prefix, has no findings.
func TestOpenAPIAligned(t *testing.T) {
	expect(t, lintFile(t, "testdata/aligned.yaml"))
}

// The document's security applies per alternative: each rule on its own.
func TestOpenAPISecurityRules(t *testing.T) {
	const spec = `openapi: 3.0.3
info: {title: T, version: "1"}
paths:
  /a:
    get:
      security: [{oauth: [s1, s2]}, {oauth: [s1]}]
      responses: {"200": {description: ok}}
  /b:
    get:
      security: [{basic: []}]
      responses: {"200": {description: ok}}
  /c:
    get:
      security: [{key: []}, {oauth: [s3]}]
      responses: {"200": {description: ok}}
  /d:
    get:
      responses: {"200": {description: ok}}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: https://idp.example.com/token, scopes: {s1: x, s2: x, s3: x}}}
    basic: {type: http, scheme: basic}
    key: {type: apiKey, in: header, name: X-API-Key}
`
	dir := t.TempDir()
	specFile := dir + "/spec.yaml"
	writeFile(t, specFile, spec)
	cfg := `identity_providers:
  - {name: idp, issuer: https://idp.example.com, audiences: [api]}
backends:
  - {name: be, instances: [{url: "http://127.0.0.1:9000"}]}
apis:
  - name: t
    backend: be
    openapi: {spec: ` + specFile + `}
    auth: {credentials: [jwt], require: {scopes: {any_of: [s1, s2]}}}
    operations:
      - {method: GET, path: /a}
      - {method: GET, path: /b}
      - {method: GET, path: /c, auth: {credentials: [jwt, api_key]}}
      - {method: GET, path: /d}
`
	fs := lintDoc(t, "t.yaml", []byte(cfg))
	expect(t, fs,
		// any_of [s1, s2] guarantees neither; {oauth: [s1]} misses the fewest.
		"warning scope-not-enforced apis[0].operations[0]",
		// http basic has no gateway credential.
		"warning scheme-not-accepted apis[0].operations[1]",
		// /c: the apiKey alternative needs no scope. /d: no security at all.
	)
	f := find(t, fs, CodeScopeNotEnforced, "apis[0].operations[0]")
	mentions(t, f, "requires scopes s1 in")
	mentions(t, find(t, fs, CodeSchemeNotAccepted, "apis[0].operations[1]"), "basic (http basic)")
}

func TestPathSamples(t *testing.T) {
	segs, err := config.ParseTemplate("/a/{id}/b/{rest...}")
	if err != nil {
		t.Fatal(err)
	}
	got := pathSamples("/p", segs)
	want := []string{
		"/p/a/gatehouse-lint-sample-p2/b",
		"/p/a/gatehouse-lint-sample-p2/b/gatehouse-lint-sample-t1",
		"/p/a/gatehouse-lint-sample-p2/b/gatehouse-lint-sample-t1/gatehouse-lint-sample-t2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("pathSamples = %q, want %q", got, want)
	}
	if got := pathSamples("/", nil); !slices.Equal(got, []string{"/"}) {
		t.Errorf("pathSamples(/, /) = %q", got)
	}
	if got := pathSamples("/p", nil); !slices.Equal(got, []string{"/p"}) {
		t.Errorf("pathSamples(/p, /) = %q", got)
	}
}

func TestFindingString(t *testing.T) {
	f := Finding{Severity: Warning, Code: CodeShadowedAPI, File: "g.yaml", Line: 3, Col: 5, Path: "apis[0]", Message: "m"}
	if got, want := f.String(), "g.yaml:3:5: warning: shadowed-api: apis[0]: m"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// on_redis_failure without storage.redis does nothing: a warning at the
// setting, for the API's limits and an operation's; with storage.redis,
// nothing.
func TestSettingWithoutEffect(t *testing.T) {
	const cfg = `
backends:
  - name: be
    instances: [{url: "http://127.0.0.1:9000"}]
apis:
  - name: orders
    path_prefix: /orders
    backend: be
    auth: {anonymous: true}
    rate_limits:
      - {name: api, rate: 10, period: 1s, key: [ip], on_redis_failure: allow}
      - {name: plain, rate: 10, period: 1s, key: [ip]}
    operations:
      - method: POST
        path: /
        rate_limits:
          - {name: writes, rate: 1, period: 1s, key: [ip], on_redis_failure: deny}
`
	fs := lintDoc(t, "g.yaml", []byte(cfg))
	var got []Finding
	for _, f := range fs {
		if f.Code == CodeSettingWithoutEffect {
			got = append(got, f)
		}
	}
	expect(t, got,
		"warning setting-without-effect apis[0].rate_limits[0].on_redis_failure",
		"warning setting-without-effect apis[0].operations[0].rate_limits[0].on_redis_failure",
	)
	mentions(t, got[0], `rate limit "api"`, "without storage.redis")

	withRedis := "storage:\n  redis: {url: \"redis://127.0.0.1:6379/0\"}\n" + cfg
	for _, f := range lintDoc(t, "g.yaml", []byte(withRedis)) {
		if f.Code == CodeSettingWithoutEffect {
			t.Fatalf("with storage.redis: %s", f)
		}
	}
}
