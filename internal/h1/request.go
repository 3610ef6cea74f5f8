package h1

import (
	"bytes"
	"net/http"
	"net/url"
)

// protoError is a request the server refuses: the status to answer and a
// fixed reason (never an echo of the input). The connection is closed
// after the answer.
type protoError struct {
	status int
	reason string
}

func (e *protoError) Error() string { return e.reason }

func badRequest(reason string) *protoError { return &protoError{http.StatusBadRequest, reason} }

// Refusals, each named after what it protects against. They are values so
// that refusing allocates nothing.
var (
	errRequestLine      = badRequest("invalid request line")
	errMethod           = badRequest("invalid method")
	errTarget           = badRequest("invalid request target")
	errTargetForm       = badRequest("request target is not origin-form or absolute-form")
	errPercent          = badRequest("invalid percent-encoding in path")
	errVersion          = badRequest("invalid HTTP version")
	errVersionNotSupp   = &protoError{http.StatusHTTPVersionNotSupported, "HTTP version not supported"}
	errURITooLong       = &protoError{http.StatusRequestURITooLong, "request target too long"}
	errHeadTooLong      = &protoError{http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"}
	errNoHost           = badRequest("missing Host header")
	errManyHosts        = badRequest("more than one Host header")
	errHost             = badRequest("invalid Host header")
	errHostMismatch     = badRequest("Host header differs from the request target's authority")
	errManyLengths      = badRequest("more than one Content-Length")
	errLength           = badRequest("invalid Content-Length")
	errLengthAndTE      = badRequest("both Content-Length and Transfer-Encoding")
	errTransferEncoding = badRequest("chunked is not the final Transfer-Encoding")
	errTECoding         = &protoError{http.StatusNotImplemented, "unsupported transfer coding"}
	errTE10             = badRequest("Transfer-Encoding in an HTTP/1.0 request")
	errExpectation      = &protoError{http.StatusExpectationFailed, "unsupported expectation"}
	errIncompleteHead   = badRequest("incomplete request head")
	errLineEnd          = badRequest("line ending is a bare LF")
	errFold             = badRequest("obsolete line folding")
	errNameSpace        = badRequest("whitespace between field name and colon")
	errName             = badRequest("invalid field name")
	errColon            = badRequest("field line without a colon")
	errValue            = badRequest("control character in field value")
)

// transferEncodingError is the refusal of a Transfer-Encoding other than
// exactly chunked (RFC 9112 §6.1, §6.3): 400 when chunked is not the final
// coding (the body's length cannot be known), 501 for a coding the gateway
// does not implement before a final chunked.
func transferEncodingError(v []byte) *protoError {
	last := v
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		last = v[i+1:]
	}
	if equalFoldLower(bytes.Trim(last, " \t"), "chunked") {
		return errTECoding
	}
	return errTransferEncoding
}

func fieldProtoError(err error) *protoError {
	switch err {
	case errBareLF:
		return errLineEnd
	case errObsFold:
		return errFold
	case errSpaceBeforeColn:
		return errNameSpace
	case errFieldName:
		return errName
	case errNoColon:
		return errColon
	case errFieldValue:
		return errValue
	}
	return badRequest("invalid header field")
}

type targetForm uint8

const (
	formOrigin targetForm = iota
	formAbsolute
	formAsterisk
)

// requestHead is a parsed request head: offsets into the head's bytes and
// what the framing fields said. A connection reuses one; parsing fills it
// without allocating.
type requestHead struct {
	method, target span
	path, query    span // query excludes the '?'
	authority      span // absolute-form only
	form           targetForm
	https          bool // absolute-form scheme
	hasQuery       bool
	pathEscaped    bool
	minor          int // HTTP/1.minor
	fields         []field
	kinds          []fieldKind
	host           int // index in fields, -1 if none
	contentLength  int64
	chunked        bool
	close          bool // the client asked to close after the response
	keepAlive      bool // HTTP/1.0 Connection: keep-alive
	expect100      bool
	upgrade        bool // Connection: upgrade with an Upgrade field
	webSocket      bool // one Upgrade field, and it says websocket
	h2Preface      bool
	// names holds the NameBit of each name of the header map that
	// buildRequest built (Response's HeaderNames).
	names uint64
}

func (h *requestHead) reset() {
	fields, kinds := h.fields[:0], h.kinds[:0]
	if cap(fields) > maxReusedFields {
		fields, kinds = nil, nil // a head with many fields: not kept
	}
	*h = requestHead{fields: fields, kinds: kinds, host: -1, contentLength: -1}
}

// parseRequestHead parses a complete request head b (request line, field
// lines, empty line) into h, enforcing RFC 9112 strictly. maxURI bounds
// the request target. It does not allocate once h's slices have grown.
func parseRequestHead(b []byte, h *requestHead, maxURI int) *protoError {
	_, pe := parseRequestHeadPrefix(b, h, maxURI)
	return pe
}

// parseRequestHeadPrefix is parseRequestHead for a head at the start of b,
// which may hold more after it (a body, a pipelined request); it returns
// the head's length too. A head it parses without error is the one
// findHeadEnd finds, without error: every line it accepts ends with CRLF
// and holds no LF. (It returns 0 and nil for the HTTP/2 preface, whose
// length it does not know.)
func parseRequestHeadPrefix(b []byte, h *requestHead, maxURI int) (int, *protoError) {
	h.reset()
	end, off, ok, err := nextLine(b, 0)
	if err != nil {
		return 0, errLineEnd
	}
	if !ok {
		return 0, errIncompleteHead
	}
	if pe := h.parseRequestLine(b, end, maxURI); pe != nil {
		return 0, pe
	}
	if h.h2Preface {
		return 0, nil
	}
	var nTE, nCL, nHost, nUpgrade int
	for {
		if off+1 < len(b) && b[off] == '\r' && b[off+1] == '\n' {
			break // the empty line
		}
		f, next, err := parseFieldLine(b, off)
		if err != nil {
			if err == errIncompleteLine {
				return 0, errIncompleteHead
			}
			return 0, fieldProtoError(err)
		}
		kind := classify(f.name.get(b))
		v := f.value.get(b)
		switch kind {
		case kindHost:
			nHost++
			h.host = len(h.fields)
			for _, c := range v {
				if !hostChars[c] {
					return 0, errHost
				}
			}
		case kindContentLength:
			nCL++
			n, ok := parseLength(v)
			if !ok {
				return 0, errLength
			}
			h.contentLength = n
		case kindTransferEncoding:
			nTE++
			if !equalFoldLower(v, "chunked") {
				return 0, transferEncodingError(v)
			}
			h.chunked = true
		case kindConnection:
			eachToken(v, func(tok []byte) {
				switch {
				case equalFoldLower(tok, "close"):
					h.close = true
				case equalFoldLower(tok, "keep-alive"):
					h.keepAlive = true
				case equalFoldLower(tok, "upgrade"):
					h.upgrade = true
				}
			})
		case kindUpgrade:
			nUpgrade++
			h.webSocket = equalFoldLower(v, "websocket")
		case kindExpect:
			if h.minor == 0 {
				break // RFC 9110 §10.1.1: ignored in HTTP/1.0
			}
			if !equalFoldLower(v, "100-continue") {
				return 0, errExpectation
			}
			h.expect100 = true
		}
		h.fields = append(h.fields, f)
		h.kinds = append(h.kinds, kind)
		off = next
	}
	switch {
	case nHost > 1:
		return 0, errManyHosts
	case nHost == 0 && h.minor == 1:
		return 0, errNoHost
	case nCL > 1:
		return 0, errManyLengths
	case nTE > 1:
		return 0, errTransferEncoding
	case nTE > 0 && nCL > 0:
		return 0, errLengthAndTE
	case nTE > 0 && h.minor == 0:
		return 0, errTE10
	}
	if h.upgrade {
		h.upgrade = h.hasKind(kindUpgrade)
	}
	h.webSocket = h.webSocket && nUpgrade == 1
	if h.minor == 0 && !h.keepAlive {
		h.close = true
	}
	if h.form == formAbsolute && h.host >= 0 && !equalFoldBytes(h.fields[h.host].value.get(b), h.authority.get(b)) {
		return 0, errHostMismatch
	}
	return off + 2, nil
}

// dropUpgrade makes the request lose its upgrade offer (RFC 9110 §7.8
// lets a server ignore it), for a server without a fallback.
func (h *requestHead) dropUpgrade() {
	for i, k := range h.kinds {
		if k == kindUpgrade {
			h.kinds[i] = kindDropped
		}
	}
	h.upgrade = false
}

func (h *requestHead) hasKind(k fieldKind) bool {
	for _, x := range h.kinds {
		if x == k {
			return true
		}
	}
	return false
}

// validAuthority checks what hostChars lets through in an absolute-form
// target's authority as url.Parse does (a request it refuses must not
// reach a handler): a percent sign starts an escape of a non-ASCII byte,
// or %25; the port, if any, is digits (RFC 3986 §3.2.3), after the last
// ']' of an IP literal, else after the first ':'.
func validAuthority(a []byte) bool {
	for i := 0; i < len(a); i++ {
		if a[i] != '%' {
			continue
		}
		if i+2 >= len(a) || !isHex(a[i+2]) {
			return false
		}
		if hi, ok := unhex(a[i+1]); !ok || hi < 8 && string(a[i:i+3]) != "%25" {
			return false
		}
	}
	if len(a) > 0 && a[0] == '[' {
		end := bytes.LastIndexByte(a, ']')
		if end < 0 {
			return false
		}
		a = a[end+1:]
		if len(a) > 0 && a[0] != ':' {
			return false
		}
	}
	i := bytes.IndexByte(a, ':')
	if i < 0 {
		return true
	}
	for _, c := range a[i+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// parseRequestLine parses method SP request-target SP HTTP-version.
func (h *requestHead) parseRequestLine(b []byte, end, maxURI int) *protoError {
	line := b[:end]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errRequestLine
	}
	for _, c := range line[:sp1] {
		if !tchar[c] {
			return errMethod
		}
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return errRequestLine
	}
	sp2 += sp1 + 1
	h.method = span{0, int32(sp1)}
	h.target = span{int32(sp1 + 1), int32(sp2)}
	if h.target.len() == 0 {
		return errRequestLine
	}
	if h.target.len() > maxURI {
		return errURITooLong
	}
	switch v := line[sp2+1:]; {
	case string(v) == "HTTP/1.1":
		h.minor = 1
	case string(v) == "HTTP/1.0":
		h.minor = 0
	case string(v) == "HTTP/2.0" && string(line[:sp2]) == "PRI *":
		h.h2Preface = true
		return nil
	case len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]):
		return errVersionNotSupp
	default:
		return errVersion
	}
	return h.parseTarget(b, string(line[:sp1]) == "OPTIONS")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseTarget classifies and checks the request target: origin-form,
// absolute-form (http or https), or asterisk-form for OPTIONS. Control
// characters, space, non-ASCII bytes and '#' are refused anywhere in it;
// percent signs in the path must start a valid escape.
func (h *requestHead) parseTarget(b []byte, options bool) *protoError {
	t := h.target.get(b)
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return errTarget
		}
	}
	base := int(h.target.start)
	i := 0
	switch {
	case t[0] == '/':
		h.form = formOrigin
	case len(t) == 1 && t[0] == '*':
		if !options {
			return errTargetForm
		}
		h.form = formAsterisk
		h.path = h.target
		return nil
	default:
		switch {
		case hasPrefixFold(t, "http://"):
			i = len("http://")
		case hasPrefixFold(t, "https://"):
			i = len("https://")
			h.https = true
		default:
			return errTargetForm
		}
		h.form = formAbsolute
		a := i
		for i < len(t) && t[i] != '/' && t[i] != '?' {
			if !hostChars[t[i]] {
				return errTarget
			}
			i++
		}
		if i == a || !validAuthority(t[a:i]) {
			return errTarget
		}
		h.authority = span{int32(base + a), int32(base + i)}
	}
	p := i
	for i < len(t) && t[i] != '?' {
		if t[i] == '%' {
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return errPercent
			}
			h.pathEscaped = true
		}
		i++
	}
	h.path = span{int32(base + p), int32(base + i)}
	if i < len(t) {
		h.hasQuery = true
		h.query = span{int32(base + i + 1), h.target.end}
	}
	return nil
}

func isHex(c byte) bool { _, ok := unhex(c); return ok }

func hasPrefixFold(b []byte, lower string) bool {
	return len(b) >= len(lower) && equalFoldLower(b[:len(lower)], lower)
}

func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// requestAlloc holds a request with its URL and the values of a few
// header fields, so that building a request allocates once for them.
type requestAlloc struct {
	req  http.Request
	url  url.URL
	vals [8]string
	hdr  http.Header // the header map, when the requestAlloc is reused
	// more holds the values of a head with more fields than vals does
	// (a browser sends ten or more), when the requestAlloc is reused: it
	// grows to the most fields a request of the connection had, up to
	// maxReusedVals, and is emptied for each request.
	more []string
}

// maxReusedVals bounds requestAlloc.more: a head with more fields gets
// its values' array of its own, as without ReuseRequests.
const maxReusedVals = 64

// buildRequest turns a parsed head into an *http.Request. tmpl carries
// what every request of the connection shares (context, RemoteAddr) and
// is copied. head is the connection's buffer, which buildRequest
// canonicalizes in place; every string of the request (method, target,
// header names and values) is a substring of one copy of the head.
//
// The request, its URL and its header map are a's (a Server's with
// ReuseRequests), emptied and filled again, or new ones when a is nil.
// parsed is where copyHead put the head's copy (headAt reads it).
func buildRequest(tmpl *http.Request, head []byte, h *requestHead, a *requestAlloc) (r *http.Request, parsed *byte, err error) {
	for _, f := range h.fields {
		canonicalizeName(f.name.get(head))
	}
	s, parsed := copyHead(head)
	var hdr http.Header
	var vals []string
	if a == nil {
		a = new(requestAlloc)
		vals = a.vals[:]
	} else {
		// The previous request's values go, lest a large head stay
		// alive for as long as the connection does.
		a.url, a.vals = url.URL{}, [len(a.vals)]string{}
		clear(a.more)
		vals, a.more = a.vals[:], a.more[:0]
		if n := len(h.fields); n > len(a.vals) && n <= maxReusedVals {
			if cap(a.more) < n {
				a.more = make([]string, n, min(2*n, maxReusedVals))
			}
			a.more = a.more[:n]
			vals = a.more
		}
		hdr = reusedHeader(&a.hdr, len(h.fields))
	}
	a.req = *tmpl
	r, u := &a.req, &a.url
	// Host is in Request.Host and the framing in TransferEncoding, as
	// net/http does.
	const drop = 1<<kindHost | 1<<kindTransferEncoding | 1<<kindDropped
	if hdr == nil {
		hdr = make(http.Header, keptFields(h.kinds, drop))
	}
	r.Header, h.names = fillHeader(hdr, s, h.fields, h.kinds, drop, vals)
	u.RawQuery, u.ForceQuery = h.query.str(s), h.hasQuery && h.query.len() == 0
	if h.host >= 0 {
		r.Host = h.fields[h.host].value.str(s)
	}
	switch h.form {
	case formAbsolute:
		u.Scheme = "http"
		if h.https {
			u.Scheme = "https"
		}
		u.Host = h.authority.str(s)
		r.Host = u.Host
	case formAsterisk:
		u.Path = "*"
	}
	if h.form != formAsterisk {
		// An absolute-form target may have an empty path; it stays empty,
		// as with net/http.
		if err := setPath(u, h.path.str(s), h.pathEscaped); err != nil {
			return nil, nil, err
		}
	}
	r.Method = h.method.str(s)
	r.URL = u
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, h.minor
	if h.minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.RequestURI = h.target.str(s)
	r.Close = h.close
	if h.chunked {
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
	} else if h.contentLength > 0 {
		r.ContentLength = h.contentLength
	}
	return r, parsed, nil
}

// setPath sets Path and RawPath as url.ParseRequestURI would: RawPath only
// when the client's escaping differs from the default one.
func setPath(u *url.URL, raw string, escaped bool) error {
	if !escaped {
		u.Path = raw
		return nil
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return errPercent
	}
	u.Path = p
	if (&url.URL{Path: p}).EscapedPath() != raw {
		u.RawPath = raw
	}
	return nil
}

// statusText returns the reason phrase for a status code, or "status".
func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "status"
}
