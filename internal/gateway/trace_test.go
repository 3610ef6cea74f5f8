package gateway_test

import (
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

const traceConfig = `
consumers:
  - name: partner
    groups: [partners]
    keys:
      primary: {sha256: "KEYHASH"}
backends:
  - name: be
    instances: [{url: "BACKEND"}]
apis:
  - name: orders
    path_prefix: /orders
    backend: be
    auth:
      credentials: [api_key]
      require:
        groups: {any_of: [partners]}
    operations:
      - {name: get, method: GET, path: "/{id}"}
      - name: delete
        method: DELETE
        path: "/{id}"
        auth:
          credentials: [api_key]
          require:
            groups: {any_of: [admins]}
`

const traceKey = "ghk_trace-test-key-0123456789abcdefghijklmnop"

type traceEnv struct {
	gw       *gateway.Gateway
	srv      *httptest.Server
	tracers  *observe.Tracers
	exporter *tracetest.InMemoryExporter
	mu       sync.Mutex
	seen     []http.Header // headers the backend received
	// backendURL is the backend's, for a test's own configuration.
	backendURL string
	inflight   sync.WaitGroup // requests the gateway is still handling
}

func newTraceEnv(t *testing.T, tracing string, tracers *observe.Tracers) *traceEnv {
	t.Helper()
	e := &traceEnv{tracers: tracers}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, r.Header.Clone())
		e.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	e.backendURL = be.URL
	rt := &gateway.Runtime{
		Logger:     slog.New(slog.DiscardHandler),
		Transports: upstream.NewTransports(),
		Secrets:    secret.Local{},
		Stats:      observe.NewStats(nil),
		Tracers:    tracers,
	}
	t.Cleanup(rt.Transports.Close)
	e.gw = gateway.New(rt)
	cfg := strings.NewReplacer("BACKEND", be.URL, "KEYHASH", identity.HashKey(traceKey).String()).Replace(traceConfig) + tracing
	doc, diags := config.Parse("trace.yaml", []byte(cfg))
	if diags != nil {
		t.Fatal(diags)
	}
	if _, diags := e.gw.Load(context.Background(), doc); diags != nil {
		t.Fatal(diags)
	}
	// A complete response is sent before the gateway ends the request's
	// span, so do waits for the handler to return before the test
	// looks at the spans.
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.inflight.Add(1)
		defer e.inflight.Done()
		e.gw.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *traceEnv) do(t *testing.T, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	e.inflight.Wait()
	return res
}

func (e *traceEnv) lastSeen() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.seen) == 0 {
		return nil
	}
	return e.seen[len(e.seen)-1]
}

const tracingOn = `
observability:
  tracing:
    enabled: true
    endpoint: http://127.0.0.1:4318/v1/traces
`

func inMemoryTracing(t *testing.T) (*observe.Tracers, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tr := observe.NewTracers(observe.TracersOptions{Logger: slog.New(slog.DiscardHandler), Exporter: exp})
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr, exp
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

func TestTracing_ServerSpanIsChildOfCallerAndParentOfBackend(t *testing.T) {
	tracers, exp := inMemoryTracing(t)
	e := newTraceEnv(t, tracingOn, tracers)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res := e.do(t, "GET", "/orders/42", map[string]string{"X-API-Key": traceKey, "Traceparent": caller})
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if err := tracers.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	var server, client *tracetest.SpanStub
	for i := range spans {
		switch spans[i].SpanKind {
		case trace.SpanKindServer:
			server = &spans[i]
		case trace.SpanKindClient:
			client = &spans[i]
		}
	}
	if server == nil || client == nil {
		t.Fatalf("want a server and a client span, got %d spans", len(spans))
	}
	if got := server.SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("server span trace ID %s does not continue the caller's trace", got)
	}
	if got := server.Parent.SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("server span parent %s, want the caller's span", got)
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("client span is not a child of the server span")
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + client.SpanContext.SpanID().String() + "-01"
	if got := e.lastSeen().Get("Traceparent"); got != want {
		t.Errorf("backend saw traceparent %q, want %q (the gateway's client span)", got, want)
	}
	if server.Name != "GET /orders/{id}" {
		t.Errorf("server span name %q", server.Name)
	}
	for k, v := range map[string]string{
		"http.route": "/orders/{id}", "gatehouse.api": "orders", "gatehouse.operation": "get",
		"http.response.status_code": "200", "gatehouse.credential": "api_key", "gatehouse.consumer": "partner",
	} {
		if got := attr(*server, k); got != v {
			t.Errorf("server span %s = %q, want %q", k, got, v)
		}
	}
	var events []string
	for _, ev := range server.Events {
		events = append(events, ev.Name)
	}
	if strings.Join(events, ",") != "gatehouse.authenticate,gatehouse.authorize" {
		t.Errorf("server span events %v, want authenticate then authorize", events)
	}
	if attr(*client, "gatehouse.backend") != "be" || attr(*client, "http.response.status_code") != "200" {
		t.Errorf("client span attributes: %v", client.Attributes)
	}
}

func TestTracing_DenialIsAnEventWithItsReason(t *testing.T) {
	tracers, exp := inMemoryTracing(t)
	e := newTraceEnv(t, tracingOn, tracers)
	if res := e.do(t, "DELETE", "/orders/42", map[string]string{"X-API-Key": traceKey}); res.StatusCode != 403 {
		t.Fatalf("status %d, want 403", res.StatusCode)
	}
	_ = tracers.ForceFlush(context.Background())
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want only the server span (nothing was sent upstream)", len(spans))
	}
	var deny bool
	for _, ev := range spans[0].Events {
		if ev.Name != "gatehouse.authorize" {
			continue
		}
		for _, a := range ev.Attributes {
			if a.Key == "gatehouse.reason" && a.Value.AsString() == "forbidden:missing_group" {
				deny = true
			}
		}
	}
	if !deny {
		t.Errorf("no authorize event with reason forbidden:missing_group: %+v", spans[0].Events)
	}
	if attr(spans[0], "gatehouse.denial") != "forbidden:missing_group" {
		t.Errorf("denial attribute missing: %v", spans[0].Attributes)
	}
}

func TestTracing_OffRecordsNothingAndForwardsTheCallersTraceparent(t *testing.T) {
	tracers, exp := inMemoryTracing(t)
	e := newTraceEnv(t, "", tracers)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e.do(t, "GET", "/orders/42", map[string]string{"X-API-Key": traceKey, "Traceparent": caller})
	_ = tracers.ForceFlush(context.Background())
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("tracing off recorded %d spans", n)
	}
	if got := e.lastSeen().Get("Traceparent"); got != caller {
		t.Errorf("backend saw %q, want the caller's traceparent unchanged", got)
	}
	if e.gw.Snapshot().Tracing() {
		t.Error("snapshot says tracing is on")
	}
}

func TestTracing_SampleRatioZeroStillPropagates(t *testing.T) {
	tracers, exp := inMemoryTracing(t)
	e := newTraceEnv(t, tracingOn+"    sample_ratio: 0\n", tracers)
	e.do(t, "GET", "/orders/42", map[string]string{"X-API-Key": traceKey})
	_ = tracers.ForceFlush(context.Background())
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("ratio 0 exported %d spans", n)
	}
	tp := e.lastSeen().Get("Traceparent")
	if len(tp) != 55 || !strings.HasSuffix(tp, "-00") {
		t.Errorf("backend saw traceparent %q, want a valid unsampled one", tp)
	}
}

// TestTracing_ExportsOverOTLPHTTP sends spans to an in-process OTLP/HTTP
// receiver that decodes the protobuf export request, with a header from a
// secret reference.
// otlpExport is what a test collector received in one export.
type otlpExport struct {
	auth  string
	spans []string
}

// otlpCollector is an OTLP/HTTP trace receiver that reports each export
// on got.
func otlpCollector(got chan<- otlpExport) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ex := otlpExport{auth: r.Header.Get("Authorization")}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					ex.spans = append(ex.spans, s.Name)
				}
			}
		}
		got <- ex
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	})
}

func TestTracing_ExportsOverOTLPHTTP(t *testing.T) {
	got := make(chan otlpExport, 10)
	collector := httptest.NewServer(otlpCollector(got))
	t.Cleanup(collector.Close)
	t.Setenv("GATEHOUSE_TEST_COLLECTOR_AUTH", "Bearer collector-token")
	tracers := observe.NewTracers(observe.TracersOptions{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { tracers.Close(context.Background()) })
	cfg := `
observability:
  tracing:
    enabled: true
    endpoint: ` + collector.URL + `/v1/traces
    headers:
      Authorization: ${env:GATEHOUSE_TEST_COLLECTOR_AUTH}
`
	e := newTraceEnv(t, cfg, tracers)
	e.do(t, "GET", "/orders/7", map[string]string{"X-API-Key": traceKey})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tracers.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-got:
		if ex.auth != "Bearer collector-token" {
			t.Errorf("collector saw Authorization %q", ex.auth)
		}
		names := strings.Join(ex.spans, ",")
		if !strings.Contains(names, "GET /orders/{id}") || !strings.Contains(names, "upstream be") {
			t.Errorf("exported spans %v", ex.spans)
		}
	case <-ctx.Done():
		t.Fatal("the collector received no export")
	}
}

func TestTracing_ReloadWithSameSettingsKeepsTheProvider(t *testing.T) {
	tracers, exp := inMemoryTracing(t)
	e := newTraceEnv(t, tracingOn, tracers)
	before := e.gw.Snapshot()
	doc, _ := config.Parse("trace.yaml", []byte(strings.NewReplacer("BACKEND", "http://127.0.0.1:1", "KEYHASH", identity.HashKey(traceKey).String()).Replace(traceConfig)+tracingOn))
	if _, diags := e.gw.Load(context.Background(), doc); diags != nil {
		t.Fatal(diags)
	}
	if !e.gw.Snapshot().Tracing() || before == e.gw.Snapshot() {
		t.Fatal("reload did not swap in a tracing snapshot")
	}
	e.do(t, "GET", "/orders/1", map[string]string{"X-API-Key": traceKey})
	_ = tracers.ForceFlush(context.Background())
	if len(exp.GetSpans()) == 0 {
		t.Error("no spans after a reload with the same tracing settings")
	}
}

// BenchmarkServeTracing compares the chain with tracing off (the default)
// and on (every request sampled, in-memory exporter).
func BenchmarkServeTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		runServe(b, benchGateway(b, func(rt *gateway.Runtime) { rt.Stats = observe.NewStats(nil) }, ""))
	})
	b.Run("on", func(b *testing.B) {
		exp := tracetest.NewInMemoryExporter()
		tr := observe.NewTracers(observe.TracersOptions{Exporter: exp})
		b.Cleanup(func() { tr.Close(context.Background()) })
		runServe(b, benchGateway(b, func(rt *gateway.Runtime) { rt.Tracers = tr; rt.Stats = observe.NewStats(nil) },
			"observability:\n  tracing: {enabled: true, endpoint: \"http://127.0.0.1:4318/v1/traces\"}\n"))
		exp.Reset()
	})
}

// keepOnShutdown is an in-memory exporter that a provider's shutdown does
// not empty, so that a test sees the spans of every provider it made.
type keepOnShutdown struct{ *tracetest.InMemoryExporter }

func (keepOnShutdown) Shutdown(context.Context) error { return nil }

// A reload refused while compiling leaves tracing as it was: the provider
// in service keeps recording. (A changed setting shut it down as soon as
// the compile asked for a new one, and the refusal then shut the new one
// down too: no spans until the next reload that succeeded.)
func TestTracing_RefusedReloadKeepsTheProvider(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tracers := observe.NewTracers(observe.TracersOptions{Logger: slog.New(slog.DiscardHandler), Exporter: keepOnShutdown{exp}})
	t.Cleanup(func() { tracers.Close(context.Background()) })
	e := newTraceEnv(t, tracingOn, tracers)
	// Another service name, and an identity provider whose CA file the
	// compile cannot read.
	bad := strings.NewReplacer("BACKEND", "http://127.0.0.1:1", "KEYHASH", identity.HashKey(traceKey).String()).Replace(traceConfig) +
		tracingOn + "    service_name: other\n" +
		"identity_providers:\n  - name: idp\n    issuer: https://idp.example.com\n    audiences: [x]\n    ca_file: " + filepath.Join(t.TempDir(), "missing.pem") + "\n"
	doc, diags := config.Parse("trace.yaml", []byte(bad))
	if diags != nil {
		t.Fatal(diags)
	}
	if _, diags := e.gw.Load(context.Background(), doc); diags == nil {
		t.Fatal("a configuration with a missing CA file was accepted")
	}
	exp.Reset()
	e.do(t, "GET", "/orders/1", map[string]string{"X-API-Key": traceKey})
	if err := tracers.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) == 0 {
		t.Fatal("no spans after a refused reload")
	}
	for _, s := range spans {
		if name := s.Resource.Attributes(); len(name) == 0 || name[0].Value.Emit() != "gatehouse" {
			t.Fatalf("a span of service %v, want the configuration in service's (gatehouse)", name)
		}
	}
}

// A collector whose certificate only a private CA vouches for: without
// ca_file no export gets through (the system roots do not know it); a
// reload that adds ca_file starts an exporter that trusts it; a reload
// naming a missing bundle is refused at its key.
func TestTracing_CollectorBehindAPrivateCA(t *testing.T) {
	got := make(chan otlpExport, 10)
	collector := httptest.NewTLSServer(otlpCollector(got))
	t.Cleanup(collector.Close)
	caFile := filepath.Join(t.TempDir(), "collector-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: collector.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	var failed atomic.Int64
	tracers := observe.NewTracers(observe.TracersOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), OnExportError: func() { failed.Add(1) }})
	t.Cleanup(func() { tracers.Close(context.Background()) })
	tracing := "observability:\n  tracing:\n    enabled: true\n    endpoint: " + collector.URL + "/v1/traces\n    timeout: 2s\n"
	e := newTraceEnv(t, tracing, tracers)
	flush := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return tracers.ForceFlush(ctx)
	}
	e.do(t, "GET", "/orders/7", map[string]string{"X-API-Key": traceKey})
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 1 || !strings.Contains(logs.String(), "certificate") {
		t.Fatalf("export with the system roots: %d failed, logs %s; want one failure for the certificate", failed.Load(), logs.String())
	}
	select {
	case ex := <-got:
		t.Fatalf("the collector received %v without the CA", ex.spans)
	default:
	}

	reload := func(extra string) config.Diagnostics {
		t.Helper()
		cfg := strings.NewReplacer("BACKEND", e.backendURL, "KEYHASH", identity.HashKey(traceKey).String()).Replace(traceConfig) + tracing + extra
		doc, diags := config.Parse("trace.yaml", []byte(cfg))
		if diags != nil {
			t.Fatal(diags)
		}
		_, diags = e.gw.Load(context.Background(), doc)
		return diags
	}
	if d := reload("    ca_file: " + caFile + "\n"); d != nil {
		t.Fatal(d)
	}
	e.do(t, "GET", "/orders/7", map[string]string{"X-API-Key": traceKey})
	if err := flush(); err != nil {
		t.Fatalf("export with ca_file: %v", err)
	}
	if failed.Load() != 1 {
		t.Fatalf("exports failed with ca_file: %d, want none more", failed.Load()-1)
	}
	select {
	case ex := <-got:
		if names := strings.Join(ex.spans, ","); !strings.Contains(names, "GET /orders/{id}") {
			t.Errorf("exported spans %v", ex.spans)
		}
	default:
		t.Fatal("the collector received no export with ca_file")
	}

	d := reload("    ca_file: " + filepath.Join(t.TempDir(), "missing.pem") + "\n")
	if d == nil || !strings.Contains(d.Error(), "observability.tracing.ca_file") {
		t.Fatalf("reload with a missing CA file: %v, want a diagnostic at observability.tracing.ca_file", d)
	}
}
