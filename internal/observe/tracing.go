package observe

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracingOptions are parsed tracing settings, with secrets resolved.
type TracingOptions struct {
	// Endpoint is the OTLP/HTTP traces URL (http://host:4318/v1/traces).
	Endpoint string
	// Headers are sent with every export.
	Headers map[string]string
	// SampleRatio is the fraction of new traces recorded; a caller's
	// sampled flag is followed.
	SampleRatio float64
	ServiceName string
	// Timeout bounds one export.
	Timeout time.Duration
	// RootCAs, when set, are the CAs trusted for the collector's TLS
	// instead of the system roots; CAPEM is the bundle they came from.
	RootCAs *x509.CertPool
	CAPEM   []byte
}

// key identifies options, so that a reload with the same settings keeps
// the running exporter. Header values are hashed, never kept in the key.
func (o TracingOptions) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%g\x00%s\x00%d\x00%x", o.Endpoint, o.SampleRatio, o.ServiceName, o.Timeout, sha256.Sum256(o.CAPEM))
	names := make([]string, 0, len(o.Headers))
	for k := range o.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(h, "\x00%s=%s", k, o.Headers[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Tracers owns the OpenTelemetry tracer providers. It lives on the
// gateway's runtime: a reload with unchanged tracing settings keeps the
// provider and its export queue; changed settings start a new one, and
// Retain shuts the old one down once the new snapshot is in place (or the
// new one, when the reload is refused).
type Tracers struct {
	logger *slog.Logger
	// exporter, when set, replaces the OTLP exporter (tests).
	exporter sdktrace.SpanExporter
	onError  func()

	mu      sync.Mutex
	live    []*Tracer // the served snapshot's, and a compiled one's not yet in place
	retired sync.WaitGroup
}

// TracersOptions configure a Tracers.
type TracersOptions struct {
	Logger *slog.Logger
	// Exporter replaces the OTLP/HTTP exporter (tests, or an in-process
	// collector); nil uses OTLP/HTTP with each Tracer's options.
	Exporter sdktrace.SpanExporter
	// OnExportError is called on each failed export (for a metric).
	OnExportError func()
}

// NewTracers returns a registry with no provider.
func NewTracers(o TracersOptions) *Tracers {
	routeOTelLogs(o.Logger)
	return &Tracers{logger: o.Logger, exporter: o.Exporter, onError: o.OnExportError}
}

// Tracer is one tracer provider and the tracer the gateway uses.
type Tracer struct {
	key      string
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// Tracer returns the OpenTelemetry tracer.
func (t *Tracer) Tracer() trace.Tracer { return t.tracer }

// Get returns the tracer for o: a live one with the same settings, else
// a new one. It shuts nothing down: Retain does, once it is known which
// snapshot is served.
func (r *Tracers) Get(o TracingOptions) (*Tracer, error) {
	k := o.key()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.live {
		if t.key == k {
			return t, nil
		}
	}
	exp := r.exporter
	if exp == nil {
		u, err := url.Parse(o.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("tracing endpoint: %w", err)
		}
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(u.String()),
			otlptracehttp.WithTimeout(o.Timeout),
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
		}
		if o.RootCAs != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(&tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}))
		}
		exp, err = otlptracehttp.New(context.Background(), opts...)
		if err != nil {
			return nil, fmt.Errorf("tracing exporter: %w", err)
		}
	}
	exp = &loggingExporter{SpanExporter: exp, logger: r.logger, onError: r.onError}
	res := resource.NewSchemaless(attribute.String("service.name", o.ServiceName))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
		sdktrace.WithBatcher(exp, sdktrace.WithExportTimeout(o.Timeout)),
	)
	t := &Tracer{key: k, provider: tp, tracer: tp.Tracer("github.com/gatehouse-dev/gatehouse")}
	r.live = append(r.live, t)
	return t, nil
}

// Retain shuts down every provider but keep's (the tracer of the
// snapshot being served, nil when tracing is off).
func (r *Tracers) Retain(keep *Tracer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.live[:0]
	for _, t := range r.live {
		if t == keep {
			kept = append(kept, t)
		} else {
			r.shutdown(t)
		}
	}
	clear(r.live[len(kept):])
	r.live = kept
}

// shutdown flushes and stops t in the background; Close waits for it.
func (r *Tracers) shutdown(t *Tracer) {
	r.retired.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = t.provider.Shutdown(ctx)
	})
}

// ForceFlush exports the spans ended so far (tests, shutdown).
func (r *Tracers) ForceFlush(ctx context.Context) error {
	r.mu.Lock()
	live := slices.Clone(r.live)
	r.mu.Unlock()
	var errs []error
	for _, t := range live {
		errs = append(errs, t.provider.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

// Close flushes and stops every provider; ctx bounds the wait.
func (r *Tracers) Close(ctx context.Context) {
	r.mu.Lock()
	for _, t := range r.live {
		_ = t.provider.Shutdown(ctx)
	}
	r.live = nil
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.retired.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// loggingExporter logs failed exports through the injected logger (at
// most once a minute) instead of OpenTelemetry's global error handler.
type loggingExporter struct {
	sdktrace.SpanExporter
	logger  *slog.Logger
	onError func()

	mu      sync.Mutex
	lastLog time.Time
	dropped int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	if e.onError != nil {
		e.onError()
	}
	e.mu.Lock()
	e.dropped += len(spans)
	now := time.Now()
	log := now.Sub(e.lastLog) >= time.Minute
	dropped := e.dropped
	if log {
		e.lastLog, e.dropped = now, 0
	}
	e.mu.Unlock()
	if log && e.logger != nil {
		e.logger.Warn("exporting traces failed; spans were dropped", "spans", dropped, "error", err.Error())
	}
	return nil
}
