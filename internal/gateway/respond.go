package gateway

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// responseWriter records the status and size of a response. It unwraps to
// the server's writer, so http.ResponseController (used by the proxy for
// flushing and WebSocket hijacking) reaches the real connection.
type responseWriter struct {
	http.ResponseWriter
	status  int
	written int64
	// abort says the connection must be dropped without sending more
	// (the client went away, or the backend's response broke off).
	abort bool
	// idPending: the request ID field every response carries (idName:
	// id[0]) is not in the server's header map yet. It is set there when
	// the map is first asked for or the head is written, so that what
	// reads or changes the map sees it there, as if it had been set
	// first; so are the response fields steps left in the exchange x
	// (policy.Exchange.DeferFields). A forwarded response whose fields go
	// to h1's server as lines takes them as its extra fields instead
	// (takeFields), when nothing asked for the map: no map entries.
	idPending bool
	idName    *string   // the configuration's (canonical)
	id        [1]string // the value, without a slice of its own
	x         *policy.Exchange
	// reqBody is the request body as the proxy reads it, to tell a
	// client's malformed body from a backend failure.
	reqBody *bodyReader
}

// bodyLimiter is a server's writer that bounds the reading of the request
// body by a deadline as well as by its read timeout itself (h1's).
type bodyLimiter interface {
	LimitBodyRead(t time.Time) error
}

// LimitBodyRead implements upstream.BodyReadLimiter: the reading of the
// request body is bounded by t (an attempt's deadline) as well as by the
// server's read timeout. h1's server does it itself. Under Go's server,
// whose read timeout this cannot see, the bound is the request's arrival
// plus the configured read timeout less the header's: never later than
// Go's, which runs from before the head was read. (Go's HTTP/1 server
// clears the read deadline itself once the body has ended, before the
// read with which it watches for the client leaving; HTTP/2's is the
// stream's.)
func (w *responseWriter) LimitBodyRead(t time.Time) {
	u := w.ResponseWriter
	for {
		if l, ok := u.(bodyLimiter); ok {
			l.LimitBodyRead(t)
			return
		}
		x, ok := u.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		u = x.Unwrap()
	}
	b := w.reqBody
	if b == nil || b.readBy.IsZero() {
		return // the bound is not known: a deadline set here could lift Go's
	}
	if t.IsZero() || !t.Before(b.readBy) {
		if !b.limited {
			return
		}
		t = b.readBy
	}
	b.limited = true
	http.NewResponseController(w.ResponseWriter).SetReadDeadline(t)
}

// Header returns the server's header map, with the request ID and the
// exchange's fields set in it the first time.
func (w *responseWriter) Header() http.Header {
	h := w.ResponseWriter.Header()
	if w.idPending {
		w.idPending = false
		h[*w.idName] = w.id[:]
	}
	if w.x != nil {
		w.x.PutFields(h)
	}
	return h
}

// putFields sets the request ID and the exchange's fields in the header
// map if they are not set yet.
func (w *responseWriter) putFields() {
	if w.idPending || w.x != nil && w.x.HoldsFields() {
		w.Header()
	}
}

// takeFields appends to fs the request ID and the exchange's fields
// that are not in the header map yet (and then never puts them there),
// for the response's h1.RawHead. Each is Checked: the ID's name is the
// configuration's (refused as a framing field) and its value one
// requestIDs made or checked; the exchange's are the rate-limit fields,
// whose values are made of configured names (tokens) and numbers.
func (w *responseWriter) takeFields(fs *h1.Fields) {
	if w.idPending {
		w.idPending = false
		*fs = append(*fs, h1.Field{Name: *w.idName, Value: w.id[0], Checked: true})
	}
	if w.x != nil {
		w.x.TakeFields(func(name, value string) {
			*fs = append(*fs, h1.Field{Name: name, Value: value, Checked: true})
		})
	}
}

func (w *responseWriter) WriteHeader(code int) {
	w.putFields()
	if w.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.putFields()
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController find Flush, Hijack and deadlines.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// gatewayWriter is the gateway's writer under w, past the writers steps
// put over it (a response-header transform, a tunnel's), or nil.
func gatewayWriter(w http.ResponseWriter) *responseWriter {
	for {
		if sw, ok := w.(*responseWriter); ok {
			return sw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

// Flush forwards to the underlying writer, for code that type-asserts
// http.Flusher.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.putFields()
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// problem is an RFC 9457 problem details document.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// ProblemTypeBase prefixes the type URI of every problem the gateway
// returns; docs/errors.md describes each one.
const ProblemTypeBase = "https://gatehouse.dev/problems/"

// renderError writes e as application/problem+json: the status, the
// headers the error carries, a safe detail and the request ID. The cause
// never reaches the client.
func renderError(w http.ResponseWriter, r *http.Request, e *policy.Error) {
	h := w.Header()
	for k, vs := range e.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	p := problem{Type: ProblemTypeBase + e.Type, Title: e.Title, Status: e.Status, Detail: e.Detail}
	if x := policy.ExchangeFrom(r.Context()); x != nil {
		p.RequestID = x.RequestID
	}
	var body []byte
	if len(e.Extensions) == 0 {
		body, _ = json.Marshal(p)
	} else {
		m := map[string]any{}
		for k, v := range e.Extensions {
			m[k] = v
		}
		m["type"], m["title"], m["status"] = p.Type, p.Title, p.Status
		if p.Detail != "" {
			m["detail"] = p.Detail
		}
		if p.RequestID != "" {
			m["request_id"] = p.RequestID
		}
		body, _ = json.Marshal(m)
	}
	body = append(body, '\n')
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Encoding")
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// idBuf holds a request's new ID and traceparent.
type idBuf [idLen + traceParentLen]byte

// requestIDs returns the request's ID and W3C traceparent: the client's
// when well formed (an ID is 1 to 128 characters of letters, digits and
// -_.:+/=), new random ones otherwise (a new trace, sampled, whose ID is
// the request's when both are new), written to buf, which the strings
// returned then share: buf must not be written
// again while they are in use (the request's state holds it, so that
// they cost no allocation of their own).
func requestIDs(inID, inTP string, buf *idBuf) (id, tp string) {
	newID, newTP := !validRequestID(inID), !validTraceParent(inTP)
	if !newID && !newTP {
		return inID, inTP
	}
	n := 0
	if newID && newTP {
		// A new trace whose ID is the new request ID: two random words
		// fewer than an ID and a trace of their own.
		hi, lo := putID(buf[:idLen])
		for hi|lo == 0 { // a trace ID must not be all zeros
			hi, lo = putID(buf[:idLen])
		}
		tp := buf[idLen : idLen+traceParentLen]
		copy(tp, "00-")
		copy(tp[3:35], buf[:idLen])
		putSpanTail(tp)
		n = idLen + traceParentLen
	} else if newID {
		putID(buf[:idLen])
		n = idLen
	} else if newTP {
		putTraceParent(buf[:traceParentLen])
		n = traceParentLen
	}
	both := unsafe.String(&buf[0], n)
	id, tp = inID, inTP
	if newID {
		id = both[:idLen]
	}
	if newTP {
		tp = both[n-traceParentLen:]
	}
	return id, tp
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

const (
	idLen          = 32 // a new request ID: 128 bits in hex
	traceParentLen = 55 // a version-00 traceparent
)

// putID writes 128 random bits in hex to b, and returns them.
// math/rand/v2's generator is seeded from the system and unpredictable
// enough for correlation IDs, which are not secrets.
func putID(b []byte) (hi, lo uint64) {
	hi, lo = rand.Uint64(), rand.Uint64()
	putHex64(b[0:16], hi)
	putHex64(b[16:32], lo)
	return hi, lo
}

// putHex64 writes x to b[:16] in lower-case hex, most significant digit
// first, as hex.Encode does with x's big-endian bytes, eight digits at a
// time in one word instead of a table lookup per digit.
func putHex64(b []byte, x uint64) {
	_ = b[15]
	binary.BigEndian.PutUint64(b[0:8], hexDigits(uint32(x>>32)))
	binary.BigEndian.PutUint64(b[8:16], hexDigits(uint32(x)))
}

// hexDigits returns the eight hex digits of x as the bytes of a word,
// the most significant digit in the most significant byte.
func hexDigits(x uint32) uint64 {
	// Spread the nibbles one per byte.
	v := uint64(x)
	v = (v | v<<16) & 0x0000ffff0000ffff
	v = (v | v<<8) & 0x00ff00ff00ff00ff
	v = (v | v<<4) & 0x0f0f0f0f0f0f0f0f
	// '0'+n for every byte, and 'a'-'0'-10 more where n > 9.
	letters := (v + 0x0606060606060606) >> 4 & 0x0101010101010101
	return v + 0x3030303030303030 + letters*('a'-'0'-10)
}

// putTraceParent writes a new traceparent to b: a new trace, sampled.
func putTraceParent(b []byte) {
	copy(b, "00-")
	hi, lo := rand.Uint64(), rand.Uint64()
	for hi|lo == 0 { // a trace ID must not be all zeros
		hi, lo = rand.Uint64(), rand.Uint64()
	}
	putHex64(b[3:19], hi)
	putHex64(b[19:35], lo)
	putSpanTail(b)
}

// putSpanTail writes the rest of a new traceparent b after its trace ID:
// a new random parent ID, not all zeros, and the sampled flag.
func putSpanTail(b []byte) {
	span := rand.Uint64()
	for span == 0 {
		span = rand.Uint64()
	}
	b[35] = '-'
	putHex64(b[36:52], span)
	copy(b[52:traceParentLen], "-01")
}

// validTraceParent checks the version-00 format: 00-<32 hex>-<16 hex>-<2
// hex>, lower case, with non-zero trace and parent IDs. Later versions are
// accepted if they start with the same fields (W3C Trace Context §4.3).
func validTraceParent(s string) bool {
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') {
		return false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if !lowerHex(s[0:2]) || s[0:2] == "ff" || (s[0:2] == "00" && len(s) != 55) {
		return false
	}
	trace, parent, flags := s[3:35], s[36:52], s[53:55]
	if !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) {
		return false
	}
	return trace != "00000000000000000000000000000000" && parent != "0000000000000000"
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
