package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// Gateway serves requests with the current snapshot. Apply swaps in a new
// snapshot atomically; requests in flight keep the one they started with.
type Gateway struct {
	rt   *Runtime
	snap atomic.Pointer[Snapshot]
}

// New returns a gateway with no snapshot; it answers 503 until Apply.
// Without rt.Upstreams it makes one (without metrics), which the caller
// closes with rt.Upstreams.Close.
func New(rt *Runtime) *Gateway {
	rt.ensurePolicyState()
	if rt.Upstreams == nil {
		rt.Upstreams = NewUpstreams(rt.Logger, rt.Metrics)
	}
	return &Gateway{rt: rt}
}

// Runtime returns the gateway's run-time state.
func (g *Gateway) Runtime() *Runtime { return g.rt }

// Snapshot returns the snapshot being served, or nil before the first Apply.
func (g *Gateway) Snapshot() *Snapshot { return g.snap.Load() }

// Load compiles doc and, if it compiles, makes it the served snapshot.
// On failure the served snapshot is unchanged and the diagnostics say why.
func (g *Gateway) Load(ctx context.Context, doc *config.Document) (*Snapshot, config.Diagnostics) {
	s, diags := Compile(ctx, doc, g.rt)
	if diags != nil {
		g.release(g.snap.Load())
		return nil, diags
	}
	for _, apply := range s.commits {
		apply()
	}
	s.commits = nil
	g.applyUpstreams(s)
	s.bindMembers(g.rt.Instances, g.rt.Logger)
	old := g.snap.Swap(s)
	old.unbindMembers()
	g.release(s)
	return s, nil
}

// release frees run-time state that the kept snapshot no longer uses: key
// sets of removed identity providers and transports of changed backends.
func (g *Gateway) release(keep *Snapshot) {
	g.retainUpstreams(keep)
	if keep == nil {
		if g.rt.KeySets != nil {
			g.rt.KeySets.Retain(nil)
		}
		return
	}
	if g.rt.KeySets != nil {
		g.rt.KeySets.Retain(keep.keySets)
	}
	if g.rt.Transports != nil {
		g.rt.Transports.Retain(keep.transportKeys)
	}
	if g.rt.BackendIdentity != nil {
		g.rt.BackendIdentity.retain(keep)
	}
	g.releasePolicies(keep)
	g.releaseObserve(keep)
}

// request is the per-request state, allocated once. It is also the
// request's context (the server's, wrapped): it carries the exchange and
// the forwarding step's 1xx hook itself, instead of a context value
// allocated for each.
type request struct {
	context.Context // the server's request context
	x               policy.Exchange
	rec             policy.Record
	rw              responseWriter
	match           Match
	cause           error     // why the request was refused, for the access line
	trace           spanState // used only when tracing is on
	ids             idBuf     // a new request ID and traceparent (q.x's strings point into it)
	// names are the h1.NameBits of the client's header names as the
	// server built the header (every bit: not known). No step changes
	// the Connection, Upgrade or Te fields (the configuration refuses
	// transforms of them), so for those names they hold all request long;
	// for the others, until a step changes the header
	// (x.RequestHeaderChanged).
	names uint64
	fwd   forwardState
	in    http.Request // the server's request with this state as its context
	out   http.Request // the forwarding step's outgoing request
}

// requestKey is the context key that finds the request's state.
type requestKey struct{}

// h1Writer is what h1's ResponseWriter tells of the request it answers.
type h1Writer interface {
	Arrival() time.Time  // when the server read the request's head
	HeaderNames() uint64 // the h1.NameBits of the names of the request's header as it came
}

// arrival returns when the server read the request's head, when it says
// (h1 does, saving a reading of the clock), or now; and the h1.NameBits
// of the names in the request's header as the server built it, when it
// says (h1 does), or every bit: a name whose bit is missing is not in the
// header, and needs no lookup (a small map's lookup of a missing name
// compares it with each of its slots: some 130 instructions).
func arrival(w http.ResponseWriter) (time.Time, uint64) {
	if a, ok := w.(h1Writer); ok {
		if t := a.Arrival(); !t.IsZero() {
			return t, a.HeaderNames()
		}
	}
	return time.Now(), namesUnknown
}

// namesUnknown is a request's header names when h1 did not parse it
// (Go's server did: a TLS listener, HTTP/2, or a connection h1 handed
// over): every bit set, so that clientMayHave says look.
const namesUnknown = ^uint64(0)

// The h1.NameBits of fields the gateway looks for in a client's header.
var (
	traceparentBit = h1.NameBit("Traceparent")
	connectionBit  = h1.NameBit("Connection")
	teBit          = h1.NameBit("Te")
)

// clientMayHave reports whether the client's header may hold a field
// whose h1.NameBit is bit: one of those that no step changes (see
// request.names). False is sure; true means look.
func clientMayHave(r *http.Request, bit uint64) bool {
	if q, ok := r.Context().(*request); ok {
		return q.names&bit != 0
	}
	return true
}

// Value answers the keys of the request's own values, and asks the
// server's context for the others. The keys are told apart by their
// types (each key is the one value of its type): a comparison of key
// with each would call the runtime's interface equality for the one
// that matches.
func (q *request) Value(key any) any {
	switch key.(type) {
	case policy.ExchangeKeyType:
		return &q.x
	case h1.InformationalKeyType:
		return h1.Informational(&q.fwd)
	case h1.FieldsKeyType:
		if q.fwd.fields == nil {
			return nil
		}
		return &q.fwd.fields
	case h1.FieldFilterKeyType:
		if q.fwd.fields == nil {
			return nil
		}
		return q.fwd.filter
	case h1.RawHeadKeyType:
		if !q.fwd.rawOn {
			return nil
		}
		return &q.fwd.raw
	case requestKey:
		return q
	case upstream.BodyReadLimiterKeyType:
		if q.rw.reqBody == nil {
			return nil
		}
		return &q.rw
	case policy.PrincipalKeyType, policy.UpstreamPathKeyType:
		// The caller is in q.rec (PrincipalFrom looks there first); a
		// WithPrincipal value, or a transform's upstream path, would be in
		// a context derived from q.
		return nil
	}
	return q.Context.Value(key)
}

// exchangeOf is policy.ExchangeFrom for a context that is most often
// the request's state itself (the forwarding step's and the transport's
// requests carry it): a type assertion instead of a Value call.
func exchangeOf(ctx context.Context) *policy.Exchange {
	if q, ok := ctx.(*request); ok {
		return &q.x
	}
	return policy.ExchangeFrom(ctx)
}

// principalOf is policy.PrincipalFrom the same way: the request's state
// holds the caller in its record (a WithPrincipal value would be in a
// context derived from it).
func principalOf(ctx context.Context) *identity.Principal {
	if q, ok := ctx.(*request); ok {
		return q.rec.Principal
	}
	return policy.PrincipalFrom(ctx)
}

// upstreamPathOf is policy.UpstreamPathFrom the same way: a transform
// that sets an upstream path derives a context from the request's state,
// which holds none itself.
func upstreamPathOf(ctx context.Context) (policy.UpstreamPath, bool) {
	if _, ok := ctx.(*request); ok {
		return policy.UpstreamPath{}, false
	}
	return policy.UpstreamPathFrom(ctx)
}

// ServeHTTP is the front of the data plane.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start, names := arrival(w)
	s := g.snap.Load()
	if s == nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"type":"https://gatehouse.dev/problems/unavailable","title":"Service unavailable","status":503,"detail":"The gateway has no configuration yet."}`)
		return
	}
	if m := g.rt.Metrics; m != nil {
		m.InFlight().Inc()
		defer m.InFlight().Dec()
	}
	st := &s.settings
	q := &request{Context: r.Context()}
	q.rw = responseWriter{ResponseWriter: w}
	q.x.Start = start
	q.names = names
	q.x.Record = &q.rec
	// The client's request ID and traceparent, looked up only when their
	// names may be in the header (no step has changed it yet).
	var idIn, parentIn string
	if names&st.requestIDBit != 0 {
		idIn = firstValue(r.Header, st.requestIDHeader)
	}
	if names&traceparentBit != 0 {
		parentIn = firstValue(r.Header, "Traceparent")
	}
	q.x.RequestID, q.x.TraceParent = requestIDs(idIn, parentIn, &q.ids)
	q.x.Peer = remoteAddr(r)
	q.x.ClientIP = clientIP(r, st, q.x.Peer)
	q.rw.id[0], q.rw.idName, q.rw.idPending = q.x.RequestID, &st.requestIDHeader, true
	q.rw.x, q.x.DeferFields = &q.x, true
	if r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || r.ProtoMinor == 0 && names == namesUnknown) {
		// Go's server has already dropped a Content-Length sent along
		// with Transfer-Encoding, so the two cannot be told apart here.
		// RFC 9112 §6.1: after such a request the connection MUST be
		// closed, lest an upstream proxy that framed it by
		// Content-Length desynchronize; close after every chunked one.
		// On HTTP/1.0 Go's server (the TLS listeners', and h1's
		// fallback for a connection that offered a WebSocket upgrade)
		// ignores Transfer-Encoding and drops the field, framing the
		// request by its Content-Length: the chunks after it would be
		// read as a request of their own. RFC 9112 §6.1 makes such
		// framing faulty and the connection closed: close after every
		// HTTP/1.0 request Go's server parsed (h1 refuses it with 400).
		w.Header().Set("Connection", "close")
	}

	// The request with q as its context, in q: WithContext's copy is
	// made on the stack and copied here, not allocated on its own.
	q.in = *r.WithContext(q)
	r = &q.in
	if s.tracer != nil {
		r = q.startSpan(s.tracer, r)
	}
	err := g.serve(&q.rw, r, s, q)
	if err != nil {
		pe := policy.AsError(err)
		q.rec.Denial = pe.Reason
		q.cause = pe.Cause
		if q.rw.status == 0 {
			renderError(&q.rw, r, pe)
		}
	}
	g.finish(s, q, r, start)
	if q.rw.abort {
		panic(http.ErrAbortHandler) // close the connection, send nothing more
	}
	q.rw.putFields() // if nothing was written, the server sends a 200 of its own with them
}

func (g *Gateway) serve(w *responseWriter, r *http.Request, s *Snapshot, q *request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				// The proxy gave up on a response it had started (the
				// backend or the client went away). Log the request, then
				// abort the connection (ServeHTTP re-panics).
				q.rw.abort = true
				if q.rec.Denial == "" {
					q.rec.Denial = "response_aborted"
					if r.Context().Err() != nil || errors.Is(q.cause, errWritingToClient) {
						// The server cancelled the request (its client went
						// away), or a write to the client failed.
						q.rec.Denial = "client_closed"
					}
				}
				err = nil
				return
			}
			g.rt.Logger.Error("panic serving request", "request_id", q.x.RequestID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = &policy.Error{Status: http.StatusInternalServerError, Type: "internal", Title: "Internal error",
				Detail: "The gateway failed to handle the request.", Reason: "panic", Cause: fmt.Errorf("panic: %v", v)}
		}
	}()
	st := &s.settings
	if len(r.RequestURI) > st.maxURI {
		return policy.URITooLong(st.maxURI)
	}
	if perr := checkDeclaredLength(r); perr != nil {
		return perr
	}
	raw := requestPath(r)
	path, escaped, perr := normalizePath(raw, st.paths)
	if perr != nil {
		return perr
	}
	q.x.Path, q.x.EscapedPath = path, escaped
	if served, err := s.serveWellKnown(w, r, path); served {
		return err
	}
	if !validHost(r.Host) {
		// RFC 9112 §3.2: 400. Routed, "api.example.com:80:80" reached the
		// API for every host while a backend reading the host up to its
		// first colon took it for api.example.com.
		return policy.BadRequest("bad_host", "The Host is not a valid host name or address with an optional port.")
	}
	if !s.router.Match(r.Host, r.Method, path, &q.match) {
		return policy.NotFound()
	}
	if q.match.Op == nil {
		return policy.MethodNotAllowed(q.match.Allow)
	}
	if q.match.Op.API.CaseInsensitivePaths {
		// Authorize and forward the path the API matched.
		q.x.Path, q.x.EscapedPath = lowerASCII(path), lowerEscaped(escaped)
	}
	q.x.Params = q.match.params()
	return q.match.Op.handler.ServeHTTP(w, r)
}

// requestPath returns the path of the request target as the client sent
// it, still percent-encoded.
func requestPath(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		// absolute-form (GET http://host/path) or a request built in a test
		return r.URL.EscapedPath()
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] == '?' {
			return uri[:i]
		}
	}
	return uri
}

func (g *Gateway) finish(s *Snapshot, q *request, r *http.Request, start time.Time) {
	d := time.Since(start)
	status := q.rw.status
	if status == 0 {
		status = http.StatusOK
	}
	op := q.match.Op
	rm := s.notFound
	if op != nil {
		rm = op.metrics
	}
	if rm != nil {
		rm.Observe(status, d.Seconds())
	}
	end := start.Add(d)
	if op != nil {
		op.stats.ObserveExchange(status, d, exchangeOutcome(&q.rec), end)
	} else {
		s.notFoundStats.ObserveEnded(status, d, end)
		if m := g.rt.Metrics; m != nil && q.rec.Denial != "" {
			// Refused before an operation was chosen: bad path, URI too
			// long, no route, wrong method. Reasons are a fixed set.
			m.Rejected.WithLabelValues(q.rec.Denial).Inc()
		}
	}
	if q.trace.span != nil {
		q.endSpan(r, status)
	}
	if s.anomalies != nil {
		g.observeAnomalies(s, q, op, status, end)
	}
	if g.rt.AccessLog == nil || !s.settings.accessLog {
		return
	}
	// On the stack: Log keeps none of it (a line is formatted before Log
	// returns), which saves a tenth of the request state's size.
	var line observe.Access
	a := &line
	a.Error = q.cause
	a.Time = start
	a.RequestID = q.x.RequestID
	a.TraceID = traceIDOf(q.x.TraceParent)
	a.Method = r.Method
	a.Path = q.x.Path
	if a.Path == "" {
		a.Path = "(rejected)"
	}
	a.Status = status
	a.Duration = d
	a.BytesOut = q.rw.written
	a.ClientIP = q.x.ClientIP
	if op != nil {
		a.API, a.Operation = op.API.Name, op.Name
	}
	a.Upstream, a.UpstreamDuration = q.rec.Upstream, q.rec.UpstreamDuration
	a.Attempts = q.rec.Attempts
	if a.Error == nil {
		a.Error = q.rec.Cause
	}
	if p := q.rec.Principal; p != nil {
		a.Credential, a.Subject, a.Consumer = p.Credential.String(), p.Subject, p.Consumer
	}
	a.Denial = q.rec.Denial
	g.rt.AccessLog.Log(a)
}

// authFailure reports whether the gateway refused a request's
// credentials (401) or its authorization (403, forbidden:REASON): not a
// backend's own 401 or 403, which may be its business ("not your
// order"), nor an IP list's or a CORS refusal.
func authFailure(rec *policy.Record, status int) bool {
	if rec.UpstreamStatus != 0 || rec.Denial == "" {
		return false
	}
	switch status {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		return strings.HasPrefix(rec.Denial, "forbidden:")
	}
	return false
}

// exchangeOutcome describes the upstream exchange of a finished request
// for the statistics the suggestions read.
func exchangeOutcome(rec *policy.Record) observe.Exchange {
	x := observe.Exchange{Upstream: rec.UpstreamDuration}
	switch {
	case rec.UpstreamStatus != 0:
		x.Outcome = observe.Answered
	case rec.Denial == "":
	case rec.Denial == reasonUpstreamTimeout:
		x.Outcome = observe.TimedOut
	case rec.Denial == reasonConcurrencyLimit:
		x.Outcome = observe.Limited
	case rec.Denial == reasonClientClosed && rec.UpstreamDuration > 0:
		x.Outcome = observe.Abandoned // an attempt had started
	}
	return x
}

// The refusal reasons exchangeOutcome looks for.
var (
	reasonUpstreamTimeout  = upstream.ErrTimeout.String()
	reasonConcurrencyLimit = upstream.ErrConcurrencyLimit.String()
	reasonClientClosed     = "client_closed"
)

// observeAnomalies tells the anomaly detector about a finished request.
func (g *Gateway) observeAnomalies(s *Snapshot, q *request, op *Operation, status int, end time.Time) {
	o := anomaly.Observation{
		Time: end, ClientIP: q.x.ClientIP, Principal: q.rec.Principal,
		Status: status, Path: q.x.Path, AuthFailure: authFailure(&q.rec, status),
	}
	if op != nil {
		o.API, o.Operation, o.Sensitive = op.API.Name, op.Name, op.sensitive
	}
	g.rt.Anomalies.Observe(s.anomalies, &o)
}

// clientIP returns the address of the client: the peer, or, when the peer
// is a trusted proxy, the right-most address in X-Forwarded-For that is not
// itself a trusted proxy.
func clientIP(r *http.Request, st *settings, peer netip.Addr) netip.Addr {
	if !st.isTrusted(peer) {
		return peer
	}
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		list := values[i]
		for list != "" {
			j := lastIndexByte(list, ',')
			item := list[j+1:]
			list = list[:max(j, 0)]
			a, err := netip.ParseAddr(trimSpace(item))
			if err != nil {
				return peer // a malformed chain is not believed past this point
			}
			a = a.Unmap()
			if !st.isTrusted(a) {
				return a
			}
			peer = a
		}
	}
	return peer
}

// ClientAddr returns the address of r's client as the access log records
// it: the peer, or, when the peer is one of server.trusted_proxies, the
// right-most address in X-Forwarded-For that is not (the invalid Addr
// when r has no usable peer address). The admin listener's dashboard
// counts sign-ins in progress by it, so that people behind one reverse
// proxy are not counted as one.
func (s *Snapshot) ClientAddr(r *http.Request) netip.Addr {
	return clientIP(r, &s.settings, remoteAddr(r))
}

// firstValue is Header.Get for a canonical name k, without
// canonicalizing it again.
func firstValue(h http.Header, k string) string { return firstOf(h[k]) }

func remoteAddr(r *http.Request) netip.Addr {
	if ap, ok := h1.PeerAddr(r.Context()); ok {
		return ap.Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

func (st *settings) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range st.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func asPathError(err error, target any) bool { return errors.As(err, target) }
