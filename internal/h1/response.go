package h1

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// pendingSize is how much body a response without Content-Length buffers
// before it commits to chunked encoding: a small response that ends within
// it gets a Content-Length instead, as with net/http.
const pendingSize = 2048

type bodyMode uint8

const (
	modeNone    bodyMode = iota // no body: HEAD, 1xx, 204, 304
	modePending                 // framing not decided yet
	modeLength                  // Content-Length
	modeChunked                 // Transfer-Encoding: chunked
	modeClose                   // delimited by closing the connection (HTTP/1.0)
)

// response is the http.ResponseWriter of one request. A connection reuses
// one; it is valid only until the handler returns, as the http.Handler
// contract says.
type response struct {
	c             *conn
	bw            *bufio.Writer
	header        http.Header
	minor         int
	isHead        bool
	status        int
	wroteHeader   bool
	committed     bool // the head is in bw
	mode          bodyMode
	contentLength int64 // from the handler's Content-Length, or -1
	written       int64
	pend          []byte
	trailers      []string
	closeAfter    bool
	err           error
	done          bool
	scratch       []byte
	own           http.Header // the map the connection reuses; header unless SetHeader replaced it
	raw           *RawHead    // fields written after header's (SetRawHead)
	rawExtra      Fields      // SetRawHead's extra fields, written before raw's
}

func (w *response) reset(c *conn, minor int, isHead bool) {
	own := reusedHeader(&w.own, 8)
	*w = response{
		c: c, bw: c.bw, header: own, own: own, minor: minor, isHead: isHead,
		contentLength: -1, pend: w.pend[:0], trailers: w.trailers[:0], scratch: w.scratch[:0],
	}
}

// reusedHeader returns *h emptied, making it with room for n fields the
// first time: a header map a connection reuses for each request or
// response (the previous one's values dropped with it).
//
// A map that held more than maxReusedFields names is replaced, not
// cleared: a cleared map keeps its size, so one request with thousands of
// small fields would make the connection hold a large map for the rest
// of its life.
func reusedHeader(h *http.Header, n int) http.Header {
	switch {
	case *h == nil || len(*h) > maxReusedFields:
		*h = make(http.Header, min(n, maxReusedFields))
	case len(*h) > 0:
		clear(*h)
	}
	return *h
}

// maxReusedFields bounds the field lines whose parsed form a connection
// keeps for its next request or response (its header map, its slices of
// fields): past it they are made afresh.
const maxReusedFields = 128

// SetHeader makes h the header map (what Header returns from now on) in
// place of the one Header returned, and reports whether it could: not
// once the head of the final response is written, nor for a nil h. A
// proxy can hand over the header of the response it forwards, with its
// own fields added, instead of copying that header's fields one by one.
// The map it replaces is left as it was (the connection reuses it for
// its next request); h is not touched once the response is finished.
func (w *response) SetHeader(h http.Header) bool {
	if w.wroteHeader || w.done || h == nil {
		return false
	}
	w.header = h
	return true
}

// SetRawHead makes the response write h's fields (the response it holds
// was read by Transport) after those of its header map, and take h's
// Content-Length when the map has none; it reports whether it could: not
// once the head of the final response is written, nor for an h that
// holds no response. A proxy can forward a response's fields so, without
// a header map between the transport and the server. Fields of the same
// name in both keep their order: the header map's first. h must not
// change until the response is finished.
//
// extra are fields of the proxy's own (its request ID, say), written
// in order between the map's fields and h's: what setting them in the
// map would do, without map entries to make and iterate. Unless a field
// is marked Checked (see Field), its name and value are checked as the
// map's are, and a framing field (Content-Length, Transfer-Encoding,
// Connection, Trailer) is not written; an Omit field writes nothing.
// extra must not change until the response is finished either.
func (w *response) SetRawHead(h *RawHead, extra Fields) bool {
	if w.wroteHeader || w.done || h == nil || h.res == nil {
		return false
	}
	w.raw, w.rawExtra = h, extra
	return true
}

// Arrival returns when the request's head was read: the server's reading
// of the clock for the request (its deadlines and Date field come from
// it), which a handler can take instead of reading the clock again.
func (w *response) Arrival() time.Time { return w.c.now }

// Header returns the response header map.
func (w *response) Header() http.Header { return w.header }

// WriteHeader sends an informational response (1xx other than 101) at
// once, or records the final status. The head of a final response is
// written when its framing is known.
func (w *response) WriteHeader(code int) {
	if w.c.body != nil {
		w.c.wmu.Lock()
		defer w.c.wmu.Unlock()
	}
	w.writeHeader(code)
}

// writeHeader is WriteHeader without the lock. The response's exported
// methods (and finish) take the connection's wmu while the request has a
// body, whose reads may be made by another goroutine and send what bw
// holds (conn.flushLocked); the unexported ones run with it held when
// needed. The check is written out in each: a helper holding the lock
// would not be inlined, and would add a call to every request's writes.
func (w *response) writeHeader(code int) {
	if w.done {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl, ok := w.header["Content-Length"]; ok {
		if n, valid := parseLength([]byte(firstOrEmpty(cl))); valid && len(cl) == 1 {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	} else if w.raw != nil {
		w.contentLength = w.raw.contentLength
	}
	switch {
	case !bodyAllowed(code):
		w.commit(modeNone, nil)
		w.sendComplete()
	case w.isHead:
		w.mode = modePending
	case w.contentLength >= 0 && (w.raw != nil && w.raw.hasType || hasKey(w.header, "Content-Type")):
		w.commit(modeLength, nil)
		if w.contentLength == 0 {
			w.sendComplete()
		}
	default:
		w.mode = modePending
	}
}

func firstOrEmpty(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func hasKey(h http.Header, k string) bool { _, ok := h[k]; return ok }

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func (w *response) writeInformational(code int) {
	if w.minor == 0 || w.err != nil {
		return // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
	}
	b := appendStatusLine(w.scratch[:0], w.minor, code)
	for k, vs := range w.header {
		b = appendField(b, k, vs)
	}
	b = append(b, "\r\n"...)
	w.scratch = keptScratch(b)
	w.bw.Write(b)
	if err := w.bw.Flush(); err != nil {
		w.err = err
	}
}

// Write writes body bytes, writing the head first if needed.
func (w *response) Write(p []byte) (int, error) {
	if w.c.body != nil {
		return w.writeLocked(p)
	}
	return w.write(p)
}

func (w *response) writeLocked(p []byte) (int, error) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	return w.write(p)
}

func (w *response) write(p []byte) (int, error) {
	if w.done {
		return 0, http.ErrHandlerTimeout
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.isHead {
		return len(p), nil
	}
	switch w.mode {
	case modePending:
		if w.contentLength >= 0 {
			w.commit(modeLength, p)
			break
		}
		if len(w.pend)+len(p) <= pendingSize {
			if w.pend == nil {
				w.pend = make([]byte, 0, pendingSize)
			}
			w.pend = append(w.pend, p...)
			return len(p), nil
		}
		w.commitStreaming(p)
		return len(p), w.err
	case modeChunked:
		if len(p) == 0 {
			return 0, nil
		}
		w.scratch = chunkHeader(w.scratch[:0], len(p))
		w.bw.Write(w.scratch)
		w.bw.Write(p)
		_, err := w.bw.WriteString("\r\n")
		if err != nil {
			w.err = err
			return 0, err
		}
		return len(p), nil
	}
	n, err := w.bw.Write(p)
	if err != nil {
		w.err = err
		return n, err
	}
	if w.mode == modeLength && w.written == w.contentLength {
		w.sendComplete()
	}
	return n, w.err
}

// sendComplete sends a response whose last body byte was just written,
// without waiting for the handler to return, when no other request can
// be behind it: the request's body, if it has one, has been read to its
// end (so nothing reads the connection while the handler runs: a body
// that was not, or that another goroutine is reading now, keeps the
// response for when the handler returns) and no pipelined request is
// buffered (its response goes out with this one, in one write, when the
// server next waits). What the handler does after its last write (its
// logging) then no longer delays the client, as nginx logs after it has
// sent, without the handler having to flush. It makes no extra system
// call: the write is the one the server would make before it reads
// again.
func (w *response) sendComplete() {
	c := w.c
	if b := c.body; b != nil && !b.drained() {
		return
	}
	if c.br.buffered() > 0 {
		return
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
	}
}

// WriteString is Write for strings, so io.WriteString does not copy.
func (w *response) WriteString(s string) (int, error) {
	if w.c.body != nil {
		w.c.wmu.Lock()
		defer w.c.wmu.Unlock()
	}
	if w.mode == modeLength || w.mode == modeClose {
		if w.err == nil && !w.done && !w.isHead && (w.contentLength < 0 || w.written+int64(len(s)) <= w.contentLength) {
			w.written += int64(len(s))
			n, err := w.bw.WriteString(s)
			if err != nil {
				w.err = err
				return n, err
			}
			if w.mode == modeLength && w.written == w.contentLength {
				w.sendComplete()
			}
			return n, w.err
		}
	}
	return w.write([]byte(s))
}

// commitStreaming commits a response of unknown length whose body does
// not fit the pending buffer: chunked, or close-delimited for HTTP/1.0.
// p is written after what was pending.
func (w *response) commitStreaming(p []byte) {
	mode := modeChunked
	if w.minor == 0 {
		mode = modeClose
	}
	sniff := w.pend
	if len(sniff) == 0 {
		sniff = p
	}
	w.commit(mode, sniff)
	n := len(w.pend) + len(p)
	if n == 0 {
		return
	}
	if mode == modeChunked {
		w.scratch = chunkHeader(w.scratch[:0], n)
		w.bw.Write(w.scratch)
	}
	w.bw.Write(w.pend)
	w.bw.Write(p)
	if mode == modeChunked {
		w.bw.WriteString("\r\n")
	}
	w.pend = w.pend[:0]
	if _, err := w.bw.Write(nil); err != nil {
		w.err = err
	}
}

// Flush sends what is buffered; it commits the head first, to chunked
// encoding when the length is not known yet.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the write error (used by
// http.ResponseController).
func (w *response) FlushError() error {
	if w.c.body != nil {
		w.c.wmu.Lock()
		defer w.c.wmu.Unlock()
	}
	if w.done {
		return http.ErrHandlerTimeout
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if w.mode == modePending {
		if w.isHead {
			w.commit(modeNone, nil)
		} else if w.contentLength >= 0 {
			w.commit(modeLength, w.pend)
		} else {
			w.commitStreaming(nil)
		}
	}
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// HeaderNames returns the NameBits of the names of the request's Header
// as the server built it, ORed: a name whose NameBit is not among them is
// not in that Header, and a handler can skip looking it up. It says
// nothing of what a handler has set in the Header since.
func (w *response) HeaderNames() uint64 { return w.c.head.names }

// SetReadDeadline sets the deadline for reading the request body (used by
// http.ResponseController).
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.rdAt = w.c.at(t)
	return w.c.rwc.SetReadDeadline(t)
}

// LimitBodyRead bounds the reading of the request body by t as well as
// by the server's ReadTimeout: the read deadline becomes the earlier of
// the two, and a zero t leaves the ReadTimeout's alone. A handler that
// passes the body on under a deadline of its own (a proxy's attempt)
// calls it, so that a client that stops sending its body fails the read
// at that deadline instead of holding the handler, and what it has
// reserved, until ReadTimeout. It may be called again with another t,
// but never moves the deadline past the ReadTimeout's. It does nothing
// for a request without a body, or once the body has ended. Like the
// handler's other calls, it is not for use from another goroutine.
func (w *response) LimitBodyRead(t time.Time) error {
	b := w.c.body
	if b == nil {
		return nil
	}
	b.mu.Lock()
	ended := b.eof || b.closed || b.err != nil
	b.mu.Unlock()
	if ended {
		return nil
	}
	at := b.readBy
	if !t.IsZero() {
		if to := w.c.at(t); at == 0 || to < at {
			at = to
		}
	}
	if at == w.c.rdAt {
		return nil
	}
	w.c.rdAt = at
	return w.c.rwc.SetReadDeadline(w.c.timeAt(at))
}

// SetWriteDeadline sets the deadline for writing the response (used by
// http.ResponseController).
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.wdAt = w.c.at(t)
	return w.c.rwc.SetWriteDeadline(t)
}

// finish completes the response after the handler returned.
func (w *response) finish() {
	if w.c.body != nil {
		w.c.wmu.Lock()
		defer w.c.wmu.Unlock()
	}
	if !w.wroteHeader {
		w.writeHeader(http.StatusOK)
	}
	if w.mode == modePending {
		if w.isHead {
			if w.contentLength < 0 && w.written > 0 {
				w.contentLength = w.written
			}
			w.commit(modeNone, nil)
		} else {
			if w.contentLength < 0 {
				w.contentLength = int64(len(w.pend))
			}
			w.commit(modeLength, w.pend)
			w.bw.Write(w.pend)
		}
	}
	switch w.mode {
	case modeLength:
		if w.written < w.contentLength {
			w.closeAfter = true
		}
	case modeClose:
		w.closeAfter = true
	case modeChunked:
		w.bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			w.writeField(k, w.header[k])
		}
		for k, vs := range w.header {
			if len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix {
				w.writeField(k[len(http.TrailerPrefix):], vs)
			}
		}
		w.bw.WriteString("\r\n")
	}
	w.done = true
}

// commit writes the status line and the header fields for mode. sniff is
// the start of the body, to detect a missing Content-Type.
func (w *response) commit(mode bodyMode, sniff []byte) {
	w.committed = true
	w.mode = mode
	c := w.c
	if w.closeAfter || c.head.close || c.srv.shuttingDown() || c.bodyForcesClose() || mode == modeClose {
		w.closeAfter = true
	}
	// The head is built in scratch and goes to bw in one copy.
	b := appendStatusLine(w.scratch[:0], w.minor, w.status)
	hasDate, hasType := false, false
	for k, vs := range w.header {
		switch k {
		case "Content-Length", "Transfer-Encoding":
			continue
		case "Connection":
			for _, v := range vs {
				eachToken([]byte(v), func(tok []byte) {
					if equalFoldLower(tok, "close") {
						w.closeAfter = true
					}
				})
			}
			continue
		case "Date":
			hasDate = true
		case "Content-Type":
			hasType = true
		case "Trailer":
			if mode == modeChunked {
				w.declareTrailers(vs)
			}
		}
		if len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix {
			continue
		}
		b = appendField(b, k, vs)
	}
	if w.raw != nil {
		for i := range w.rawExtra {
			switch f := &w.rawExtra[i]; {
			case f.Omit:
			case f.Lines:
				if f.Checked {
					b = append(b, f.Value...)
				}
			case f.Checked:
				b = appendFieldLine(b, f.Name, f.Value)
			case !framingField(f.Name) && validFieldName(f.Name):
				b = appendValueLine(b, f.Name, f.Value)
			}
		}
		b = append(b, w.raw.lines...) // checked by the transport's parser
		hasDate = hasDate || w.raw.hasDate
		hasType = hasType || w.raw.hasType
	}
	if !hasDate {
		b = append(b, "Date: "...)
		b = append(b, c.srv.date.get(c.now)...)
		b = append(b, "\r\n"...)
	}
	if !hasType && len(sniff) > 0 && bodyAllowed(w.status) {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(sniff)...)
		b = append(b, "\r\n"...)
	}
	switch {
	case mode == modeLength || (mode == modeNone && w.contentLength >= 0 && w.status != http.StatusNoContent && w.status >= 200):
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.contentLength, 10)
		b = append(b, "\r\n"...)
	case mode == modeChunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	} else if w.minor == 0 {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	w.scratch = keptScratch(b)
	if _, err := w.bw.Write(b); err != nil {
		w.err = err
	}
}

// keptScratch returns b, a head built in a connection's scratch buffer,
// as the buffer to keep for the next head (server and transport alike),
// or nil when it grew beyond what a connection should keep (4 KiB).
func keptScratch(b []byte) []byte {
	if cap(b) > 4<<10 {
		return nil
	}
	return b
}

func (w *response) declareTrailers(vs []string) {
	for _, v := range vs {
		eachToken([]byte(v), func(tok []byte) {
			switch classify(tok) {
			case kindContentLength, kindTransferEncoding, kindHost, kindTrailer, kindConnection:
				return
			}
			w.trailers = append(w.trailers, http.CanonicalHeaderKey(string(tok)))
		})
	}
}

// appendStatusLine appends the status line of code for HTTP/1.minor.
func appendStatusLine(b []byte, minor, code int) []byte {
	if minor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	if code == 200 {
		return append(b, "200 OK\r\n"...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, statusText(code)...)
	return append(b, "\r\n"...)
}

// writeField writes one header field per value to bw (trailers).
func (w *response) writeField(k string, vs []string) {
	b := appendField(w.scratch[:0], k, vs)
	w.scratch = keptScratch(b)
	w.bw.Write(b)
}

// appendField appends one header field line per value. A name that is
// not a token is skipped; CR, LF and NUL in a value become spaces, so
// that a handler cannot inject a field or split the response.
func appendField(b []byte, k string, vs []string) []byte {
	if !validFieldName(k) {
		return b
	}
	for _, v := range vs {
		b = appendValueLine(b, k, v)
	}
	return b
}

// framingField reports whether canonical name k is a field that frames
// or ends the response, which only the server writes.
func framingField(k string) bool {
	switch k {
	case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
		return true
	}
	return false
}

// appendValueLine appends the line of field k (a valid name) with value
// v, made safe by appendFieldValue unless it holds field-value bytes
// only.
func appendValueLine(b []byte, k, v string) []byte {
	if validFieldValueString(v) {
		return appendFieldLine(b, k, v)
	}
	b = append(b, k...)
	b = append(b, ':', ' ')
	b = appendFieldValue(b, v)
	return append(b, '\r', '\n')
}

// appendFieldLine appends the field line "k: v" and its CRLF.
func appendFieldLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ':', ' ')
	b = append(b, v...)
	return append(b, '\r', '\n')
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tchar[k[i]] {
			return false
		}
	}
	return true
}

// appendFieldValue appends v with CR, LF and NUL replaced by spaces (a
// handler's value is never refused, but never splits a line either).
func appendFieldValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' || c == 0 {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}
