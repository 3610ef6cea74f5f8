package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// persistConn is one upstream connection. It serves one round trip at a
// time: RoundTrip takes it from the pool, and the response body gives it
// back (or closes it).
type persistConn struct {
	t      *Transport
	key    string
	pool   *hostPool // key's, once the connection was idle (under t.mu)
	host   string    // the last request's Host, found valid
	conn   net.Conn
	br     reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
	head   responseHead

	// The round trip in progress.
	ctx      context.Context // the request's, to report its error after a cancellation
	written  int64           // bytes the connection accepted
	gotBytes bool            // some byte of a response was read
	canceled atomic.Bool
	stop     func() bool // stops the context watch
	onCancel func()      // pc.cancel, made once
	watched  *conn       // the server connection whose close runs onCancel
	scratch  []byte

	raw     syscall.RawConn // for the idle check, nil if unavailable
	peekFn  func(fd uintptr) bool
	peekBuf [1]byte
	alive   bool
	closed  bool

	rdSet  bool      // a read deadline is set on conn
	rd     time.Time // that deadline
	inBody bool      // the response head was read; reads are body reads

	writeDeadline time.Time // the round trip's head deadline, for the request's writes
	wdSet         bool      // it is set on conn

	sor       sendOnReader // conn, if it can send a request as it starts reading the reply
	hold      bool         // the next Write is the request's last: hand it to sor
	needCheck bool         // the idle check is still to be made before the first byte is sent

	rawHeader http.Header // the empty Header of the responses whose fields go to a RawHead
}

// sendOnReader is a connection that can send a request within the first
// read of its reply (rawTCPConn, on Linux): one system call fewer per
// round trip, the read that would fail because the reply cannot be there
// yet.
type sendOnReader interface {
	sendOnRead(p []byte, check bool, sent *int64, writeDeadline time.Time)
}

// errStaleIdle is the failure of an idle connection found, as a request
// was about to be sent on it, closed by the upstream or holding bytes
// nobody asked for; nothing was sent.
var errStaleIdle = errors.New("h1: idle upstream connection was closed or sent unsolicited bytes")

var aLongTimeAgo = time.Unix(1, 0)

var errClosedBody = errors.New("h1: read on closed response body")

func newPersistConn(t *Transport, key string, c net.Conn) *persistConn {
	pc := &persistConn{t: t, key: key, conn: c}
	pc.br.reset(c)
	pc.br.onBlock = pc.beforeBlock
	pc.bw = bufio.NewWriterSize(pc, writeBufSize)
	pc.onCancel = pc.cancel
	pc.sor, _ = c.(sendOnReader)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
			pc.peekFn = pc.peek
		}
	}
	return pc
}

// Write counts what the connection accepted, to tell a request that was
// never sent from one that was.
//
// The idle check of a reused connection is made before its first byte
// is written: within the write of a request without a body (hold), else
// here.
func (pc *persistConn) Write(p []byte) (int, error) {
	if pc.hold {
		// The check is made even on a new connection: it is what makes
		// waiting without a first read safe (nothing can be pending).
		pc.hold, pc.needCheck = false, false
		pc.sor.sendOnRead(p, true, &pc.written, pc.writeDeadline)
		return len(p), nil
	}
	if !pc.writeDeadline.IsZero() && !pc.wdSet {
		pc.wdSet = true
		pc.conn.SetWriteDeadline(pc.writeDeadline)
	}
	if pc.needCheck {
		pc.needCheck = false
		if !pc.usable() {
			return 0, errStaleIdle
		}
	}
	n, err := pc.conn.Write(p)
	pc.written += int64(n)
	return n, err
}

// setReadDeadline sets the read deadline for a response head or body.
func (pc *persistConn) setReadDeadline(t time.Time) {
	pc.conn.SetReadDeadline(t)
	pc.rd, pc.rdSet = t, !t.IsZero()
}

// upstreamDeadlineSlack: a response-head or body-idle deadline may fire up to
// 1/32 of its timeout late.
const upstreamDeadlineSlack = 32

// setSlackDeadline sets the read deadline dl (not zero) of a wait that
// starts at now (a round trip's for its response head, a body read's for
// its idle timeout), late by up to 1/32 of its timeout: a deadline
// already set that falls within that margin is kept, and a new one is set
// at the margin's end, so that on a connection used again and again the
// runtime's timer is not reset for every request or read (which cost
// about 1 % of a proxied request's CPU). A timeout T thus fires between
// T and T + T/32 after the wait starts.
func (pc *persistConn) setSlackDeadline(now, dl time.Time) {
	slack := dl.Sub(now) / upstreamDeadlineSlack
	if pc.rdSet && !pc.rd.Before(dl) && pc.rd.Sub(dl) <= slack {
		return
	}
	pc.setReadDeadline(dl.Add(slack))
}

// beforeBlock replaces the response-head deadline before a body read
// blocks: a body may stream for as long as the caller reads it, with at
// most ResponseIdleTimeout (when set) between two reads, a deadline kept
// as the head's is, late by up to 1/32 of it. While the head and the body
// arrive together, as they mostly do, the head's deadline is set once per
// round trip and nothing else happens.
//
// A cancellation (cancel: the deadline in the past) must not be undone by
// a deadline set here after it: canceled is stored before cancel sets its
// deadline, so it is read after setting ours, and the past is set again.
func (pc *persistConn) beforeBlock() {
	if !pc.inBody {
		return
	}
	if d := pc.t.ResponseIdleTimeout; d > 0 {
		now := time.Now()
		pc.setSlackDeadline(now, now.Add(d))
	} else if pc.rdSet {
		pc.setReadDeadline(time.Time{})
	} else {
		return
	}
	if pc.canceled.Load() {
		pc.conn.SetDeadline(aLongTimeAgo)
	}
}

// cancel runs when the request's context ends: it makes every blocked or
// future operation on the connection fail at once.
func (pc *persistConn) cancel() {
	pc.canceled.Store(true)
	pc.conn.SetDeadline(aLongTimeAgo)
}

// stopWatch stops watching the context; it reports false when the
// cancellation already happened (the connection is then unusable).
func (pc *persistConn) stopWatch() bool {
	ok := true
	if pc.stop != nil {
		ok = pc.stop()
		pc.stop = nil
	}
	if pc.watched != nil {
		ok = pc.watched.upstreamCancel.CompareAndSwap(&pc.onCancel, nil)
		pc.watched = nil
	}
	pc.ctx = nil
	return ok && !pc.canceled.Load()
}

func (pc *persistConn) closeConn() {
	if pc.closed {
		return
	}
	pc.closed = true
	pc.conn.Close()
	pc.br.release()
}

// usable reports whether an idle connection can take a request: the
// upstream has neither closed it nor sent anything unsolicited since the
// last response (either would desynchronize the next response).
func (pc *persistConn) usable() bool {
	if pc.br.buffered() > 0 {
		return false
	}
	if pc.raw == nil {
		return true
	}
	pc.alive = false
	if err := pc.raw.Read(pc.peekFn); err != nil {
		return false
	}
	return pc.alive
}

func (pc *persistConn) roundTrip(req *http.Request, now, deadline time.Time) (*http.Response, error) {
	ctx := req.Context()
	pc.ctx, pc.written, pc.gotBytes, pc.inBody = ctx, 0, false, false
	pc.writeDeadline = deadline
	if pc.canceled.Load() { // an atomic store would wait for every store before it
		pc.canceled.Store(false)
	}
	if sc := watchFor(ctx); sc != nil && sc.upstreamCancel.CompareAndSwap(nil, &pc.onCancel) {
		// Served by this package's server, whose connection alone can end
		// ctx: its close runs the cancellation.
		pc.watched = sc
		if ctx.Err() != nil && sc.upstreamCancel.CompareAndSwap(&pc.onCancel, nil) {
			pc.cancel()
		}
	} else if ctx.Done() != nil {
		pc.stop = context.AfterFunc(ctx, pc.onCancel)
	}
	if !pc.reused { // a pooled one got it in getConn
		if hd := pc.t.headDeadline(now, deadline); !hd.IsZero() {
			pc.setSlackDeadline(now, hd)
		}
	}
	closeAfter, err := pc.writeRequest(req)
	if pc.wdSet {
		pc.wdSet = false
		pc.conn.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		var be *bodyError
		if pc.written > 0 && !errors.As(err, &be) && !pc.canceled.Load() {
			// The upstream may have answered early and stopped reading.
			pc.setReadDeadline(time.Now().Add(50 * time.Millisecond))
			if res, rerr := pc.readResponse(req, true); rerr == nil {
				return res, nil
			}
		}
		return nil, pc.fail(err)
	}
	if req.Body != nil && req.Body != http.NoBody {
		// ResponseHeaderTimeout is counted from the end of the body.
		end := time.Now()
		if hd := pc.t.headDeadline(end, deadline); !hd.IsZero() {
			pc.setSlackDeadline(end, hd)
		}
	}
	res, err := pc.readResponse(req, closeAfter)
	if err != nil {
		return nil, pc.fail(err)
	}
	return res, nil
}

// fail closes the connection after a failed round trip and returns the
// error the caller should see.
func (pc *persistConn) fail(err error) error {
	ctx := pc.ctx
	pc.stopWatch()
	pc.closeConn()
	if pc.canceled.Load() && ctx != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if pc.written == 0 {
		return notSent(err)
	}
	var ne net.Error
	if pc.reused && !pc.gotBytes && !errors.Is(err, ErrBadResponse) && !(errors.As(err, &ne) && ne.Timeout()) && ctx != nil && ctx.Err() == nil {
		return &staleConnError{err}
	}
	return err
}

// bodyError is a failure to read the request body (the client's side).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "h1: reading request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// checkField checks an extra field the caller has not marked Checked.
func checkField(f *Field) error {
	switch f.Name {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
		return fmt.Errorf("h1: %s cannot be an extra field", f.Name)
	}
	if !validFieldName(f.Name) {
		return fmt.Errorf("h1: invalid header field name %q", f.Name)
	}
	if !validFieldValueString(f.Value) {
		return fmt.Errorf("h1: invalid header field value for %q", f.Name)
	}
	return nil
}

// writeRequest writes the request line, the header fields and the body,
// and flushes. It reports whether the request asked to close the
// connection after the response.
func (pc *persistConn) writeRequest(req *http.Request) (closeAfter bool, err error) {
	defer closeBody(req)
	// The head is built in scratch and goes to bw in one copy, when it is
	// complete: a request refused on the way leaves nothing in bw.
	b := pc.scratch[:0]
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	b = append(b, method...)
	b = append(b, ' ')
	u := req.URL
	if u.Opaque != "" {
		if !validTarget(u.Opaque) {
			return false, pc.abandon(errors.New("h1: invalid request target"))
		}
		b = append(b, u.RequestURI()...)
	} else {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		if !validTarget(p) || !validTarget(u.RawQuery) {
			return false, pc.abandon(errors.New("h1: invalid request target"))
		}
		b = append(b, p...)
		if u.ForceQuery || u.RawQuery != "" {
			b = append(b, '?')
			b = append(b, u.RawQuery...)
		}
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if host != pc.host { // most often the connection's one instance's, checked before
		for i := 0; i < len(host); i++ {
			if !hostChars[host[i]] {
				return false, pc.abandon(fmt.Errorf("h1: invalid Host %q", host))
			}
		}
		pc.host = host
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	closeAfter = req.Close
	extra := FieldsFrom(req.Context())
	// A request that came on this package's server connection (watched
	// by this round trip) holds strings of that request's head, which
	// the server checked: those are written without a second check.
	var parsed string
	var filter FieldFilter
	if len(req.Header) > 0 {
		if pc.watched != nil {
			parsed = headAt(pc.watched.parsed.Load())
		}
		filter = FieldFilterFrom(req.Context())
	}
	// The names of extra, as NameBits: most of the Header's names are
	// told apart from all of them by one AND, without comparing a name
	// with each (a gateway sends some ten extra fields, a browser's
	// request holds some ten fields).
	var extraNames uint64
	for i := range extra {
		if !extra[i].Lines {
			extraNames |= NameBit(extra[i].Name)
		}
	}
	for k, vs := range req.Header {
		if extraNames&NameBit(k) != 0 && extra.has(k) || filter != nil && !filter.SendField(k) {
			continue
		}
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "Connection":
			for _, v := range vs {
				eachToken([]byte(v), func(tok []byte) {
					if equalFoldLower(tok, "close") {
						closeAfter = true
					}
				})
			}
		}
		if !parsedName(parsed, k) && !validFieldName(k) {
			return false, pc.abandon(fmt.Errorf("h1: invalid header field name %q", k))
		}
		for _, v := range vs {
			if !inHead(parsed, v) && !validFieldValueString(v) {
				return false, pc.abandon(fmt.Errorf("h1: invalid header field value for %q", k))
			}
			if v == "" && k == "User-Agent" {
				continue
			}
			b = appendFieldLine(b, k, v)
		}
	}
	for i := range extra {
		f := &extra[i]
		if f.Omit {
			continue // it only kept the Header's fields of its name out
		}
		if f.Lines {
			if !f.Checked {
				return false, pc.abandon(errors.New("h1: a Lines field must be Checked"))
			}
			b = append(b, f.Value...)
			continue
		}
		if !f.Checked {
			if err := checkField(f); err != nil {
				return false, pc.abandon(err)
			}
		}
		if f.Value == "" && f.Name == "User-Agent" {
			continue
		}
		b = appendFieldLine(b, f.Name, f.Value)
	}
	if req.Close && req.Header["Connection"] == nil {
		b = append(b, "Connection: close\r\n"...)
	}
	body, cl := req.Body, req.ContentLength
	if body == http.NoBody {
		body = nil
	}
	var first []byte
	if body != nil && cl == 0 {
		// A zero length with a body means unknown (net/http's rule): look
		// at one byte to tell an empty body from one to send chunked.
		var one [1]byte
		n, rerr := io.ReadFull(body, one[:])
		switch {
		case n == 1:
			first, cl = one[:], -1
		case rerr == io.EOF:
			body = nil
		default:
			return false, pc.abandon(&bodyError{rerr})
		}
	}
	switch {
	case body != nil && cl > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, cl, 10)
		b = append(b, "\r\n\r\n"...)
	case body != nil:
		b = append(b, "Transfer-Encoding: chunked\r\n\r\n"...)
	default:
		switch method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			b = append(b, "Content-Length: 0\r\n"...)
		}
		b = append(b, "\r\n"...)
	}
	pc.bw.Write(b)
	pc.scratch = keptScratch(b)
	switch {
	case body != nil && cl > 0:
		err = pc.writeBody(body, cl)
	case body != nil:
		err = pc.writeChunked(body, first)
	}
	if err != nil {
		return false, err
	}
	// Without a body, the request is sent as its reply starts to be read.
	pc.hold = body == nil && pc.sor != nil
	err = pc.bw.Flush()
	pc.hold = false
	return closeAfter, err
}

// abandon fails a request refused while its head was being built. The
// head is built aside and written to bw only when complete, so nothing
// of it reached bw; bw is reset all the same, so that a refused request
// can never leave bytes behind for the next one.
func (pc *persistConn) abandon(err error) error {
	pc.bw.Reset(pc)
	return err
}

func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// writeBody copies exactly n bytes of body: a small body through the
// writer's free space, a large one through a pooled buffer.
func (pc *persistConn) writeBody(body io.Reader, n int64) error {
	bw := pc.bw
	if n > int64(bw.Available()) {
		bp := chunkBufPool.Get().(*[]byte)
		defer chunkBufPool.Put(bp)
		return copyN(bw, body, n, *bp)
	}
	buf := bw.AvailableBuffer()
	buf = buf[:n]
	for len(buf) > 0 {
		m, err := body.Read(buf)
		bw.Write(buf[:m])
		buf = buf[m:]
		if err == io.EOF && len(buf) > 0 {
			return &bodyError{io.ErrUnexpectedEOF}
		}
		if err != nil && err != io.EOF {
			return &bodyError{err}
		}
	}
	return nil
}

// copyN copies exactly n bytes from body to w with buf.
func copyN(w io.Writer, body io.Reader, n int64, buf []byte) error {
	for n > 0 {
		m, err := body.Read(buf[:min(int64(len(buf)), n)])
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return werr
			}
			n -= int64(m)
		}
		if err == io.EOF {
			if n > 0 {
				return &bodyError{io.ErrUnexpectedEOF}
			}
			break
		}
		if err != nil {
			return &bodyError{err}
		}
	}
	return nil
}

var chunkBufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// writeChunked sends body with the chunked coding, one chunk per read,
// flushed at once so that a streamed body is not held back.
func (pc *persistConn) writeChunked(body io.Reader, first []byte) error {
	bw := pc.bw
	bp := chunkBufPool.Get().(*[]byte)
	defer chunkBufPool.Put(bp)
	buf := *bp
	for {
		var n int
		var err error
		if first != nil {
			n = copy(buf, first)
			first = nil
		} else {
			n, err = body.Read(buf)
		}
		if n > 0 {
			pc.scratch = chunkHeader(pc.scratch[:0], n)
			bw.Write(pc.scratch)
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &bodyError{err}
		}
	}
	_, err := bw.WriteString("0\r\n\r\n")
	return err
}

// readResponse reads the response head, skipping 1xx responses (passed to
// the context's Informational or httptrace.ClientTrace), and
// returns the response with a body that ends the round trip.
func (pc *persistConn) readResponse(req *http.Request, reqClose bool) (*http.Response, error) {
	t := pc.t
	h := &pc.head
	var n int
	for n1xx := 0; ; n1xx++ {
		var err error
		var parsed bool
		if n, parsed, err = pc.readHead(t.maxHeaderBytes()); err != nil {
			return nil, err
		}
		if !parsed {
			if err := parseResponseHead(pc.br.bytes()[:n], h); err != nil {
				return nil, err
			}
		}
		if h.status >= 200 || h.status == http.StatusSwitchingProtocols {
			break
		}
		if n1xx >= 5 {
			return nil, badResponse("too many 1xx responses")
		}
		if h.status != http.StatusContinue {
			if got := InformationalFrom(req.Context()); got != nil {
				hdr, _ := pc.header(n, 0, nil)
				if err := got(h.status, textproto.MIMEHeader(hdr)); err != nil {
					return nil, err
				}
			}
		}
		pc.br.discard(n)
	}
	pc.inBody = true
	drop := uint32(0)
	if h.chunked {
		drop |= 1 << kindTransferEncoding
	}
	if h.trailer {
		drop |= 1 << kindTrailer
	}
	a := new(responseAlloc)
	res := &a.res
	res.StatusCode, res.ProtoMajor, res.ProtoMinor, res.Proto, res.Request = h.status, 1, h.minor, "HTTP/1.1", req
	var rh *RawHead
	if h.status != http.StatusSwitchingProtocols {
		rh = RawHeadFrom(req.Context())
	}
	var trailer http.Header
	if rh != nil {
		// The fields go to rh as lines, not into a map: no map, no string
		// of the head.
		b := pc.br.bytes()[:n]
		if h.chunked && h.trailer {
			trailer = declaredTrailers(h, b)
		}
		rh.fill(res, h, b, drop|hopByHopKinds|1<<kindContentLength)
		res.Header = reusedHeader(&pc.rawHeader, 0)
		res.Status = statusString(h.status, h.statusText.get(b))
	} else {
		strip := t.StripHopByHop && h.status != http.StatusSwitchingProtocols
		if strip {
			drop |= hopByHopKinds
		}
		var raw string
		res.Header, raw = pc.header(n, drop, a.vals[:])
		b := pc.br.bytes()[:n]
		if strip {
			for k := range connectionNamed(h, b) {
				delete(res.Header, k)
			}
		}
		if h.chunked && h.trailer {
			trailer = declaredTrailers(h, b)
		}
		res.Status = h.statusText.str(raw)
	}
	if h.minor == 0 {
		res.Proto = "HTTP/1.0"
	}
	pc.br.discard(n)
	reusable := !reqClose && !h.close && (h.minor == 1 || h.keepAlive)
	switch {
	case h.status == http.StatusSwitchingProtocols:
		if !upgradeRequested(req) {
			return nil, badResponse("101 Switching Protocols without an upgrade request")
		}
		res.ContentLength = -1
		if pc.rdSet {
			pc.setReadDeadline(time.Time{})
		}
		pc.inBody = false // a tunnel's reads are not a body's: no idle deadline
		res.Body = &upgradeBody{pc: pc}
		return res, nil
	case req.Method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified:
		res.ContentLength = 0
		if req.Method == http.MethodHead && h.status != http.StatusNoContent && h.status != http.StatusNotModified {
			res.ContentLength = h.contentLength
		}
		res.Body = http.NoBody
		pc.release(reusable)
	case h.chunked:
		res.ContentLength = -1
		res.TransferEncoding = []string{"chunked"}
		res.Trailer = trailer
		b := a.body(pc, bodyChunked, 0, reusable)
		b.cr.reset(&pc.br, true, t.maxHeaderBytes())
		res.Body = b
	case h.contentLength == 0:
		res.Body = http.NoBody
		pc.release(reusable)
	case h.contentLength > 0:
		res.ContentLength = h.contentLength
		res.Body = a.body(pc, bodyLength, h.contentLength, reusable)
	default:
		res.ContentLength = -1
		res.Close = true
		res.Body = a.body(pc, bodyUntilClose, 0, false)
	}
	res.Close = res.Close || !reusable
	return res, nil
}

func upgradeRequested(req *http.Request) bool {
	if _, ok := req.Header["Upgrade"]; !ok {
		return false
	}
	for _, v := range req.Header["Connection"] {
		found := false
		eachToken([]byte(v), func(tok []byte) { found = found || equalFoldLower(tok, "upgrade") })
		if found {
			return true
		}
	}
	return false
}

// release ends the round trip after the whole response was read: the
// connection goes back to the pool when reuse is allowed and nothing
// else arrived on it, and is closed otherwise.
func (pc *persistConn) release(reuse bool) {
	pc.inBody = false
	if pc.stopWatch() && reuse && pc.br.buffered() == 0 && pc.br.stickyErr() == nil {
		pc.t.putIdle(pc)
		return
	}
	pc.closeConn()
}

// readHead reads until a complete response head is buffered. As the
// server's readHead does, it parses a head that came whole in the first
// read at once (into pc.head; parsed says so) and lets anything else go
// the way it went before.
func (pc *persistConn) readHead(max int) (n int, parsed bool, _ error) {
	scan, tried := 0, false
	for {
		b := pc.br.bytes()
		if len(b) > 0 {
			pc.gotBytes = true
			if !tried && len(b) <= max {
				tried = true
				if n, err := parseResponseHeadPrefix(b, &pc.head); err == nil {
					return n, true, nil
				}
			}
		}
		n, next, err := findHeadEnd(b, scan)
		if err != nil {
			return 0, false, badResponse(err.Error())
		}
		if n > 0 {
			if n > max {
				return 0, false, badResponse("response head too large")
			}
			return n, false, nil
		}
		scan = next
		if len(b) >= max {
			return 0, false, badResponse("response head too large")
		}
		switch err := pc.br.fill(); err {
		case nil:
		case errBufferFull:
			if !pc.br.grow(max) {
				return 0, false, badResponse("response head too large")
			}
		default:
			if err == io.EOF && pc.gotBytes {
				err = io.ErrUnexpectedEOF
			}
			return 0, false, err
		}
	}
}
