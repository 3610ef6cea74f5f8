package observe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
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
}

// key identifies options, so that a reload with the same settings keeps
// the running exporter. Header values are hashed, never kept in the key.
func (o TracingOptions) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%g\x00%s\x00%d", o.Endpoint, o.SampleRatio, o.ServiceName, o.Timeout)
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

// Tracers owns the OpenTelemetry tracer provider. It lives on the gateway's
// runtime: a reload with unchanged tracing settings keeps the provider and
// its export queue; changed settings start a new one and shut the old one
// down once no snapshot uses it.
type Tracers struct {
	logger *slog.Logger
	// exporter, when set, replaces the OTLP exporter (tests).
	exporter sdktrace.SpanExporter
	onError  func()

	mu      sync.Mutex
	current *Tracer
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

// Get returns the tracer for o: the current one when o is unchanged, else
// a new one.
func (r *Tracers) Get(o TracingOptions) (*Tracer, error) {
	k := o.key()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil && r.current.key == k {
		return r.current, nil
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
	old := r.current
	r.current = t
	if old != nil {
		r.shutdown(old)
	}
	return t, nil
}

// Retain shuts the current provider down when keep (the tracer of the
// snapshot being served, nil when tracing is off) is not it.
func (r *Tracers) Retain(keep *Tracer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil && r.current != keep {
		r.shutdown(r.current)
		r.current = nil
	}
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
	t := r.current
	r.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Close flushes and stops every provider; ctx bounds the wait.
func (r *Tracers) Close(ctx context.Context) {
	r.mu.Lock()
	if r.current != nil {
		_ = r.current.provider.Shutdown(ctx)
		r.current = nil
	}
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
