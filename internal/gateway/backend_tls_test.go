package gateway_test

import (
	"compress/gzip"
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

// httpsBackend starts h over TLS with a certificate for 127.0.0.1 signed
// by ca, closed when the test ends.
func httpsBackend(t *testing.T, ca *testpki.CA, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	backend := httptest.NewUnstartedServer(h)
	backend.TLS = tlsConfig(ca.Server(t, "127.0.0.1"))
	backend.StartTLS()
	t.Cleanup(backend.Close)
	return backend
}

// httpsBackendConfig routes everything to {{.Backend}}, trusting the CA
// in {{.CA}}.
const httpsBackendConfig = `
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
    tls: {ca_file: "{{.CA}}"}
apis:
  - {name: a, backend: be, auth: {anonymous: true}}
`

func TestProxy_HTTPSBackendWithCustomCA(t *testing.T) {
	ca := testpki.NewCA(t, "internal CA")
	seen := make(chan http.Header, 1)
	backend := httpsBackend(t, ca, func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Header.Clone():
		default:
		}
		io.WriteString(w, "secure "+r.Proto)
	})
	h := newHarness(t, httpsBackendConfig, map[string]any{"Backend": backend.URL, "CA": ca.WriteFile(t, t.TempDir(), "ca")})
	res := h.do("GET", "/x", map[string]string{"X-Request-ID": "bad id!", "X-Forwarded-For": "203.0.113.9"}, nil)
	if body := readBody(t, res); res.StatusCode != 200 || !strings.HasPrefix(body, "secure") {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	// net/http's transport (HTTP/2 here) gets the gateway's fields in
	// the header map: each once, the client's replaced.
	hdr := <-seen
	for _, k := range []string{"X-Request-Id", "Traceparent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if n := len(hdr.Values(k)); n != 1 {
			t.Errorf("backend got %d %s fields (%q), want 1", n, k, hdr.Values(k))
		}
	}
	if got := hdr.Get("X-Request-Id"); got != res.Header.Get("X-Request-Id") || got == "bad id!" {
		t.Errorf("backend X-Request-Id %q, response's %q", got, res.Header.Get("X-Request-Id"))
	}
	if got := hdr.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("backend X-Forwarded-For %q", got)
	}
	// A client that sends no User-Agent: net/http adds none either.
	rawRequest(t, h, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if ua, ok := (<-seen)["User-Agent"]; ok {
		t.Errorf("User-Agent %q added on the way to an HTTPS backend", ua)
	}
	// Nor for one whose User-Agent its Connection field names (hop by
	// hop, so not forwarded), nor anything else that field names.
	rawRequest(t, h, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: User-Agent, X-Hop\r\nUser-Agent: curl/8\r\nX-Hop: 1\r\nAuthorization: Bearer not-for-the-backend\r\n\r\n")
	hdr = <-seen
	for _, k := range []string{"User-Agent", "X-Hop", "Authorization", "Connection"} {
		if v, ok := hdr[k]; ok {
			t.Errorf("%s %q reached an HTTPS backend", k, v)
		}
	}

	// Without the CA the backend's certificate is not trusted: 502.
	if diags := h.load(strings.Replace(httpsBackendConfig, `    tls: {ca_file: "{{.CA}}"}`+"\n", "", 1)); diags != nil {
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
	backend := httpsBackend(t, ca, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.js>; rel=preload; as=script")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	h := newHarness(t, httpsBackendConfig, map[string]any{"Backend": backend.URL, "CA": ca.WriteFile(t, t.TempDir(), "ca")})
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

// An https:// backend gets the client's request as it came: no
// Accept-Encoding of the transport's own, so its answer (here gzip with
// no-transform and a strong ETag when asked for it) reaches the client
// untouched; a client that asks for gzip gets the gzip bytes as sent.
func TestProxy_HTTPSBackendGetsNoAcceptEncodingOfItsOwn(t *testing.T) {
	ca := testpki.NewCA(t, "internal CA")
	backend := httpsBackend(t, ca, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Cache-Control", "no-transform")
			w.Header().Set("ETag", `"v1-gzip"`)
			gz := gzip.NewWriter(w)
			io.WriteString(gz, "hello")
			gz.Close()
			return
		}
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "hello, plain; accept-encoding "+fmt.Sprintf("%q", r.Header.Values("Accept-Encoding")))
	})
	h := newHarness(t, httpsBackendConfig, map[string]any{"Backend": backend.URL, "CA": ca.WriteFile(t, t.TempDir(), "ca")})
	res, body := rawRequest(t, h, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if body != "hello, plain; accept-encoding []" || res.Header.Get("ETag") != `"v1"` {
		t.Fatalf("without Accept-Encoding: %q, ETag %q", body, res.Header.Get("ETag"))
	}
	res, raw := rawRequest(t, h, "GET /x HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
	zr, err := gzip.NewReader(strings.NewReader(raw))
	if err != nil || res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("ETag") != `"v1-gzip"` {
		t.Fatalf("with Accept-Encoding gzip: %v, Content-Encoding %q, ETag %q", err, res.Header.Get("Content-Encoding"), res.Header.Get("ETag"))
	}
	if b, _ := io.ReadAll(zr); string(b) != "hello" {
		t.Fatalf("gzip body %q", b)
	}
}
