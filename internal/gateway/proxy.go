package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// proxyHandler is the last step of every operation of an API: it forwards
// the request to an instance of the API's backend.
type proxyHandler struct {
	api      *API
	backend  *backend
	rp       *httputil.ReverseProxy // protocol upgrades only
	tr       http.RoundTripper      // the upstream.RoundTripper
	settings *settings
	logger   *slog.Logger
	names    identityHeaderNames
	// direct: the transport is upstream.Transport itself, not under the
	// tracing wrapper (which sets the traceparent of its own span in the
	// header map) nor another transport. Then the gateway's fields go to
	// it as h1.Fields instead of into the outgoing header map (it writes
	// them, with h1, or sets them in a copy of the map, for net/http; any
	// other transport would drop them); its responses hold no hop-by-hop
	// field, so forward need not look for them; and a plain-HTTP
	// backend's response fields can come as an h1.RawHead.
	direct bool
}

type identityHeaderNames struct {
	subject, issuer, groups, roles, scopes, consumer, credential string
	prefix                                                       string // the prefix they were made with
}

func (c *compiler) proxy(api *API, be *backend, t config.Timeouts) policy.Handler {
	st := &c.snap.settings
	pfx := st.identityPrefix
	p := &proxyHandler{
		api:      api,
		backend:  be,
		settings: st,
		logger:   c.rt.Logger,
		names: identityHeaderNames{
			subject:    http.CanonicalHeaderKey(pfx + "Subject"),
			issuer:     http.CanonicalHeaderKey(pfx + "Issuer"),
			groups:     http.CanonicalHeaderKey(pfx + "Groups"),
			roles:      http.CanonicalHeaderKey(pfx + "Roles"),
			scopes:     http.CanonicalHeaderKey(pfx + "Scopes"),
			consumer:   http.CanonicalHeaderKey(pfx + "Consumer"),
			credential: http.CanonicalHeaderKey(pfx + "Credential"),
			prefix:     pfx,
		},
	}
	base := c.traceTransport(be, api.Backend)
	_, p.direct = base.(*upstream.Transport)
	tr := upstream.NewRoundTripper(be.pool, newTimedTransport(base, be.metrics),
		upstream.ExchangeOptions{Request: t.Request, Attempt: t.UpstreamAttempt, Record: recordUpstream})
	p.tr = tr
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      tr,
		ErrorHandler:   p.errorHandler,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       slog.NewLogLogger(c.rt.Logger.Handler(), slog.LevelWarn),
		BufferPool:     bufferPool,
	}
	return p
}

func (p *proxyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	if err := wrapBody(w, r, p.settings.bodyReadBy); err != nil {
		return err
	}
	if clientMayHave(r, connectionBit) && isUpgrade(r.Header) && !upgradeToWebSocket(r.Header) {
		// Only WebSocket is tunnelled. Another protocol (h2c above all:
		// its streams would reach the backend past authentication, the
		// access log and the rate limits) is not offered to the backend:
		// the request goes on as a plain one.
		dropUpgrade(r.Header)
	}
	if clientMayHave(r, connectionBit) && isUpgrade(r.Header) {
		// WebSocket: ReverseProxy hijacks the connection and copies both
		// ways after a 101.
		tw := &tunnelWriter{ResponseWriter: w}
		if d := p.backend.tunnelIdle; d > 0 {
			tw.t = &tunnel{idle: d, x: policy.ExchangeFrom(r.Context())}
			defer tw.t.stop()
			r = r.WithContext(context.WithValue(r.Context(), tunnelKey{}, tw.t))
		}
		p.rp.ServeHTTP(tw, r)
		if sw := gatewayWriter(w); tw.hijacked && sw != nil && sw.status == 0 {
			// ReverseProxy writes the 101 on the hijacked connection:
			// the access line learns it here.
			sw.status = http.StatusSwitchingProtocols
		}
		return nil
	}
	p.forward(w, r)
	return nil
}

// rewrite builds the outgoing request of a protocol upgrade.
// httputil.ReverseProxy has already removed hop-by-hop headers (including
// those the client named in Connection) and the client's Forwarded and
// X-Forwarded-For/Host/Proto. The instance (scheme and host) is chosen per
// attempt by the upstream RoundTripper.
func (p *proxyHandler) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.Host = ""
	x := policy.ExchangeFrom(in.Context())
	p.setURL(out.URL, in, x)
	stripUntrusted(out.Header, p.settings.identityFold)
	cf := p.lookupClientFields(in.Header, out.Header, true)
	p.setHeaders(out.Header, in, x, x != nil && p.settings.isTrusted(x.Peer), policy.PrincipalFrom(in.Context()), new([5]string), nil, &cf)
}

// setURL sets the path and query of the outgoing request: the path the
// gateway authorized (or a transform's), the query as the client sent it.
func (p *proxyHandler) setURL(u *url.URL, in *http.Request, x *policy.Exchange) {
	if x != nil {
		u.Path = x.Path
		u.RawPath = ""
		if x.EscapedPath != x.Path {
			u.RawPath = x.EscapedPath
		}
	}
	if up, ok := upstreamPathOf(in.Context()); ok { // set by a transform
		u.Path, u.RawPath = up.Path, up.RawPath
	}
	u.RawQuery = in.URL.RawQuery
}

// setHeaders sets the gateway's fields for the outgoing request whose
// header h holds what outHeader kept of the client's (hop-by-hop,
// forwarding and identity fields already removed): X-Forwarded-*, the
// caller's credential removed (unless passed on), the verified identity,
// the backend credential, the request ID and the traceparent. x is the
// request's exchange (nil outside the gateway), trustedPeer whether its
// peer is a trusted proxy (whose forwarding fields are kept); principal
// the authenticated caller (nil: anonymous).
//
// With fs nil the fields are set in h, their values capped slices of
// vals (one backing array for them all, in the request's forwarding
// state). With fs, h is the client's own header, which the proxy filters
// as the h1.FieldFilter (directFields added Omit fields for the rest): h
// is only read, the fields are appended to fs for the h1 transport to
// write after h (h1.Fields replace h's fields of the same names), and a
// removal is an Omit field too. cf is
// what setHeaders reads of the client's fields (outHeader or
// lookupClientFields noted it). It returns how many of the client's
// fields it removed: the credential the gateway consumed.
func (p *proxyHandler) setHeaders(h http.Header, in *http.Request, x *policy.Exchange, trustedPeer bool, principal *identity.Principal, vals *[5]string, fs *h1.Fields, cf *clientFields) (consumed int) {
	// Every field set here is Checked (h1.Field): the names are the
	// gateway's own or the request ID's, which the configuration refuses
	// to be a framing field; the values are the client's address, the
	// Host and forwarded fields a server checked as it read them (h1's
	// and net/http's both refuse control characters), fixed words, a
	// request ID and traceparent checked or made by requestIDs, and the
	// identity values identityValue and joinList made safe.
	set := func(i int, name, v string) {
		if fs != nil {
			*fs = append(*fs, h1.Field{Name: name, Value: v, Checked: true})
			return
		}
		vals[i] = v
		h[name] = vals[i : i+1 : i+1]
	}
	del := func(name string) {
		if fs != nil {
			*fs = append(*fs, h1.Field{Name: name, Omit: true})
			return
		}
		delete(h, name)
	}
	// What httputil.ProxyRequest.SetXForwarded does: the peer appended
	// to X-Forwarded-For (after a trusted peer's), X-Forwarded-Host the
	// requested host, X-Forwarded-Proto http or https.
	if ip, ok := addrHost(in.RemoteAddr); ok {
		if prior := cf.xff; trustedPeer && len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		set(0, "X-Forwarded-For", ip)
	} else {
		del("X-Forwarded-For")
	}
	fwdHost, fwdProto := in.Host, "http"
	if in.TLS != nil {
		fwdProto = "https"
	}
	if trustedPeer {
		if v := cf.xfProto; v == "http" || v == "https" {
			fwdProto = v
		}
		if v := cf.xfHost; v != "" {
			fwdHost = v
		}
	}
	set(1, "X-Forwarded-Host", fwdHost)
	set(2, "X-Forwarded-Proto", fwdProto)

	if !p.api.PassCredential {
		// The names are canonical (the API key's at compile time): index
		// the map instead of canonicalizing them per request.
		if v := cf.authorization; len(v) > 7 && (v[:7] == "Bearer " || strings.EqualFold(v[:7], "bearer ")) {
			del("Authorization")
			consumed++
		}
		if cf.apiKey {
			del(p.settings.apiKeyHeader)
			consumed++
		}
	}
	if principal != nil {
		p.setIdentity(h, fs, principal)
	}
	if cr := p.backend.credential; cr != nil {
		cr.set(h, fs, principal)
	}
	if x != nil {
		set(3, p.settings.requestIDHeader, x.RequestID) // canonical
		if x.TraceParent != "" {
			set(4, "Traceparent", x.TraceParent)
		}
	}
	var sent h1.Fields
	if fs != nil {
		sent = *fs
	}
	if !sent.SendsOver(cf.userAgent, "User-Agent") {
		// The transport adds none: an empty value, which the h1
		// transport skips and net/http's take for "send none".
		if fs != nil {
			*fs = append(*fs, h1.Field{Name: "User-Agent", Checked: true})
		} else {
			h["User-Agent"] = nil
		}
	}
	return consumed
}

// setFieldValues sets name to vs, in h or, with fs, as Checked fields of
// fs: its callers pass the identity fields (names from the validated
// prefix, values made safe by identityValues) and a backend credential
// (a name the configuration keeps off the framing fields, a minted
// token's value).
func setFieldValues(h http.Header, fs *h1.Fields, name string, vs []string) {
	if fs == nil {
		h[name] = vs
		return
	}
	for _, v := range vs {
		*fs = append(*fs, h1.Field{Name: name, Value: v, Checked: true})
	}
}

func (p *proxyHandler) setIdentity(h http.Header, fs *h1.Fields, pr *identity.Principal) {
	n := &p.names
	v := pr.HeaderValues(n.identityLines) // the method value does not escape: no allocation
	if fs != nil && v.Lines != "" && v.LinesPrefix == n.prefix {
		// The principal's lines, made once (by a proxy with these names):
		// one Field for the transport to copy. The client's fields of
		// these names are left out by the filter (untrusted).
		*fs = append(*fs, h1.Field{Value: v.Lines, Lines: true, Checked: true})
		return
	}
	n.each(v, func(name string, vs []string) {
		if vs != nil {
			setFieldValues(h, fs, name, vs) // the names are canonical (compile time)
		}
	})
}

// each calls fn with each identity field's name and v's values for it,
// in the order the fields are sent.
func (n *identityHeaderNames) each(v *identity.HeaderValues, fn func(name string, vs []string)) {
	fn(n.credential, v.Credential)
	fn(n.subject, v.Subject)
	fn(n.issuer, v.Issuer)
	fn(n.consumer, v.Consumer)
	fn(n.groups, v.Groups)
	fn(n.roles, v.Roles)
	fn(n.scopes, v.Scopes)
}

// identityLines is identityValues with the values as field lines of n's
// names too, in the order setIdentity sets them (each): Checked lines (names
// from the validated prefix, values made safe by identityValues).
func (n *identityHeaderNames) identityLines(pr *identity.Principal) *identity.HeaderValues {
	v := identityValues(pr)
	var b []byte
	n.each(v, func(name string, vs []string) {
		for _, x := range vs {
			b = append(append(append(append(b, name...), ": "...), x...), "\r\n"...)
		}
	})
	v.Lines, v.LinesPrefix = string(b), n.prefix
	return v
}

// identityValues builds a principal's forwarded identity values once.
// Each is a one-element slice of capacity one: appending to a field
// copies it instead of writing into the shared array.
func identityValues(pr *identity.Principal) *identity.HeaderValues {
	one := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	v := &identity.HeaderValues{
		Credential: one(pr.Credential.String()),
		Subject:    one(identityValue(pr.Subject)),
		Issuer:     one(identityValue(pr.Issuer)),
		Consumer:   one(identityValue(pr.Consumer)),
	}
	if len(pr.Groups) > 0 {
		v.Groups = one(joinList(pr.Groups, ","))
	}
	if len(pr.Roles) > 0 {
		v.Roles = one(joinList(pr.Roles, ","))
	}
	if len(pr.Scopes) > 0 {
		v.Scopes = one(joinList(pr.Scopes, " "))
	}
	return v
}

func (p *proxyHandler) modifyResponse(res *http.Response) error {
	if x := exchangeOf(res.Request.Context()); x != nil && x.Record != nil {
		x.Record.UpstreamStatus = res.StatusCode
	}
	// The gateway sets the request ID on every response; drop the
	// backend's copy so there is exactly one.
	delete(res.Header, p.settings.requestIDHeader) // canonical (compile time)
	if res.StatusCode == http.StatusSwitchingProtocols {
		// A 101 has no body. With the length unknown (and the backend's
		// connection not reusable), Response.Write would add
		// "Connection: close" before the backend's "Connection: Upgrade",
		// which a WebSocket client may read first and refuse.
		res.Close, res.ContentLength = false, 0
		if t, ok := res.Request.Context().Value(tunnelKey{}).(*tunnel); ok {
			if rwc, ok := res.Body.(io.ReadWriteCloser); ok {
				res.Body = t.backendSide(rwc)
			}
		}
	}
	return nil
}

// errorHandler renders a failed upstream exchange. A client that went away
// gets nothing (there is no one to answer); the log says 499.
func (p *proxyHandler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var e *policy.Error
	var mbe *http.MaxBytesError
	var ue *upstream.Error
	var ne net.Error
	x := policy.ExchangeFrom(r.Context())
	switch {
	case errors.As(err, &mbe):
		e = policy.TooLarge(mbe.Limit)
		e.Cause = err
	case errors.As(err, &ue) && ue.Kind == upstream.ErrRequestBodyTimeout:
		// The client's body was too slow, not the backend: 408, and the
		// connection closes after it (the rest of the body is unread).
		// Before the check of the context: Go's server cancels it when
		// a read of the body ends at the deadline the exchange set.
		e = upstreamError(ue)
	case errors.Is(r.Context().Err(), context.Canceled):
		if x != nil && x.Record != nil {
			x.Record.Denial = reasonClientClosed
		}
		if sw := gatewayWriter(w); sw != nil {
			// No response: the server would otherwise send an implicit
			// 200 to a client that half-closed its side and still reads.
			sw.status = 499
			sw.abort = true
		}
		return
	case clientBodyError(w) != nil:
		e = policy.BadRequest("bad_request_body", "The request body could not be read.")
		e.Cause = clientBodyError(w)
	case errors.As(err, &ue):
		e = upstreamError(ue)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e = policy.GatewayTimeout(err)
	default:
		e = policy.BadGateway(err)
	}
	if x != nil && x.Record != nil {
		x.Record.Denial = e.Reason
		x.Record.Cause = err
	}
	if f := p.backend.failures; f != nil && e.Status >= 500 { // the backend's failures, not the client's
		f.Failed(e.Reason)
	}
	renderError(w, r, e)
	if e.Status == http.StatusRequestTimeout {
		// The rest of the body is not waited for. A read of it still
		// under way (net/http's transport reads it in a goroutine of its
		// own) ends at once, and the body is closed now: net/http's
		// server would otherwise read up to 256 KiB more of it, at the
		// client's pace, before it closes the connection.
		_ = http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
		if r.Body != nil {
			_ = r.Body.Close()
		}
	}
}

// addrHost returns the host of a server's RemoteAddr ("192.0.2.1:1234",
// "[2001:db8::1]:1234") as net.SplitHostPort does. An address with one
// colon, not in brackets (IPv4 and its port, the common case), is cut at
// it without SplitHostPort's other checks, which such an address from a
// server always passes (its host holds no brackets).
func addrHost(addr string) (string, bool) {
	if i := strings.IndexByte(addr, ':'); i > 0 && addr[0] != '[' && strings.IndexByte(addr[i+1:], ':') < 0 {
		return addr[:i], true
	}
	host, _, err := net.SplitHostPort(addr)
	return host, err == nil
}

// aLongTimeAgo is a deadline that has passed: a read under it fails at once.
var aLongTimeAgo = time.Unix(1, 0)

// upstreamError maps a failed exchange to the problem the client gets:
// 503 when the gateway refused to call the backend (no healthy instance,
// open circuit, concurrency limit), 504 when no response came in time,
// 502 when the backend could not be reached or failed, 408 when the
// deadline passed while the client's body was still awaited.
func upstreamError(ue *upstream.Error) *policy.Error {
	switch ue.Kind {
	case upstream.ErrRequestBodyTimeout:
		e := policy.RequestTimeout(ue.Kind.String(), "The request body did not arrive in time.", ue)
		e.Header = http.Header{"Connection": {"close"}}
		return e
	case upstream.ErrNoHealthyInstance:
		return policy.Unavailable(ue.Kind.String(), "The backend has no healthy instance.", ue)
	case upstream.ErrCircuitOpen:
		e := policy.Unavailable(ue.Kind.String(), "The backend is failing; calls to it are paused.", ue)
		e.Header = http.Header{"Retry-After": {strconv.Itoa(retryAfterSeconds(ue.RetryAfter))}}
		return e
	case upstream.ErrConcurrencyLimit:
		return policy.Unavailable(ue.Kind.String(), "The backend has too many requests in flight.", ue)
	case upstream.ErrTimeout:
		return policy.GatewayTimeout(ue)
	}
	return policy.BadGateway(ue)
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// clientBodyError returns why reading the client's request body failed,
// or nil. (The proxy hands the error handler its own copy of the request,
// whose body is wrapped, so the reader is found through the writer.)
func clientBodyError(w http.ResponseWriter) error {
	if sw := gatewayWriter(w); sw != nil && sw.reqBody != nil {
		return sw.reqBody.err
	}
	return nil
}

// identityValue is a subject, issuer or consumer as a field value that
// stands for it alone: '%', control characters (tab included) and DEL,
// and a space at either end (which a parser trims), are percent-encoded,
// so that "admin\x00", " admin" and "admin%00" each reach the backend as
// themselves, never as "admin". Most values have none and go as they
// are.
func identityValue(s string) string {
	// A space that is not ASCII at either end (U+00A0, U+0085, U+3000)
	// is one a backend's TrimSpace would remove: its bytes are encoded.
	head, tail := 0, len(s)
	if r, n := utf8.DecodeRuneInString(s); r >= utf8.RuneSelf && unicode.IsSpace(r) {
		head = n
	}
	if r, n := utf8.DecodeLastRuneInString(s); r >= utf8.RuneSelf && unicode.IsSpace(r) && len(s)-n >= head {
		tail = len(s) - n
	}
	escape := func(i int) bool {
		c := s[i]
		return c < 0x20 || c == 0x7f || c == '%' || c == ' ' && (i == 0 || i == len(s)-1) || i < head || i >= tail
	}
	i := 0
	for i < len(s) && !escape(i) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if escape(i) {
			writePercent(&b, s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// writePercent writes c percent-encoded.
func writePercent(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte("0123456789ABCDEF"[c>>4])
	b.WriteByte("0123456789ABCDEF"[c&15])
}

// joinList joins values with sep, percent-encoding in each value the
// separator, ',' and '%' so that a value cannot forge another.
func joinList(vs []string, sep string) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(sep)
		}
		for j := 0; j < len(v); j++ {
			c := v[j]
			switch {
			case c == '%' || c == ',' || c == ' ' || c < 0x20 || c == 0x7f:
				writePercent(&b, c)
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// timedTransport measures each upstream attempt, from sending the request
// to receiving the response headers.
type timedTransport struct {
	rt      http.RoundTripper
	hd      upstream.HeadDeadliner // rt, when it is one
	metrics interface{ Observe(float64) }
}

// newTimedTransport times rt's round trips into metrics. Whether rt takes
// a head deadline is asked once here, not per request (a type assertion
// that the runtime's cache has not learnt yet costs about 300
// instructions, and the cache learns it only after about a thousand).
func newTimedTransport(rt http.RoundTripper, metrics interface{ Observe(float64) }) *timedTransport {
	hd, _ := rt.(upstream.HeadDeadliner)
	return &timedTransport{rt: rt, hd: hd, metrics: metrics}
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.rt.RoundTrip(req)
	t.observe(req, start, err)
	return res, err
}

// RoundTripHeadDeadline implements upstream.HeadDeadliner when the
// wrapped transport does (the backend's own transport does for http://
// instances; a tracing wrapper does not), measuring the attempt as
// RoundTrip does, from now (the caller's reading of the clock).
func (t *timedTransport) RoundTripHeadDeadline(req *http.Request, now, deadline time.Time) (*http.Response, error) {
	if t.hd == nil {
		return nil, upstream.ErrNoHeadDeadline
	}
	res, err := t.hd.RoundTripHeadDeadline(req, now, deadline)
	if err != upstream.ErrNoHeadDeadline {
		t.observe(req, now, err)
	}
	return res, err
}

// observe records an attempt that started at start and ended with err:
// its time is the backend's, in the access line's upstream_ms and the
// backend's latency histogram, unless the attempt failed for the
// client's body (too slow: a 408; or the client left in the middle of
// it): a slow client would otherwise show as a slow backend, in the
// dashboard, and the suggestions would count a client that left while
// sending as one that gave up waiting for the backend.
func (t *timedTransport) observe(req *http.Request, start time.Time, err error) {
	if err != nil && req.Body != nil && upstream.EndedByClientBody(req) {
		return
	}
	d := time.Since(start)
	if x := exchangeOf(req.Context()); x != nil && x.Record != nil {
		x.Record.UpstreamDuration += d
	}
	if t.metrics != nil {
		t.metrics.Observe(d.Seconds())
	}
}

// bufferPool lends the proxy its copy buffers.
var bufferPool = &syncBufferPool{}

// copyBufferSize is the size of the proxy's copy buffers.
const copyBufferSize = 32 << 10

// syncBufferPool pools fixed-size arrays, so that putting a buffer back
// allocates nothing (a slice stored in a sync.Pool would).
type syncBufferPool struct{ p sync.Pool }

func (b *syncBufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return new([copyBufferSize]byte)[:]
}

func (b *syncBufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferSize {
		return
	}
	b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}
