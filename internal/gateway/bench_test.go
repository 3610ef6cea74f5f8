package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

const benchConfig = `
backends:
  - name: be
    instances: [{url: "BACKEND"}]
apis:
  - name: public
    path_prefix: /public
    backend: be
    operations:
      - {name: status, method: GET, path: "/status/{id}", auth: {anonymous: true}}
`

// benchGateway is a gateway in front of a loopback backend, served
// in-process (no client connection), so that the figures are the
// gateway's own plus one upstream exchange.
func benchGateway(tb testing.TB, rtHook func(*gateway.Runtime), extra string) *gateway.Gateway {
	tb.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	tb.Cleanup(be.Close)
	rt := &gateway.Runtime{
		Logger:     slog.New(slog.DiscardHandler),
		Metrics:    observe.NewMetrics(),
		Transports: upstream.NewTransports(),
		Secrets:    secret.Local{},
	}
	if rtHook != nil {
		rtHook(rt)
	}
	tb.Cleanup(rt.Transports.Close)
	gw := gateway.New(rt)
	cfg := strings.Replace(benchConfig, "BACKEND", be.URL, 1) + extra
	doc, diags := config.Parse("bench.yaml", []byte(cfg))
	if diags != nil {
		tb.Fatal(diags)
	}
	if _, diags := gw.Load(context.Background(), doc); diags != nil {
		tb.Fatal(diags)
	}
	return gw
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func runServe(b *testing.B, gw *gateway.Gateway) {
	b.Helper()
	req := httptest.NewRequest("GET", "/public/status/42", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	w := &discardWriter{h: http.Header{}}
	gw.ServeHTTP(w, req) // warm the connection
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		gw.ServeHTTP(w, req)
	}
}

// BenchmarkServe is one anonymous request through the whole chain to a
// loopback backend, with the default runtime (no tracing, no stats).
func BenchmarkServe(b *testing.B) {
	runServe(b, benchGateway(b, nil, ""))
}
