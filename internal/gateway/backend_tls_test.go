package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

func TestProxy_HTTPSBackendWithCustomCA(t *testing.T) {
	ca := testpki.NewCA(t, "internal CA")
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure "+r.Proto)
	}))
	backend.TLS = nil
	leaf := ca.Server(t, "127.0.0.1")
	backend.TLS = tlsConfig(leaf)
	backend.StartTLS()
	defer backend.Close()
	caFile := ca.WriteFile(t, t.TempDir(), "ca")

	cfg := `
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
    tls: {ca_file: "{{.CA}}"}
apis:
  - {name: a, backend: be, auth: {anonymous: true}}
`
	h := newHarness(t, strings.Replace(cfg, "{{.Backend}}", backend.URL, 1), map[string]any{"CA": caFile})
	res := h.do("GET", "/x", nil, nil)
	if body := readBody(t, res); res.StatusCode != 200 || !strings.HasPrefix(body, "secure") {
		t.Fatalf("%d %s", res.StatusCode, body)
	}

	// Without the CA the backend's certificate is not trusted: 502.
	if diags := h.load(strings.Replace(strings.Replace(cfg, "{{.Backend}}", backend.URL, 1), `    tls: {ca_file: "{{.CA}}"}`+"\n", "", 1)); diags != nil {
		t.Fatal(diags)
	}
	res = h.do("GET", "/x", nil, nil)
	res.Body.Close()
	if res.StatusCode != 502 {
		t.Fatalf("untrusted backend certificate: %d, want 502", res.StatusCode)
	}
}

// The example in examples/ is valid and compiles (with its certificate
// files and secret made up for the test).
func TestExampleConfigCompiles(t *testing.T) {
	data, err := os.ReadFile("../../examples/gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := testpki.NewCA(t, "example CA")
	ca.Server(t, "api.example.com").WriteFiles(t, dir, "server")
	ca.WriteFile(t, dir, "internal-ca")
	text := strings.ReplaceAll(string(data), "/etc/gatehouse/tls/", dir+"/")
	doc, diags := config.Parse("examples/gatehouse.yaml", []byte(text))
	if diags != nil {
		t.Fatalf("validation: %v", diags)
	}
	_, diags = gateway.Compile(context.Background(), doc, &gateway.Runtime{
		Logger: slog.New(slog.DiscardHandler),
		Secrets: secret.Local{LookupEnv: func(k string) (string, bool) {
			return "example-secondary-key", k == "LEGACY_BILLING_KEY_2"
		}},
	})
	if diags != nil {
		t.Fatalf("compile: %v", diags)
	}
	if n := len(doc.Config.IdentityProviders); n != 2 || len(doc.Config.APIs) != 3 {
		t.Fatalf("the example should front two IdPs and three APIs, has %d and %d", n, len(doc.Config.APIs))
	}
}

// An https:// backend goes through net/http's transport, which takes 1xx
// responses through httptrace only: its 103 Early Hints still reach the
// client, and the gateway's fields stay on the final response.
func TestProxy_HTTPSBackendEarlyHints(t *testing.T) {
	ca := testpki.NewCA(t, "internal CA")
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.js>; rel=preload; as=script")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	backend.TLS = tlsConfig(ca.Server(t, "127.0.0.1"))
	backend.StartTLS()
	defer backend.Close()
	cfg := `
backends:
  - name: be
    instances: [{url: "` + backend.URL + `"}]
    tls: {ca_file: "{{.CA}}"}
apis:
  - {name: a, backend: be, auth: {anonymous: true}}
`
	h := newHarness(t, cfg, map[string]any{"CA": ca.WriteFile(t, t.TempDir(), "ca")})
	var hints []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprintf("%d %s %s", code, hdr.Get("Link"), hdr.Get("X-Request-Id")))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/x", nil)
	req.Header.Set("X-Request-ID", "tls-hint")
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, res); res.StatusCode != 200 || body != "final" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if len(hints) != 1 || hints[0] != "103 </app.js>; rel=preload; as=script " {
		t.Fatalf("1xx responses the client saw: %q", hints)
	}
	if got := res.Header.Get("X-Request-Id"); got != "tls-hint" {
		t.Errorf("final response X-Request-Id %q", got)
	}
}
