package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/keyring"
	"github.com/gatehouse-dev/gatehouse/internal/registry"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

// newTestAPI is the admin API over a fresh store, on a configuration with
// insecure_local, so that loopback requests act as admin.
func newTestAPI(t testing.TB) *API {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	doc, diags := config.Parse("t.yaml", []byte(`
server: {admin: {address: "127.0.0.1:0", insecure_local: true}}
registry: {allow_loopback: true}
backends: [{name: b, registry: {service: orders}}]
apis: [{name: a, backend: b, auth: {anonymous: true}}]
`))
	if diags != nil {
		t.Fatal(diags)
	}
	snap, diags := gateway.Compile(ctx, doc, &gateway.Runtime{Logger: logger, Secrets: secret.Local{}})
	if diags != nil {
		t.Fatal(diags)
	}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := audit.NewRecorder(st, logger, nil)
	p, _ := registry.PolicyFromConfig(doc.Config.Registry)
	reg, err := registry.New(ctx, registry.Options{Store: st, Audit: rec, Logger: logger, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.New(ctx, st, logger, 0)
	if err != nil {
		t.Fatal(err)
	}
	return NewAPI(APIOptions{Logger: logger, Snapshot: func() *gateway.Snapshot { return snap }, Registry: reg,
		Store: st, Keys: keys, Audit: rec})
}

func local(method, path string, body []byte) *http.Request {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:4567"
	r.Host = "127.0.0.1:9901"
	r.Header.Set("Content-Type", "application/json")
	return r
}

// examplePath fills a route's path parameters.
func examplePath(p string) string {
	return strings.NewReplacer("{service}", "orders", "{id}", "10.0.0.1:80", "{name}", "acme", "{slot}", "primary").Replace(p)
}

func TestOpenAPI_DocumentsEveryRoute(t *testing.T) {
	a := newTestAPI(t)
	w := httptest.NewRecorder()
	a.ServeHTTP(w, local("GET", "/v1/openapi.json", nil))
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	ops := 0
	for _, rt := range a.routes {
		op := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if op == nil {
			t.Errorf("%s %s is not in the OpenAPI document", rt.method, rt.path)
			continue
		}
		ops++
		if _, ok := op["responses"].(map[string]any)[itoa(rt.status)]; !ok {
			t.Errorf("%s %s: success status %d not documented", rt.method, rt.path, rt.status)
		}
		// The route is really served: it answers something other than 404
		// from the catch-all or 405.
		w := httptest.NewRecorder()
		a.ServeHTTP(w, local(rt.method, examplePath(rt.path), []byte("{}")))
		if strings.Contains(w.Body.String(), "No admin API operation has this method and path") || w.Code == 405 {
			t.Errorf("%s %s is documented but not served", rt.method, rt.path)
		}
	}
	n := 0
	for _, item := range doc.Paths {
		n += len(item)
	}
	if n != ops {
		t.Errorf("the document has %d operations, the API %d", n, ops)
	}
	// Every $ref resolves.
	for _, ref := range refsIn(w.Body.String()) {
		if _, ok := doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]; !ok {
			t.Errorf("unresolved $ref %s", ref)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func refsIn(s string) []string {
	var out []string
	for {
		i := strings.Index(s, `"$ref": "`)
		if i < 0 {
			return out
		}
		s = s[i+9:]
		j := strings.IndexByte(s, '"')
		out = append(out, s[:j])
		s = s[j:]
	}
}

// FuzzAdminRequestBodies sends arbitrary bodies to every admin operation
// that takes one: the API answers, never panics, never fails with a 5xx.
func FuzzAdminRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"address":"10.0.0.1","port":80}`,
		`{"address":"169.254.169.254","port":80,"ttl":"5s","metadata":{"a":"b"}}`,
		`{"address":"10.0.0.1","port":80,"ttl":"-1s"}`,
		`{"name":"acme","groups":["g"],"keys":["primary","secondary"]}`,
		`{"name":"acme","keys":["tertiary"]}`,
		`{"port":"80"}`, `[]`, `null`, `{}`, `{"a":1}{"b":2}`, "\x00", `{"name":` + strings.Repeat(`"x`, 100),
	} {
		for i := range 4 {
			f.Add(uint8(i), []byte(seed))
		}
	}
	a := newTestAPI(f)
	paths := []struct{ method, path string }{
		{"POST", "/v1/services/orders/instances"},
		{"POST", "/v1/consumers"},
		{"POST", "/v1/consumers/acme/keys/primary"},
		{"POST", "/v1/config/reload"},
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := paths[int(which)%len(paths)]
		w := httptest.NewRecorder()
		a.ServeHTTP(w, local(p.method, p.path, body))
		if w.Code >= 500 && w.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s with %q: %d %s", p.method, p.path, body, w.Code, w.Body)
		}
	})
}

// hangUpStore cancels the request's context once a key's deletion is
// committed: the client hung up just then.
type hangUpStore struct {
	store.Store
	cancel context.CancelFunc
}

func (s hangUpStore) DeleteKey(ctx context.Context, consumer, slot string) error {
	err := s.Store.DeleteKey(context.WithoutCancel(ctx), consumer, slot)
	s.cancel()
	return err
}

// A revocation committed by the store is audited and applied even if the
// client hangs up at that moment: the key table's refresh does not depend
// on the request's context, and the record is written first.
func TestRevokeKey_ClientGoneAfterTheCommit(t *testing.T) {
	a := newTestAPI(t)
	_, keys, err := a.CreateConsumer(context.Background(), "ops", NewConsumer{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	ring := a.o.Keys.(*keyring.Ring)
	if _, ok := ring.Lookup(keys["primary"]); !ok {
		t.Fatal("the new key is not in the key table")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.o.Store = hangUpStore{Store: a.o.Store, cancel: cancel}
	if err := a.RevokeKey(ctx, "ops", "acme", "primary"); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if _, ok := ring.Lookup(keys["primary"]); ok {
		t.Fatal("the revoked key is still accepted")
	}
	recs, err := a.o.Store.ListAudit(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action)
	}
	if !slices.Contains(actions, audit.ActionKeyRevoke) {
		t.Fatalf("audit actions %v, want the revocation", actions)
	}
}

// failingKeys fails the second key it is asked to save.
type failingKeys struct {
	store.Store
	n int
}

func (s *failingKeys) PutKey(ctx context.Context, k store.Key) error {
	if s.n++; s.n == 2 {
		return errors.New("disk full")
	}
	return s.Store.PutKey(ctx, k)
}

// A consumer whose keys cannot all be saved is taken back: no consumer
// with keys nobody saw, and the retry succeeds.
func TestCreateConsumer_KeyFailureLeavesNothing(t *testing.T) {
	a := newTestAPI(t)
	real := a.o.Store
	a.o.Store = &failingKeys{Store: real}
	ctx := context.Background()
	if _, _, err := a.CreateConsumer(ctx, "ops", NewConsumer{Name: "acme", Keys: []string{"primary", "secondary"}}); err == nil {
		t.Fatal("created with a key that could not be saved")
	}
	if _, err := real.GetConsumer(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the consumer is still stored: %v", err)
	}
	if _, keys, err := a.CreateConsumer(ctx, "ops", NewConsumer{Name: "acme", Keys: []string{"primary", "secondary"}}); err != nil || len(keys) != 2 {
		t.Fatalf("the retry: %v, %d keys", err, len(keys))
	}
}

// A browser page of another site cannot use the admin API: not through a
// name rebound to 127.0.0.1 under insecure_local (DNS rebinding), and not
// with a form or fetch from another origin (CSRF: the key rotation
// route reads no body, so a plain form could call it).
func TestAdmin_RefusesOtherSitesPages(t *testing.T) {
	a := newTestAPI(t)
	if _, _, err := a.CreateConsumer(context.Background(), "ops", NewConsumer{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*http.Request)
		want int
	}{
		{"a program on loopback", func(*http.Request) {}, 200},
		{"localhost", func(r *http.Request) { r.Host = "localhost:9901" }, 200},
		{"the same origin", func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:9901") }, 200},
		{"a rebound name", func(r *http.Request) { r.Host = "rebind.evil.example:9901" }, 401},
		{"another origin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, 403},
		{"an opaque origin", func(r *http.Request) { r.Header.Set("Origin", "null") }, 403},
		{"a cross-site fetch", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := local("POST", "/v1/consumers/acme/keys/secondary", nil)
			tc.mod(r)
			w := httptest.NewRecorder()
			a.ServeHTTP(w, r)
			// A refusal exactly (401 and 403 say different things); a
			// rotation any success.
			if tc.want >= 400 && w.Code != tc.want || tc.want < 400 && w.Code/100 != 2 {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body.String())
			}
		})
	}
}

// A refused call's audit record holds at most a clipped path: a caller
// with a key but no right cannot grow the audit log by kilobytes a call.
func TestAdmin_DeniedCallsAreAuditedClipped(t *testing.T) {
	a := newTestAPI(t)
	if got := clip("abc", 3); got != "abc" {
		t.Fatalf("clip kept %q", got)
	}
	if got := clip(strings.Repeat("é", 200), 256); len(got) > 256 || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Fatalf("clip gave %d bytes: %q", len(got), got)
	}
	c := &call{api: a, r: httptest.NewRequest("GET", "/v1/services/"+strings.Repeat("s", 60000)+"/instances", nil), ctx: context.Background(),
		route: &route{perm: permRegister}, actor: "key:other"}
	c.r.SetPathValue("service", strings.Repeat("s", 60000))
	if e := c.authorize(); e == nil || e.status != http.StatusForbidden {
		t.Fatalf("authorize: %+v", e)
	}
	recs, err := a.o.Store.ListAudit(context.Background(), 0, 100)
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit: %v, %d records", err, len(recs))
	}
	last := recs[len(recs)-1]
	if n := len(last.Target) + len(last.Detail); n > 1024 {
		t.Fatalf("a denied call's audit record holds %d bytes", n)
	}
}
