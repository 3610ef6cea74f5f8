package server_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

// adminIssuer is a development issuer served on loopback until the test
// ends, and its URL.
func adminIssuer(t *testing.T) (*devissuer.Issuer, string) {
	t.Helper()
	iss, err := devissuer.New(devissuer.Options{Audience: "gatehouse-admin"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)
	iss.SetURL(srv.URL)
	return iss, srv.URL
}

// Admin roles from a configured identity provider's token claims.
func TestAdmin_JWTRolesFromClaims(t *testing.T) {
	iss, issURL := adminIssuer(t)
	other, otherURL := adminIssuer(t)

	cfg := fmt.Sprintf(`
identity_providers:
  - {name: corp, issuer: %q, audiences: [gatehouse-admin]}
  - {name: partner, issuer: %q, audiences: [gatehouse-admin]}
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin:
    address: "127.0.0.1:0"
    auth:
      jwt:
        issuers: [corp]
        roles:
          - {role: viewer, when: {groups: {any_of: [engineering]}}}
          - {role: registrar, services: [orders], when: {roles: {any_of: [deployer]}}}
registry: {allow_loopback: true}
backends: [{name: b, instances: [{url: "http://127.0.0.1:1"}]}]
apis: [{name: a, backend: b, auth: {anonymous: true}}]
`, issURL, otherURL)
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(file, []byte(cfg), 0o644)
	s := start(t, file)

	mint := func(i *devissuer.Issuer, claims map[string]any) string {
		c := map[string]any{"sub": "alice", "aud": "gatehouse-admin"}
		for k, v := range claims {
			c[k] = v
		}
		tok, err := i.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	viewer := mint(iss, map[string]any{"groups": []string{"engineering"}})
	deployer := mint(iss, map[string]any{"roles": []string{"deployer"}})
	nobody := mint(iss, map[string]any{"groups": []string{"sales"}})
	foreign := mint(other, map[string]any{"groups": []string{"engineering"}})

	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		want                      int
	}{
		{"viewer reads", viewer, "GET", "/v1/consumers", nil, 200},
		{"viewer may not register", viewer, "POST", "/v1/services/orders/instances", map[string]any{"address": "10.0.0.1", "port": 80}, 403},
		{"deployer registers into orders", deployer, "POST", "/v1/services/orders/instances", map[string]any{"address": "10.0.0.1", "port": 80}, 200},
		{"deployer may not read", deployer, "GET", "/v1/consumers", nil, 403},
		{"no matching binding", nobody, "GET", "/v1/consumers", nil, 403},
		{"issuer not accepted by the admin API", foreign, "GET", "/v1/consumers", nil, 401},
		{"garbage token", "not.a.jwt", "GET", "/v1/consumers", nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := call(t, tc.method, s.admin+tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("%d %v, want %d", code, body, tc.want)
			}
		})
	}
	_, who, _ := call(t, "GET", s.admin+"/v1/whoami", deployer, nil)
	if who["actor"] != "jwt:corp:alice" {
		t.Fatalf("whoami = %v", who)
	}
}

// With server.admin.auth.jwt.audiences, a token the issuer minted for a
// public API (one a backend could receive with pass_credential) is not an
// admin API token, whatever its claims.
func TestAdmin_JWTAudienceOfTheAdminAPI(t *testing.T) {
	iss, issURL := adminIssuer(t)
	cfg := fmt.Sprintf(`
identity_providers:
  - {name: corp, issuer: %q, audiences: [orders-api, gatehouse-admin]}
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin:
    address: "127.0.0.1:0"
    auth:
      jwt:
        issuers: [corp]
        audiences: [gatehouse-admin]
        roles:
          - {role: viewer, when: {groups: {any_of: [engineering]}}}
backends: [{name: b, instances: [{url: "http://127.0.0.1:1"}]}]
apis: [{name: a, backend: b, auth: {credentials: [jwt]}}]
`, issURL)
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(file, []byte(cfg), 0o644)
	s := start(t, file)
	mint := func(aud any) string {
		tok, err := iss.Mint(map[string]any{"sub": "alice", "aud": aud, "groups": []string{"engineering"}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name string
		aud  any
		want int
	}{
		{"the admin API's audience", "gatehouse-admin", 200},
		{"among others", []string{"orders-api", "gatehouse-admin"}, 200},
		{"a public API's token", "orders-api", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body, _ := call(t, "GET", s.admin+"/v1/consumers", mint(tc.aud), nil); code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
		})
	}
}
