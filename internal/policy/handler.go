// Package policy holds the steps of a request's chain: authentication,
// authorization, body limits and the like. Each step is built once, at
// compile time, from parsed options, and returns typed errors instead of
// writing error responses; the gateway renders every error in one place.
package policy

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Handler serves a request or returns an error for the gateway to render.
// A handler that has started writing a response must not return an error
// that would write another.
type Handler interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP calls f.
func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// Step wraps the next handler of a chain.
type Step func(next Handler) Handler

// Chain returns h wrapped by steps, the first step outermost.
func Chain(h Handler, steps ...Step) Handler {
	for i := len(steps) - 1; i >= 0; i-- {
		h = steps[i](h)
	}
	return h
}

// Exchange is what the gateway established about a request before its
// chain runs. It is created by the gateway, read by steps, and never
// modified after the chain starts, except for Record, the access-log
// sink, and the response fields a step leaves in it (DeferFields).
type Exchange struct {
	RequestID string
	// TraceParent is the W3C traceparent forwarded to the backend: the
	// client's when well formed, else a new one.
	TraceParent string
	// Peer is the address the request came from (the TCP peer); ClientIP
	// is the client's, which a trusted proxy's X-Forwarded-For gives.
	Peer     netip.Addr
	ClientIP netip.Addr
	// Path is the normalized, decoded path that was matched and authorized;
	// it is also what is forwarded.
	Path string
	// EscapedPath is Path with each segment percent-encoded canonically.
	EscapedPath string
	// Params holds the path parameters of the matched operation.
	Params Params
	// Start is when the gateway received the request.
	Start time.Time
	// Record collects what the chain decided, for the access log and metrics.
	Record *Record
	// rateLimit holds the response's RateLimit field value, so that the
	// field's slice needs no allocation of its own, and rateLimitBuf the
	// value's bytes when they fit (most often: one or two rules; the
	// value's string points into them, so an Exchange serves one request).
	// rateLimitPolicy is the RateLimit-Policy field's values (the step's,
	// shared) while the two fields wait in the exchange (DeferFields).
	rateLimit       [1]string
	rateLimitPolicy *[]string
	rateLimitBuf    [64]byte
	// DeferFields, set by the server of the exchange (the gateway), lets
	// a step leave its response fields in the exchange instead of setting
	// them in the header map (the RateLimit step does): the server sets
	// them there when the map is first asked for (PutFields), so that
	// what reads or changes the map sees them as if they had been set
	// then, or, when nothing asked for the map, writes them itself
	// (TakeFields).
	DeferFields bool
	// RequestHeaderChanged is set by a step that changes the request's
	// header map (a transform's request_headers): the server's record of
	// the names the client sent (h1's ResponseWriter.HeaderNames, which
	// the gateway uses to skip lookups of absent names) no longer holds.
	RequestHeaderChanged bool
}

// HoldsFields reports whether the exchange holds response fields.
func (x *Exchange) HoldsFields() bool { return x.rateLimitPolicy != nil }

// PutFields sets the response fields the exchange holds in h (once:
// then it holds none).
func (x *Exchange) PutFields(h http.Header) {
	if x.rateLimitPolicy != nil {
		h["Ratelimit-Policy"] = *x.rateLimitPolicy
		if x.rateLimit[0] != "" {
			h["Ratelimit"] = x.rateLimit[:1:1]
		}
		x.rateLimitPolicy = nil
	}
}

// TakeFields calls add with each response field the exchange holds, one
// value at a time, and forgets them: the caller writes them. Their names
// are canonical; their values are made of a rate limit's configured
// name (a token) and numbers.
func (x *Exchange) TakeFields(add func(name, value string)) {
	if p := x.rateLimitPolicy; p != nil {
		x.rateLimitPolicy = nil
		for _, v := range *p {
			add("Ratelimit-Policy", v)
		}
		if x.rateLimit[0] != "" { // empty: no limit was checked (Redis failed, on_failure allow)
			add("Ratelimit", x.rateLimit[0])
		}
	}
}

// Params are path parameters in template order.
type Params struct {
	Names  []string
	Values []string
}

// Get returns the value of the named parameter.
func (p Params) Get(name string) (string, bool) {
	for i, n := range p.Names {
		if n == name && i < len(p.Values) {
			return p.Values[i], true
		}
	}
	return "", false
}

// Record is the access-log sink of one request. Only the goroutine serving
// the request writes it, and each field has one writer: the step that
// established it.
type Record struct {
	Principal        *identity.Principal
	Denial           string // why the request was refused (e.g. invalid_token:expired)
	Upstream         string // the instance (scheme://host:port) of the last attempt
	UpstreamDuration time.Duration
	UpstreamStatus   int

	// Attempts is the number of upstream attempts (1 + retries).
	Attempts int
	// Cause is why the upstream exchange failed, for the log only.
	Cause error
}

// ExchangeKeyType is the type of ExchangeKey. A context that answers the key itself
// tells it by a type switch: comparing a key with ExchangeKey calls the
// runtime's interface equality.
type ExchangeKeyType struct{}

// ExchangeKey is the context key under which a request's context carries
// its *Exchange: WithExchange sets it, and a context type of the
// gateway's own may answer it itself.
var ExchangeKey any = ExchangeKeyType{}

// WithExchange returns ctx carrying x.
func WithExchange(ctx context.Context, x *Exchange) context.Context {
	return context.WithValue(ctx, ExchangeKey, x)
}

// ExchangeFrom returns the exchange of a request, or nil outside the gateway.
func ExchangeFrom(ctx context.Context) *Exchange {
	x, _ := ctx.Value(ExchangeKey).(*Exchange)
	return x
}

// PrincipalKeyType is the type of PrincipalKey. A context that answers the key itself
// tells it by a type switch: comparing a key with PrincipalKey calls the
// runtime's interface equality.
type PrincipalKeyType struct{}

// PrincipalKey is the context key under which WithPrincipal puts the
// authenticated caller. A context type of the gateway's own may answer it
// itself (with nil: under the gateway the caller is in the exchange's
// Record, and nothing below the gateway's context carries one), so that
// PrincipalFrom does not search the server's contexts for an anonymous
// request.
var PrincipalKey any = PrincipalKeyType{}

// WithPrincipal returns ctx carrying the authenticated caller.
func WithPrincipal(ctx context.Context, p *identity.Principal) context.Context {
	return context.WithValue(ctx, PrincipalKey, p)
}

// PrincipalFrom returns the authenticated caller, or nil for anonymous
// requests: the exchange's (where the authentication step records it
// under the gateway), else the one WithPrincipal put in ctx.
func PrincipalFrom(ctx context.Context) *identity.Principal {
	return principalIn(ctx, ExchangeFrom(ctx))
}

// principalIn is PrincipalFrom for a step that has ctx's exchange x
// already (nil: none).
func principalIn(ctx context.Context, x *Exchange) *identity.Principal {
	if x != nil && x.Record != nil && x.Record.Principal != nil {
		return x.Record.Principal
	}
	p, _ := ctx.Value(PrincipalKey).(*identity.Principal)
	return p
}
