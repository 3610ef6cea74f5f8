package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// Tracing on the request path. Everything here runs only when the
// snapshot has a tracer: with tracing off, ServeHTTP checks one nil
// pointer and calls nothing in this file.

// traceContext is the W3C Trace Context propagator (traceparent,
// tracestate). It has no state.
var traceContext = propagation.TraceContext{}

// spanState is the tracing state of one request, kept in the request's
// per-request allocation.
type spanState struct {
	span trace.Span
	// passed has bit i set when traced step i let the request through.
	passed uint32
}

type spanStateKey struct{}

// startSpan starts the server span of a request, as a child of the
// caller's traceparent when it sent a valid one, and makes the span's
// context the traceparent that the backend will see.
func (q *request) startSpan(tr trace.Tracer, r *http.Request) *http.Request {
	ctx := r.Context()
	if q.x.TraceParent != "" && validTraceParent(r.Header.Get("Traceparent")) {
		ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(q.x.Start),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.scheme", schemeOf(r)),
			attribute.String("server.address", r.Host),
			attribute.String("client.address", q.x.ClientIP.String()),
			attribute.String("user_agent.original", r.UserAgent()),
			// A copy: a new ID points into the request's state, which the
			// exporter's queue would otherwise keep alive with the span.
			attribute.String("gatehouse.request_id", strings.Clone(q.x.RequestID)),
		))
	q.trace.span = span
	if sc := span.SpanContext(); sc.IsValid() {
		q.x.TraceParent = formatTraceParent(sc)
	}
	ctx = context.WithValue(ctx, spanStateKey{}, &q.trace)
	return r.WithContext(ctx)
}

// endSpan records what was decided and ends the server span.
func (q *request) endSpan(r *http.Request, status int) {
	span := q.trace.span
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, attribute.Int("http.response.status_code", status))
	if q.x.Path != "" {
		attrs = append(attrs, attribute.String("url.path", q.x.Path))
	}
	if op := q.match.Op; op != nil {
		span.SetName(r.Method + " " + op.Template)
		attrs = append(attrs, attribute.String("http.route", op.Template),
			attribute.String("gatehouse.api", op.API.Name), attribute.String("gatehouse.operation", op.Name))
	}
	if p := q.rec.Principal; p != nil {
		attrs = append(attrs, attribute.String("gatehouse.credential", p.Credential.String()),
			attribute.String("enduser.id", p.Subject))
		if p.Consumer != "" {
			attrs = append(attrs, attribute.String("gatehouse.consumer", p.Consumer))
		}
	}
	if q.rec.Denial != "" {
		attrs = append(attrs, attribute.String("gatehouse.denial", q.rec.Denial))
		span.AddEvent("gatehouse.denied", trace.WithAttributes(attribute.String("gatehouse.reason", q.rec.Denial)))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}

func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// formatTraceParent writes a span context as a version 00 traceparent.
func formatTraceParent(sc trace.SpanContext) string {
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := "00"
	if sc.IsSampled() {
		flags = "01"
	}
	return "00-" + tid.String() + "-" + sid.String() + "-" + flags
}

// tracedStep wraps a policy step: when the step passes the request on, an
// event says so (with the caller's identity for authentication); when it
// refuses, an event carries the refusal's reason.
// bit is the step's own bit in spanState.passed.
func tracedStep(name string, bit uint32, s policy.Step) policy.Step {
	allowEvent := "gatehouse." + name
	return func(next policy.Handler) policy.Handler {
		passed := policy.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if st, ok := r.Context().Value(spanStateKey{}).(*spanState); ok {
				st.passed |= bit
				attrs := []attribute.KeyValue{attribute.String("gatehouse.outcome", "allow")}
				if p := policy.PrincipalFrom(r.Context()); p != nil {
					attrs = append(attrs, attribute.String("gatehouse.credential", p.Credential.String()),
						attribute.String("enduser.id", p.Subject))
				}
				st.span.AddEvent(allowEvent, trace.WithAttributes(attrs...))
			}
			return next.ServeHTTP(w, r)
		})
		inner := s(passed)
		return policy.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			err := inner.ServeHTTP(w, r)
			if err == nil {
				return nil
			}
			if st, ok := r.Context().Value(spanStateKey{}).(*spanState); ok && st.passed&bit == 0 {
				pe := policy.AsError(err)
				st.span.AddEvent(allowEvent, trace.WithAttributes(
					attribute.String("gatehouse.outcome", "deny"),
					attribute.String("gatehouse.reason", pe.Reason),
					attribute.Int("http.response.status_code", pe.Status)))
			}
			return err
		})
	}
}

// tracedTransport makes a client span of every upstream attempt and sends
// its context to the backend as traceparent, so that the backend's spans
// are children of the gateway's.
type tracedTransport struct {
	next     http.RoundTripper
	tracer   trace.Tracer
	spanName string
	backend  string
}

func (t *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), t.spanName, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.full", req.URL.Scheme+"://"+req.URL.Host+req.URL.EscapedPath()),
			attribute.String("gatehouse.backend", t.backend),
		))
	defer span.End()
	if p := req.URL.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			span.SetAttributes(attribute.Int("server.port", n))
		}
	}
	// A RoundTripper must not modify its request: send a copy whose
	// headers carry this span's context.
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	traceContext.Inject(ctx, propagation.HeaderCarrier(out.Header))
	res, err := t.next.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "upstream request failed")
		span.SetAttributes(attribute.String("error.type", errorType(ctx, err)))
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	if res.StatusCode >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(res.StatusCode))
	}
	return res, nil
}

func errorType(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "canceled"
	}
	return "transport"
}

// traceIDOf returns the trace ID of a version 00 traceparent (no copy).
func traceIDOf(tp string) string {
	if len(tp) != 55 {
		return ""
	}
	return tp[3:35]
}
