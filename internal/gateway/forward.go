package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"golang.org/x/net/http/httpguts"
)

// forward sends r to the backend and copies the response to w. It does
// what httputil.ReverseProxy (with Rewrite = p.rewrite) did for requests
// that do not upgrade the protocol, with less work: the outgoing request
// is built once instead of cloned and trimmed, response fields are copied
// by slice, and the Content-Type is not parsed.
//
// Kept from ReverseProxy: hop-by-hop fields (and those Connection names)
// removed both ways, Te: trailers kept, 1xx responses forwarded, trailers
// (announced or not), a flush after every write of a streamed response,
// http.ErrAbortHandler when the response breaks off after its head.
// Not kept: a 101 from the backend is an error here (upgrades go through
// ReverseProxy), request trailers are not announced to the backend (their
// values were never sent).
func (p *proxyHandler) forward(w http.ResponseWriter, r *http.Request) {
	// Under the gateway, the forwarding state and the outgoing request
	// are in the request's state, whose context already answers
	// h1.InformationalKey with f: nothing more to allocate for them.
	var f *forwardState
	var out *http.Request
	q, ok := r.Context().Value(requestKey{}).(*request)
	if ok {
		f, out = &q.fwd, &q.out
		*out = *r
	} else {
		f = new(forwardState)
	}
	// Without f.mu: no round trip that could call f.Got1xxResponse is
	// under way yet (a transport calls it before its RoundTrip returns),
	// and a lock is a full barrier, which waits for every store before it.
	f.w = w
	if !ok {
		out = r.WithContext(context.WithValue(r.Context(), h1.InformationalKey, h1.Informational(f)))
	}
	f.url = url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, ForceQuery: r.URL.ForceQuery}
	x := exchangeOf(r.Context())
	p.setURL(&f.url, r, x)

	// out is one shallow copy of r with the fields of a client request
	// replaced (what Request.Clone plus ReverseProxy's edits produce,
	// without the deep copies: the incoming request's values are shared,
	// never changed).
	out.URL = &f.url
	out.Host = "" // the transport uses the instance's
	out.RequestURI = ""
	principal := principalOf(r.Context())
	trustedPeer := x != nil && p.settings.isTrusted(x.Peer)
	var fs *h1.Fields
	if p.direct && ok {
		// The gateway's fields go to the transport as h1.Fields (the
		// request's state answers h1.FieldsKey with them while the round
		// trip lasts), and p, as the h1.FieldFilter, leaves out the
		// client's fields it must not forward: the outgoing request shares
		// the client's header map, which nothing writes to, instead of a
		// copy, and the transport's pass over it is the only one.
		f.fields = f.fieldBuf[:0]
		fs = &f.fields
		f.filter = p
		out.Header = r.Header
		names := q.names
		if q.x.RequestHeaderChanged {
			names = namesUnknown
		}
		p.directFields(fs, r.Header, &f.client, trustedPeer, names)
	} else {
		extra := 6 // what setHeaders sets in the map, with up to seven identity fields and a backend credential
		if principal != nil {
			extra += 8
		}
		out.Header = p.outHeader(r.Header, extra, &f.client)
	}
	if consumed := p.setHeaders(out.Header, r, x, trustedPeer, principal, &f.vals, fs, &f.client); fs != nil && consumed == len(out.Header) {
		// The client's fields were only the credential the gateway
		// consumed (an API client often sends its token and nothing but
		// the Host): the transport would walk the map to send none of
		// it. The Omit fields setHeaders added keep nothing out then.
		out.Header = noClientFields
	}
	out.Trailer = nil
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil // nil Body for retries, as ReverseProxy does
	}
	if b, ok := r.Body.(*bodyReader); ok {
		// The transport may still read the body after the handler
		// returned (a response that came before the request was sent);
		// make such reads fail, as ReverseProxy's noopCloseReader does.
		defer b.detach()
	}

	hs := headerSetterOf(w)
	rs, _ := hs.(rawHeadSetter)
	if p.direct && ok && rs != nil {
		// The backend's fields go from the h1 transport to the h1 server
		// as lines, without a header map (the request's state answers
		// h1.RawHeadKey with f.raw while the round trip lasts), but for
		// its request ID: the gateway sets its own.
		f.raw.Omit = p.settings.requestIDHeader
		f.raw.Buffer(f.rawBuf[:])
		f.rawOn = true
	}
	res, err := p.tr.RoundTrip(out)
	f.fields = nil // no other round trip of the request is sent with them
	f.rawOn = false
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	if err != nil {
		p.errorHandler(w, r, err)
		return
	}
	if err := p.modifyResponse(res); err != nil {
		res.Body.Close()
		p.errorHandler(w, r, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		p.errorHandler(w, r, errSwitchWithoutUpgrade)
		return
	}

	var dst http.Header // w.Header(), asked for only when needed (see responseWriter)
	var contentType string
	if f.raw.Of(res) {
		// Refused only once the response is over (nothing has written
		// its head yet): there is nothing left to write then.
		// The request ID and the steps' fields, unless they are in the
		// map, in fieldBuf: the request's fields are sent.
		extra := h1.Fields(f.fieldBuf[:0])
		if rw, ok := w.(*responseWriter); ok {
			rw.takeFields(&extra)
		}
		rs.SetRawHead(&f.raw, extra)
		contentType = f.raw.ContentType()
	} else {
		dst = w.Header()
		if hs != nil {
			dst = adoptResponseHeader(hs, dst, res.Header, p.direct, p.settings.requestIDHeader)
		} else {
			copyResponseHeader(dst, res.Header)
		}
		contentType = firstValue(res.Header, "Content-Type")
	}
	announced := len(res.Trailer)
	if announced > 0 {
		if dst == nil {
			dst = w.Header()
		}
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		dst.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(res.StatusCode)

	var rc *http.ResponseController
	if res.ContentLength == -1 || isEventStream(contentType) {
		// Streamed: the head now, then every write as it comes (what
		// ReverseProxy's flush interval -1 does).
		rc = http.NewResponseController(w)
		_ = rc.Flush()
	}
	if err := p.copyBody(w, res.Body, rc); err != nil {
		res.Body.Close()
		if ok {
			q.cause = err // the access line says why the response broke off
		}
		if r.Context().Value(http.ServerContextKey) == nil {
			// Not under an http.Server, which would recover the panic:
			// like ReverseProxy, end the response quietly.
			p.logger.Warn("proxy: response body copy failed", "error", err)
			return
		}
		// The head is sent: all that is left is to abort the response.
		panic(http.ErrAbortHandler)
	}
	res.Body.Close() // now, to populate res.Trailer

	if len(res.Trailer) == 0 {
		if rc == nil && r.ProtoMajor == 1 && res.ContentLength >= 0 {
			// The whole response is written: send it now, so that the
			// client has it while the gateway writes the access line
			// and the metrics, not after. (Not for HTTP/2, where it
			// would cost a frame of its own to end the stream.) h1's
			// server has sent it already, at the last write, and this
			// finds nothing buffered; net/http's needs it.
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
		}
		return
	}
	if dst == nil {
		dst = w.Header()
	}
	// Force chunking, so that the server does not compute a length and
	// drop the trailers.
	if rc == nil {
		rc = http.NewResponseController(w)
	}
	_ = rc.Flush()
	if len(res.Trailer) == announced {
		for k, vs := range res.Trailer {
			addValues(dst, k, vs)
		}
		return
	}
	for k, vs := range res.Trailer {
		addValues(dst, http.TrailerPrefix+k, vs)
	}
}

var errSwitchWithoutUpgrade = errors.New("backend switched protocols without an upgrade request")

// forwardState is one forwarded request's: the outgoing URL and what
// forwards 1xx responses to the client (an h1.Informational).
type forwardState struct {
	url    url.URL
	vals   [5]string    // the values of the fields setHeaders sets in a header map
	client clientFields // what setHeaders reads of the client's fields
	// fields are the gateway's fields for the h1 transport while the
	// round trip lasts (nil otherwise), in fieldBuf unless there are more
	// (sixteen: an authenticated caller's, with its identity fields).
	fields   h1.Fields
	fieldBuf [16]h1.Field
	filter   h1.FieldFilter // the proxy, answering h1.FieldFilterKey with fields
	// raw takes the backend's response fields from the h1 transport to
	// the h1 server as lines, in rawBuf unless they are longer; rawOn
	// while the round trip that fills it lasts. 480 bytes hold the fields
	// of most API responses (a Content-Type and a Date, caching, CORS and
	// security fields: about 440 bytes in the benchmark's -browser-fields);
	// longer ones cost an allocation and a copy, about 1,000 instructions
	// with the collector's share. The request's state, with the
	// allocator's 8-byte header, fills its 3072-byte size class
	// (TestRequestStateSize).
	raw    h1.RawHead
	rawOn  bool
	done   bool // RoundTrip returned: w is the handler's again
	rawBuf [480]byte
	w      http.ResponseWriter // nil until the request is forwarded
	mu     sync.Mutex
}

// Got1xxResponse forwards an informational response (103 Early Hints). The fields
// the gateway has already set on w (request ID, rate-limit fields, ...)
// are kept for the final response and not sent with the 1xx one.
// (ReverseProxy cleared them, so the final response lost them.)
//
// Only the forwarded request's 1xx responses reach the client: any other
// round trip made under the request's context, before or after, is
// ignored here.
func (f *forwardState) Got1xxResponse(code int, header textproto.MIMEHeader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.w == nil || f.done {
		return nil
	}
	h := f.w.Header()
	saved := maps.Clone(h)
	clear(h)
	for k, vs := range header {
		addValues(h, k, vs)
	}
	f.w.WriteHeader(code)
	clear(h)
	maps.Copy(h, saved)
	return nil
}

// errWritingToClient begins the error of a response that broke off
// because the client could not be written to (it went away).
var errWritingToClient = errors.New("writing the response to the client")

// copyBody copies the response body to w with a pooled buffer, flushing
// after every write when rc is set. It returns the first write error or
// read error other than io.EOF, which says which side failed.
func (p *proxyHandler) copyBody(w io.Writer, body io.Reader, rc *http.ResponseController) error {
	buf := bufferPool.Get()
	defer bufferPool.Put(buf)
	for {
		n, rerr := body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			p.logger.Warn("proxy: read error during body copy", "error", rerr)
		}
		if n > 0 {
			nw, werr := w.Write(buf[:n])
			if rc != nil {
				_ = rc.Flush()
			}
			if werr != nil {
				return fmt.Errorf("%w: %w", errWritingToClient, werr)
			}
			if nw != n {
				return fmt.Errorf("%w: %w", errWritingToClient, io.ErrShortWrite)
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return fmt.Errorf("reading the backend's response body: %w", rerr)
		}
	}
}

// outHeader returns the fields of the incoming header in to forward: all
// but the hop-by-hop ones, those Connection names, and those a client
// must not set (identity, forwarding, spoofable: see stripUntrusted).
// Values are shared with in, capped so that appending to them copies.
//
// The map is sized for in's fields and extra more: what setHeaders will
// add to it (a map that grows past its first size is copied).
func (p *proxyHandler) outHeader(in http.Header, extra int, cf *clientFields) http.Header {
	*cf = clientFields{}
	conn := in["Connection"]
	h := make(http.Header, len(in)+extra)
	fold := p.settings.identityFold
	for k, vs := range in {
		p.note(cf, k, vs)
		if !forwarded(k, conn, fold) {
			continue
		}
		if k == "User-Agent" {
			cf.userAgent = true
		}
		h[k] = vs[:len(vs):len(vs)]
	}
	if cf.trailers {
		h["Te"] = []string{"trailers"}
	}
	return h
}

// noClientFields is the outgoing header of a request none of whose
// client fields are sent (forward). It is shared, and only read: the
// outgoing header is the client's own map there, which nothing writes.
var noClientFields = http.Header{}

// SendField implements h1.FieldFilter for a request whose outgoing
// header is the client's own (forward, direct): the client's fields that
// outHeader copies are sent, all but the hop-by-hop ones and those a
// client must not set (identity, forwarding, spoofable: see
// stripUntrusted). Those the client's Connection field names are Omit
// fields (directFields).
func (p *proxyHandler) SendField(k string) bool {
	return !h1.IsHopByHop(k) && !untrusted(k, p.settings.identityFold)
}

// directFields is outHeader for a request whose outgoing header is in
// itself, with p as its h1.FieldFilter: it adds to fs an Omit field for
// each field of in that the client's Connection names (the filter leaves
// out the others outHeader leaves out) and Te: trailers as outHeader
// does, and notes what setHeaders reads of the client's fields (the
// forwarding fields may be left out unless trustedPeer: setHeaders reads
// them only from a trusted peer). names are the h1.NameBits of in's
// names (request.names; every bit when not known, or when a step has
// changed in): a name whose bit is missing is not in in, and is not
// looked up.
func (p *proxyHandler) directFields(fs *h1.Fields, in http.Header, cf *clientFields, trustedPeer bool, names uint64) {
	*cf = clientFields{}
	if len(in) == 0 {
		return
	}
	var conn []string
	if names == namesUnknown && len(in) <= smallHeader {
		// The names are not known, and a small map's lookup of a name it
		// lacks compares the name with each of its slots (some 130
		// instructions): for a few fields one pass costs less than the
		// eight lookups.
		for k, vs := range in {
			p.note(cf, k, vs)
			switch k {
			case "Connection":
				conn = vs
			case "User-Agent":
				cf.userAgent = true
			}
		}
	} else {
		// A lookup of each name setHeaders reads whose bit is there (with
		// the names known, most often User-Agent alone, which is there;
		// for a browser's dozen fields not known, every name: a lookup
		// costs a hash and a probe, a pass a step and a look at each
		// field).
		*cf = p.knownClientFields(in, trustedPeer, names)
		if names&connectionBit != 0 {
			conn = in["Connection"]
		}
	}
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			var name string // canonical, as the header's names are
			switch {
			case tok == "" || strings.EqualFold(tok, "keep-alive") || strings.EqualFold(tok, "upgrade"):
				continue // no field, or a hop-by-hop one (the filter's): a browser's keep-alive costs nothing
			case strings.EqualFold(tok, "close"):
				name = "Close" // a field of that name goes too (RFC 9110, 7.6.1), without an allocation
			default:
				name = http.CanonicalHeaderKey(tok)
			}
			if _, ok := in[name]; ok && p.SendField(name) {
				*fs = append(*fs, h1.Field{Name: name, Omit: true})
			}
		}
	}
	if cf.trailers {
		*fs = append(*fs, h1.Field{Name: "Te", Value: "trailers", Checked: true})
	}
}

// smallHeader is the most fields a header map holds in its one group of
// slots (Go's maps: eight), where a lookup compares a missing name with
// every slot.
const smallHeader = 8

// clientFields is what setHeaders reads of the client's fields, noted in
// the pass over them that outHeader makes anyway, instead of a map lookup
// for each (lookupClientFields does the lookups, for directFields too).
type clientFields struct {
	xff           []string // X-Forwarded-For, all values
	xfProto       string   // the first X-Forwarded-Proto
	xfHost        string   // the first X-Forwarded-Host
	authorization string   // the first Authorization
	trailers      bool     // Te says the client accepts trailers (outHeader and directFields only)
	apiKey        bool     // the API key's field is there
	userAgent     bool     // User-Agent is in the outgoing header map
}

// note records k among the client's fields setHeaders reads.
func (p *proxyHandler) note(cf *clientFields, k string, vs []string) {
	switch k {
	case "X-Forwarded-For":
		cf.xff = vs
	case "X-Forwarded-Proto":
		cf.xfProto = firstOf(vs)
	case "X-Forwarded-Host":
		cf.xfHost = firstOf(vs)
	case "Authorization":
		cf.authorization = firstOf(vs)
	case "Te":
		cf.trailers = clientTrailers(vs)
	}
	if k == p.settings.apiKeyHeader {
		cf.apiKey = true
	}
}

// lookupClientFields is clientFields by map lookups: the client's
// forwarded fields in in (only when forwarding: setHeaders reads them
// from a trusted peer alone), the rest in the outgoing header h.
func (p *proxyHandler) lookupClientFields(in, h http.Header, forwarding bool) clientFields {
	_, apiKey := h[p.settings.apiKeyHeader]
	_, ua := h["User-Agent"]
	cf := clientFields{
		authorization: firstValue(h, "Authorization"),
		apiKey:        apiKey,
		userAgent:     ua,
	}
	if forwarding {
		cf.xff = in["X-Forwarded-For"]
		cf.xfProto = firstValue(in, "X-Forwarded-Proto")
		cf.xfHost = firstValue(in, "X-Forwarded-Host")
	}
	return cf
}

// The h1.NameBits of client fields setHeaders reads.
var (
	userAgentBit     = h1.NameBit("User-Agent")
	authorizationBit = h1.NameBit("Authorization")
	xffBit           = h1.NameBit("X-Forwarded-For")
	xfProtoBit       = h1.NameBit("X-Forwarded-Proto")
	xfHostBit        = h1.NameBit("X-Forwarded-Host")
)

// knownClientFields is lookupClientFields (in is the outgoing header
// too), and Te, for a header whose names' h1.NameBits are names (every
// bit: not known): only the names whose bits are there are looked up.
func (p *proxyHandler) knownClientFields(in http.Header, trustedPeer bool, names uint64) clientFields {
	var cf clientFields
	if names&userAgentBit != 0 {
		_, cf.userAgent = in["User-Agent"]
	}
	if names&authorizationBit != 0 {
		cf.authorization = firstValue(in, "Authorization")
	}
	if names&p.settings.apiKeyBit != 0 {
		_, cf.apiKey = in[p.settings.apiKeyHeader]
	}
	if names&teBit != 0 {
		cf.trailers = clientTrailers(in["Te"])
	}
	if trustedPeer {
		if names&xffBit != 0 {
			cf.xff = in["X-Forwarded-For"]
		}
		if names&xfProtoBit != 0 {
			cf.xfProto = firstValue(in, "X-Forwarded-Proto")
		}
		if names&xfHostBit != 0 {
			cf.xfHost = firstValue(in, "X-Forwarded-Host")
		}
	}
	return cf
}

// firstOf returns a field's first value, or "" (firstValue for a slice
// already looked up).
func firstOf(vs []string) string {
	if len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// forwarded reports whether the client's field k goes to the backend:
// not hop-by-hop, not named by the client's Connection field (conn), not
// one a client must not set (identityFold: see stripUntrusted).
func forwarded(k string, conn []string, identityFold string) bool {
	return !hopByHop(k, conn) && !untrusted(k, identityFold)
}

// hopByHop reports whether the field k of a message whose Connection
// field is conn stays with the hop: one of h1.IsHopByHop's, or one conn
// names.
func hopByHop(k string, conn []string) bool {
	return h1.IsHopByHop(k) || len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, k)
}

// clientTrailers reports whether the client said it accepts trailers (Te:
// trailers), which the backend is then told (ReverseProxy, Go issue
// 21096).
func clientTrailers(te []string) bool {
	return len(te) > 0 && httpguts.HeaderValuesContainsToken(te, "trailers")
}

// copyResponseHeader adds the backend's fields to dst (which holds what
// the gateway set), except the hop-by-hop ones and those the response's
// Connection names.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vs := range src {
		if !hopByHop(k, conn) {
			addValues(dst, k, vs)
		}
	}
}

// headerSetter is what h1's ResponseWriter does: take a header map in
// place of its own (h1's response.SetHeader).
type headerSetter interface {
	http.ResponseWriter
	SetHeader(http.Header) bool
}

// rawHeadSetter is what else h1's ResponseWriter does: take a response's
// fields as lines (h1's response.SetRawHead).
type rawHeadSetter interface {
	SetRawHead(*h1.RawHead, h1.Fields) bool
}

// headerSetterOf returns the server's writer under w when it takes a
// header map (h1's), or nil: under the gateway's own responseWriter, not
// under a writer a step put in between (a response-headers transform's).
func headerSetterOf(w http.ResponseWriter) headerSetter {
	if rw, ok := w.(*responseWriter); ok {
		w = rw.ResponseWriter
	}
	hs, _ := w.(headerSetter)
	return hs
}

// adoptResponseHeader gives w the backend's header map src, with the
// fields copyResponseHeader would leave out removed (unless stripped says
// the transport left them out already) and the gateway's fields (dst) put
// in front of the backend's values, and returns it: the header
// copyResponseHeader(dst, src) builds, without copying the backend's
// fields into dst one by one. src must be the gateway's to change (a
// response's header, which nothing else holds). When w does not take it
// (a nil src, or a head already written), the fields are copied after
// all. idKey is the request ID's field, most often the gateway's only
// one: it is then put in front without iterating dst.
func adoptResponseHeader(w headerSetter, dst, src http.Header, stripped bool, idKey string) http.Header {
	if !w.SetHeader(src) {
		copyResponseHeader(dst, src)
		return dst
	}
	if !stripped {
		h1.RemoveHopByHop(src)
	}
	if len(dst) == 1 {
		if vs, ok := dst[idKey]; ok {
			putInFront(src, idKey, vs)
			return src
		}
	}
	for k, vs := range dst {
		putInFront(src, k, vs)
	}
	return src
}

// putInFront sets h[k] to vs followed by h's own values of k.
func putInFront(h http.Header, k string, vs []string) {
	if old := h[k]; len(old) > 0 {
		h[k] = append(vs[:len(vs):len(vs)], old...)
	} else {
		h[k] = vs
	}
}

// addValues appends vs to dst[k] (k canonical), as Header.Add does for
// each value, without changing either slice's backing array.
func addValues(dst http.Header, k string, vs []string) {
	if len(vs) == 0 {
		return
	}
	if old := dst[k]; len(old) > 0 {
		dst[k] = append(old[:len(old):len(old)], vs...)
		return
	}
	dst[k] = vs[:len(vs):len(vs)]
}

// isUpgrade reports whether a request asks to switch protocols: its
// Connection lists "upgrade" and Upgrade is set (ReverseProxy's test).
func isUpgrade(h http.Header) bool {
	conn := h["Connection"]
	return len(conn) > 0 && httpguts.HeaderValuesContainsToken(conn, "upgrade") && h.Get("Upgrade") != ""
}

// upgradeToWebSocket reports whether Upgrade asks for WebSocket alone
// (RFC 6455: "websocket", in any case), the one protocol the gateway
// tunnels.
func upgradeToWebSocket(h http.Header) bool {
	v := h["Upgrade"]
	return len(v) == 1 && strings.EqualFold(textproto.TrimString(v[0]), "websocket")
}

// dropUpgrade removes a request's offer to switch protocols: Upgrade, the
// HTTP2-Settings of an h2c offer (RFC 7540, 3.2), and the upgrade and
// HTTP2-Settings tokens of Connection.
func dropUpgrade(h http.Header) {
	delete(h, "Upgrade")
	delete(h, "Http2-Settings")
	var keep []string
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = textproto.TrimString(tok)
			if tok != "" && !strings.EqualFold(tok, "upgrade") && !strings.EqualFold(tok, "http2-settings") {
				keep = append(keep, tok)
			}
		}
	}
	if len(keep) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(keep, ", ")}
}

// isEventStream reports whether a Content-Type's media type is
// text/event-stream, without parsing its parameters.
func isEventStream(ct string) bool {
	// Most types are told apart by their length or first byte, before
	// the cut and the trim: what EqualFold could match is at least as
	// long (a non-ASCII letter that folds to an ASCII one, as the Kelvin
	// sign does, is longer), and begins with t or T, or with space that
	// TrimSpace removes (ASCII, or a byte of a multi-byte rune).
	if c := ct; len(c) < len("text/event-stream") || c[0] < utf8.RuneSelf && c[0]|0x20 != 't' && c[0] != ' ' && (c[0] < '\t' || c[0] > '\r') {
		return false
	}
	base, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(base), "text/event-stream")
}
