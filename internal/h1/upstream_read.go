package h1

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"unsafe"
)

// responseHead is a parsed response head, reused by its connection.
type responseHead struct {
	minor         int
	status        int
	statusText    span // "200 OK": the status code and the reason
	fields        []field
	kinds         []fieldKind
	contentLength int64 // -1 when absent
	chunked       bool
	close         bool
	keepAlive     bool
	trailer       bool
}

// parseResponseHead parses a complete response head as strictly as a
// request head: the same field rules, exactly one valid Content-Length or
// exactly "Transfer-Encoding: chunked" and never both. It does not
// allocate once h's slices have grown.
func parseResponseHead(b []byte, h *responseHead) error {
	_, err := parseResponseHeadPrefix(b, h)
	return err
}

// parseResponseHeadPrefix is parseResponseHead for a head at the start of
// b, which may hold more after it; it returns the head's length too. A
// head it parses without error is the one findHeadEnd finds, without
// error, as with parseRequestHeadPrefix.
func parseResponseHeadPrefix(b []byte, h *responseHead) (int, error) {
	fields, kinds := h.fields[:0], h.kinds[:0]
	if cap(fields) > maxReusedFields {
		fields, kinds = nil, nil // a head with many fields: not kept
	}
	*h = responseHead{fields: fields, kinds: kinds, contentLength: -1}
	end, off, ok, err := nextLine(b, 0)
	if err != nil || !ok {
		return 0, badResponse("invalid status line")
	}
	line := b[:end]
	switch {
	case len(line) < 12 || line[8] != ' ':
		return 0, badResponse("invalid status line")
	case string(line[:8]) == "HTTP/1.1":
		h.minor = 1
	case string(line[:8]) == "HTTP/1.0":
		h.minor = 0
	default:
		return 0, badResponse("unsupported HTTP version")
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || !isDigit(code[1]) || !isDigit(code[2]) {
		return 0, badResponse("invalid status code")
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(line) > 12 {
		if line[12] != ' ' {
			return 0, badResponse("invalid status line")
		}
		for _, c := range line[13:] {
			if !isFieldValueByte(c) {
				return 0, badResponse("control character in reason phrase")
			}
		}
	}
	h.statusText = span{9, int32(end)}
	var nCL, nTE int
	for {
		if off+1 < len(b) && b[off] == '\r' && b[off+1] == '\n' {
			break // the empty line
		}
		f, next, err := parseFieldLine(b, off)
		if err == errIncompleteLine || err == errBareLF {
			return 0, badResponse("invalid line ending")
		}
		if err != nil {
			return 0, badResponse(err.Error())
		}
		kind := classify(f.name.get(b))
		v := f.value.get(b)
		switch kind {
		case kindContentLength:
			nCL++
			n, ok := parseLength(v)
			if !ok {
				return 0, badResponse("invalid Content-Length")
			}
			h.contentLength = n
		case kindTransferEncoding:
			nTE++
			if !equalFoldLower(v, "chunked") {
				return 0, badResponse("unsupported Transfer-Encoding")
			}
			h.chunked = true
		case kindConnection:
			eachToken(v, func(tok []byte) {
				switch {
				case equalFoldLower(tok, "close"):
					h.close = true
				case equalFoldLower(tok, "keep-alive"):
					h.keepAlive = true
				}
			})
		case kindTrailer:
			h.trailer = true
		}
		h.fields = append(h.fields, f)
		h.kinds = append(h.kinds, kind)
		off = next
	}
	switch {
	case nCL > 1:
		return 0, badResponse("more than one Content-Length")
	case nTE > 1:
		return 0, badResponse("more than one Transfer-Encoding")
	case nCL > 0 && nTE > 0:
		return 0, badResponse("both Content-Length and Transfer-Encoding")
	case nTE > 0 && h.minor == 0:
		return 0, badResponse("Transfer-Encoding in an HTTP/1.0 response")
	}
	return off + 2, nil
}

// header canonicalizes the field names of the n-byte head in the buffer
// and builds the header map; it returns the head as one string too.
func (pc *persistConn) header(n int, drop uint32, vals []string) (http.Header, string) {
	b := pc.br.bytes()[:n]
	for _, f := range pc.head.fields {
		canonicalizeName(f.name.get(b))
	}
	s := string(b)
	return makeHeader(s, pc.head.fields, pc.head.kinds, drop, vals), s
}

// connectionNamed returns the canonical names that the Connection
// fields of response head h (in b) list, other than hop-by-hop ones
// (left out by their kind anyway), or nil when there are none: a set
// built once, so that leaving those fields out costs a lookup a field
// however long the Connection field is.
func connectionNamed(h *responseHead, b []byte) map[string]bool {
	var named map[string]bool
	for i, f := range h.fields {
		if h.kinds[i] != kindConnection {
			continue
		}
		eachToken(f.value.get(b), func(tok []byte) {
			if hopByHopKinds&(1<<classify(tok)) != 0 {
				return
			}
			if named == nil {
				named = make(map[string]bool)
			}
			named[http.CanonicalHeaderKey(string(tok))] = true
		})
	}
	return named
}

// RemoveHopByHop removes from h the hop-by-hop fields (IsHopByHop) and
// those its Connection fields name: what a proxy does to a header it
// forwards. (Transport's StripHopByHop does it as it reads a response.)
func RemoveHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		eachToken(unsafe.Slice(unsafe.StringData(v), len(v)), func(tok []byte) {
			if hopByHopKinds&(1<<classify(tok)) == 0 {
				h.Del(string(tok))
			}
		})
	}
	for k := range h {
		if IsHopByHop(k) {
			delete(h, k)
		}
	}
}

// declaredTrailers returns the trailer fields a response announced, with
// no values yet, as http.Transport does.
func declaredTrailers(h *responseHead, b []byte) http.Header {
	t := http.Header{}
	for i, f := range h.fields {
		if h.kinds[i] != kindTrailer {
			continue
		}
		eachToken(f.value.get(b), func(tok []byte) {
			switch classify(tok) {
			case kindContentLength, kindTransferEncoding, kindHost, kindTrailer, kindConnection:
				return
			}
			t[http.CanonicalHeaderKey(string(tok))] = nil
		})
	}
	return t
}

// responseAlloc holds a response with its body and the values of a few
// header fields, so that reading a response allocates once for them.
type responseAlloc struct {
	res  http.Response
	rb   respBody
	vals [8]string
}

func (a *responseAlloc) body(pc *persistConn, mode respMode, n int64, reusable bool) *respBody {
	b := &a.rb
	b.pc, b.res, b.mode, b.remaining, b.reusable = pc, &a.res, mode, n, reusable
	return b
}

type respMode uint8

const (
	bodyLength respMode = iota
	bodyChunked
	bodyUntilClose
)

// respBody is a response body. Reading it to the end ends the round trip;
// closing it earlier closes the connection, unless the rest of the body
// is already buffered. Close may be called while a Read is blocked in
// another goroutine: it then closes the connection to stop the Read.
type respBody struct {
	mu        sync.Mutex
	pc        *persistConn
	res       *http.Response
	mode      respMode
	remaining int64
	cr        chunkedReader
	reusable  bool
	reading   bool
	closed    bool
	done      bool
	err       error
}

// Read reads the body.
func (b *respBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	switch {
	case b.closed:
		b.finish(false, errClosedBody)
		return n, errClosedBody
	case err == io.EOF:
		b.finish(b.reusable, io.EOF)
	case err != nil:
		err = b.pc.readError(err)
		b.finish(false, err)
	}
	return n, err
}

func (b *respBody) read(p []byte) (int, error) {
	pc := b.pc
	switch b.mode {
	case bodyChunked:
		n, err := b.cr.Read(p)
		if err == io.EOF && b.cr.trailer != nil {
			if b.res.Trailer == nil {
				b.res.Trailer = b.cr.trailer
			} else {
				for k, v := range b.cr.trailer {
					b.res.Trailer[k] = v
				}
			}
		}
		return n, err
	case bodyUntilClose:
		return pc.br.Read(p)
	}
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := pc.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readError is the error a caller sees for a failed body read: the
// context's error when it was cancelled, ErrResponseIdle when the idle
// deadline passed.
func (pc *persistConn) readError(err error) error {
	if pc.canceled.Load() && pc.ctx != nil && pc.ctx.Err() != nil {
		return pc.ctx.Err()
	}
	if pc.inBody && pc.t.ResponseIdleTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrResponseIdle
	}
	return err
}

// finish ends the round trip once (b.mu held).
func (b *respBody) finish(reuse bool, err error) {
	if b.done {
		return
	}
	b.done, b.err = true, err
	b.pc.release(reuse)
}

// Close ends the body. The connection is kept when the rest of a
// Content-Length body is already buffered, and closed otherwise.
func (b *respBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		if b.err == io.EOF {
			b.err = errClosedBody
		}
		return nil
	}
	if b.reading {
		b.closed = true
		b.pc.conn.Close() // unblocks the Read, which finishes the round trip
		return nil
	}
	reuse := false
	if b.mode == bodyLength && b.remaining <= int64(b.pc.br.buffered()) {
		b.pc.br.discard(int(b.remaining))
		b.remaining = 0
		reuse = b.reusable
	}
	b.finish(reuse, errClosedBody)
	return nil
}

// upgradeBody is the body of a 101 Switching Protocols response: the
// connection itself, read (buffered bytes first) and written in both
// directions, as httputil.ReverseProxy expects. It never returns to the
// pool.
type upgradeBody struct {
	pc   *persistConn
	once sync.Once
}

func (u *upgradeBody) Read(p []byte) (int, error)  { return u.pc.br.Read(p) }
func (u *upgradeBody) Write(p []byte) (int, error) { return u.pc.conn.Write(p) }

// Close closes the connection. The read buffer is left to the garbage
// collector, since a Read may still be running in another goroutine.
func (u *upgradeBody) Close() error {
	var err error
	u.once.Do(func() {
		u.pc.stopWatch()
		err = u.pc.conn.Close()
	})
	return err
}
