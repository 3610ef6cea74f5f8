package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

// With the IdP down at start, the gateway serves but is not ready, and
// tokens of that IdP get 503 (not 401); once the IdP answers, it is ready.
func TestReadiness_WaitsForIdentityProviderKeys(t *testing.T) {
	iss, _ := devissuer.New(devissuer.Options{Audience: "gatehouse"})
	issSrv := httptest.NewServer(iss.Handler())
	defer issSrv.Close()
	iss.SetURL(issSrv.URL)
	iss.SetDown(true)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
server:
  listeners: [{address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
identity_providers:
  - {name: idp, issuer: %q, audiences: [gatehouse], jwks: {cooldown: 1s}}
backends:
  - {name: be, instances: [{url: %q}]}
apis:
  - {name: a, backend: be, auth: {credentials: [jwt]}}
`, issSrv.URL, backend.URL)), 0o644)
	s := start(t, file)
	if code, body := get(t, s.admin+"/readyz"); code != 503 || !strings.Contains(body, "identity provider") {
		t.Fatalf("readyz with the IdP down: %d %s", code, body)
	}
	tok, _ := iss.Mint(map[string]any{"sub": "a", "aud": "gatehouse"})
	req, _ := http.NewRequest("GET", s.url+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("token while keys are unavailable: %d (Retry-After %q), want 503", res.StatusCode, res.Header.Get("Retry-After"))
	}
	iss.SetDown(false)
	waitFor(t, func() bool { code, _ := get(t, s.admin+"/readyz"); return code == 200 })
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("once the IdP is up: %d", res.StatusCode)
	}
}
