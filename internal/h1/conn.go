package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one client connection, served by one goroutine: read a head,
// call the handler, finish the response, repeat.
type conn struct {
	srv        *Server
	rwc        net.Conn
	remoteAddr string
	peer       netip.AddrPort // remoteAddr, parsed once
	ctx        context.Context
	cancel     context.CancelFunc
	state      atomic.Int32
	br         reader
	bw         *bufio.Writer
	// wmu serializes the response's use of bw with a request body's
	// reader in another goroutine, which sends what bw holds before it
	// waits for the client (flushLocked) and may send 100 Continue. The
	// response takes it only while the request has a body (c.body).
	wmu       sync.Mutex
	head      requestHead
	w         response
	body      *body
	handedOff bool
	tmpl      *http.Request // context and RemoteAddr of every request
	accepted  time.Time
	// The read and write deadlines set on rwc, as offsets from accepted
	// (0: none): the request path adds and compares durations, and makes
	// a time.Time only when it sets a deadline (time.Time's Add and Sub
	// cost some 60 instructions each).
	rdAt, wdAt time.Duration
	now        time.Time     // when the current request's head was read
	reqAlloc   *requestAlloc // the request every request reuses (Server.ReuseRequests)
	// parsed is the head of the request read last, as copyHead copied
	// it (headAt reads it): a Transport's round trip made for that
	// request writes the names and values that lie in it unchecked.
	// Atomic: a round trip may outlive its handler.
	parsed atomic.Pointer[byte]

	// The yield before reading the next request (awaitRequest): waits
	// tells whether a read had to wait for its data (nil: rwc cannot
	// tell, and the connection always yields); yieldMisses counts the
	// yields in a row after which the read waited all the same, and
	// noYield the requests left that skip the yield after yieldMissLimit
	// of those.
	waits       readWaiter
	yieldMisses uint8
	noYield     uint8

	// upstreamCancel is the cancellation of an upstream round trip (of
	// this package's Transport) made under this connection's context:
	// run when the connection closes, as context.AfterFunc would, without
	// registering in the context per round trip.
	upstreamCancel atomic.Pointer[func()]

	// The check for a client that has closed its connection while its
	// request runs (closecheck.go): reqs counts the connection's
	// requests; watch is the number of the one under way once its client
	// has sent all of it (0: not now); swept is what the server's last
	// sweep found in watch (the sweep's alone, under Server.mu).
	reqs  uint64
	watch atomic.Uint64
	swept uint64
}

// connKey finds, in a request's context, the server connection it came on.
type connKey struct{}

// connContext is a connection's context (a cancelable one, embedded): it
// answers connKey with the connection by a type assertion, before the
// contexts it derives from are asked. A context.WithValue's lookup would
// pass the cancelable context first and compare the key by the
// runtime's interface equality; PeerAddr and a Transport's round trip
// ask once each per proxied request.
type connContext struct {
	context.Context
	c *conn
}

func (x *connContext) Value(key any) any {
	if _, ok := key.(connKey); ok {
		return x.c
	}
	return x.Context.Value(key)
}

// PeerAddr returns the address of the client of the h1 server connection
// that ctx (a request's context) belongs to, parsed once per connection;
// false for a request that did not come through an h1 Server.
func PeerAddr(ctx context.Context) (netip.AddrPort, bool) {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil || !c.peer.IsValid() {
		return netip.AddrPort{}, false
	}
	return c.peer, true
}

// cancelAll ends the connection's context and an upstream round trip
// watching it.
func (c *conn) cancelAll() {
	c.cancel()
	if f := c.upstreamCancel.Swap(nil); f != nil {
		(*f)()
	}
}

// watchFor returns the connection whose closing alone ends ctx (no other
// cancellation or deadline between them), or nil.
func watchFor(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil || ctx.Done() != c.ctx.Done() {
		return nil
	}
	return c
}

// deadlineSlack is the fraction of a timeout by which a deadline that is
// already set may be earlier than asked before it is set again: on a busy
// keep-alive connection most deadline updates are skipped, and a timeout
// is never longer than configured, at most 1/16 shorter.
const deadlineSlack = 16

// setReadDeadline sets the read deadline to at (an offset from
// c.accepted; 0: none), unless the one set is at most
// timeout/deadlineSlack earlier (timeout 0: always set).
func (c *conn) setReadDeadline(at, timeout time.Duration) {
	if keepDeadline(c.rdAt, at, timeout) {
		return
	}
	c.rdAt = at
	c.rwc.SetReadDeadline(c.timeAt(at))
}

func (c *conn) setWriteDeadline(at, timeout time.Duration) {
	if keepDeadline(c.wdAt, at, timeout) {
		return
	}
	c.wdAt = at
	c.rwc.SetWriteDeadline(c.timeAt(at))
}

func keepDeadline(cur, want, timeout time.Duration) bool {
	if cur == want {
		return true
	}
	if cur == 0 || want == 0 || want < cur {
		return false
	}
	return want-cur < timeout/deadlineSlack
}

// sinceAccepted returns the time now as an offset from c.accepted, by
// the monotonic clock: what a deadline d from now is, plus d.
func (c *conn) sinceAccepted() time.Duration {
	return max(time.Since(c.accepted), 1)
}

// at returns t as an offset from c.accepted: 0 for the zero Time (no
// deadline), at least 1 for any other (a deadline set before the
// connection was accepted is as past as one just after).
func (c *conn) at(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return max(t.Sub(c.accepted), 1)
}

// timeAt is the Time of an offset from c.accepted (0: the zero Time).
func (c *conn) timeAt(at time.Duration) time.Time {
	if at == 0 {
		return time.Time{}
	}
	return c.accepted.Add(at)
}

func (s *Server) newConn(rwc net.Conn, base context.Context) *conn {
	rwc = wrapConn(rwc)
	c := &conn{srv: s, rwc: rwc, remoteAddr: rwc.RemoteAddr().String(), accepted: time.Now()}
	c.waits, _ = rwc.(readWaiter)
	if ta, ok := rwc.RemoteAddr().(*net.TCPAddr); ok {
		c.peer = ta.AddrPort()
	}
	ctx, cancel := context.WithCancel(context.WithValue(base, http.LocalAddrContextKey, rwc.LocalAddr()))
	c.ctx, c.cancel = &connContext{Context: ctx, c: c}, cancel
	c.tmpl = (&http.Request{RemoteAddr: c.remoteAddr}).WithContext(c.ctx)
	return c
}

func (c *conn) serve() {
	defer c.close()
	c.br.reset(c.rwc)
	c.bw = bufWriterPool.Get().(*bufio.Writer)
	c.bw.Reset(c.rwc)
	c.br.onBlock = c.flush
	if d := c.srv.headerTimeout(); d > 0 {
		c.setReadDeadline(c.sinceAccepted()+d, 0)
	}
	for first := true; ; first = false {
		if !c.awaitRequest(first) {
			return
		}
		n, parsed, perr, err := c.readHead(first)
		if err != nil {
			return
		}
		if perr == nil && !parsed {
			perr = parseRequestHead(c.br.bytes()[:n], &c.head, c.srv.maxURIBytes())
		}
		if perr != nil {
			c.refuse(perr)
			return
		}
		if c.head.h2Preface || c.head.upgrade {
			// Only a WebSocket offer (and the HTTP/2 preface) goes to
			// the fallback: another offer (h2c above all) is dropped
			// here and the request served as a plain one, so that the
			// connection stays with h1's parser.
			if c.srv.Fallback != nil && (c.head.h2Preface || c.head.webSocket) {
				c.handoff()
				return
			}
			if c.head.h2Preface {
				c.refuse(errVersionNotSupp)
				return
			}
			c.head.dropUpgrade()
		}
		if !c.serveRequest(n) {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request, as an idle
// connection that Shutdown may close.
func (c *conn) awaitRequest(first bool) bool {
	if c.br.buffered() > 0 {
		return c.state.Load() == stateActive
	}
	if c.bw.Buffered() > 0 {
		if c.bw.Flush() != nil {
			return false
		}
	}
	from, yield := stateNew, false
	if !first {
		from = stateIdle
		if !c.state.CompareAndSwap(stateActive, stateIdle) {
			return false
		}
		if c.srv.shuttingDown() {
			return false
		}
		var deadline time.Duration
		d := c.srv.idleTimeout()
		if d > 0 {
			// By the monotonic clock alone: half the cost of time.Now.
			deadline = c.sinceAccepted() + d
		}
		c.setReadDeadline(deadline, d)
		c.br.shrink()
		// The response has just been sent, so the next request is
		// rarely here yet: reading now would most often fail (EAGAIN),
		// then park and wait for the netpoller, one system call more
		// per request than an event loop makes. Let the goroutines that
		// are ready run first; when there are none, this returns at
		// once. (perf stat, 64 connections: failed reads per request
		// 1.97 → 1.02, the one left being the upstream idle check.)
		// When the read waits all the same, time after time (one busy
		// connection, or an idle one), the yield only costs: it is
		// skipped for a while (yielded).
		if c.noYield > 0 {
			c.noYield--
		} else {
			runtime.Gosched()
			yield = true
		}
	}
	if c.br.fill() != nil {
		return false
	}
	if yield {
		c.yielded()
	}
	return c.state.CompareAndSwap(from, stateActive)
}

// readWaiter is a connection that tells whether its last Read had to
// wait for data (rawTCPConn).
type readWaiter interface{ readWaited() bool }

const (
	yieldMissLimit = 8  // yields in a row that did not spare a wait
	yieldPause     = 64 // then the requests that skip the yield
)

// yielded notes whether the yield before the read that has just
// returned spared it a wait in the netpoller, and after yieldMissLimit
// yields in a row that did not, skips it for the next yieldPause
// requests, after which it is tried again.
func (c *conn) yielded() {
	if c.waits == nil {
		return
	}
	if !c.waits.readWaited() {
		c.yieldMisses = 0
		return
	}
	if c.yieldMisses++; c.yieldMisses >= yieldMissLimit {
		c.yieldMisses, c.noYield = 0, yieldPause
	}
}

// readHead reads until a complete head is buffered and returns its length.
// It refuses bare LF line endings as soon as it sees one, and heads or
// request lines over their limits. When the head came whole in the first
// read (the usual case), it is parsed into c.head at once, and parsed
// says so: parsing it found its end without a pass of findHeadEnd over
// it. Anything else (a head in pieces, an error, the HTTP/2 preface) goes
// the way it went before, so the answer is the same.
func (c *conn) readHead(first bool) (n int, parsed bool, _ *protoError, _ error) {
	maxHead, maxURI := c.srv.maxHeaderBytes(), c.srv.maxURIBytes()
	scan, skipped, deadlineSet, tried := 0, 0, first, false
	for {
		b := c.br.bytes()
		// RFC 9112 §2.2: ignore at least one empty line before a request.
		for scan == 0 && len(b) >= 2 && b[0] == '\r' && b[1] == '\n' && skipped < 4 {
			c.br.discard(2)
			b = b[2:]
			skipped++
		}
		if !tried && len(b) > 0 && len(b) <= maxHead {
			tried = true
			if n, pe := parseRequestHeadPrefix(b, &c.head, maxURI); pe == nil && n > 0 {
				return n, true, nil, nil
			}
		}
		n, next, err := findHeadEnd(b, scan)
		if err != nil {
			if err == errEmptyStart {
				return 0, false, errRequestLine, nil
			}
			return 0, false, errLineEnd, nil
		}
		if n > 0 {
			if n > maxHead {
				return 0, false, errHeadTooLong, nil
			}
			return n, false, nil, nil
		}
		scan = next
		if scan == 0 && len(b) > maxURI+32 {
			return 0, false, errURITooLong, nil
		}
		if len(b) >= maxHead {
			return 0, false, errHeadTooLong, nil
		}
		if !deadlineSet {
			if d := c.srv.headerTimeout(); d > 0 {
				c.setReadDeadline(c.sinceAccepted()+d, 0)
			}
			deadlineSet = true
		}
		switch err := c.br.fill(); err {
		case nil:
		case errBufferFull:
			if !c.br.grow(maxHead) {
				return 0, false, errHeadTooLong, nil
			}
		default:
			return 0, false, nil, err
		}
	}
}

// serveRequest serves the request whose head (n bytes) is buffered and
// parsed. It reports whether the connection may serve another request.
func (c *conn) serveRequest(n int) bool {
	h := &c.head
	srv := c.srv
	var a *requestAlloc
	if srv.ReuseRequests {
		if c.reqAlloc == nil {
			c.reqAlloc = new(requestAlloc)
		}
		a = c.reqAlloc
	}
	req, parsed, err := buildRequest(c.tmpl, c.br.bytes()[:n], h, a)
	c.br.discard(n)
	if err != nil {
		c.refuse(errPercent)
		return false
	}
	c.parsed.Store(parsed)
	now := time.Now()
	c.now = now
	var nowAt time.Duration // now, from c.accepted, when a deadline needs it
	if srv.WriteTimeout > 0 || srv.ReadTimeout > 0 {
		nowAt = max(now.Sub(c.accepted), 1)
	}
	if srv.WriteTimeout > 0 {
		c.setWriteDeadline(nowAt+srv.WriteTimeout, srv.WriteTimeout)
	}
	req.Body = http.NoBody
	c.body = nil
	c.reqs++
	if h.chunked || h.contentLength > 0 {
		c.watch.Store(0) // until the body's end (body.ended)
		b := &body{r: &c.br, remaining: h.contentLength, chunked: h.chunked, c: c, seq: c.reqs}
		if h.chunked {
			b.cr.reset(&c.br, false, srv.maxHeaderBytes())
		}
		if h.expect100 {
			b.cont = c
		}
		var deadline time.Duration
		if srv.ReadTimeout > 0 {
			deadline = nowAt + srv.ReadTimeout
		}
		b.readBy = deadline
		c.setReadDeadline(deadline, srv.ReadTimeout)
		req.Body = b
		c.body = b
		c.br.onBlock = c.flushLocked
	} else {
		c.watchFrom(c.reqs)
	}
	w := &c.w
	w.reset(c, h.minor, req.Method == http.MethodHead)
	if !c.callHandler(w, req) {
		return false
	}
	c.watch.Store(0) // no request under way until the next one's head
	w.finish()
	if w.err != nil {
		return false
	}
	keep := !w.closeAfter
	if c.body != nil {
		keep = c.body.finish(keep)
		c.body = nil
		c.br.onBlock = c.flush
	}
	return keep
}

// bodyForcesClose reports whether the request body left unread is too
// large (or of unknown size) to be drained, so the response must close
// the connection.
func (c *conn) bodyForcesClose() bool {
	b := c.body
	if b == nil {
		return false
	}
	if !b.mu.TryLock() {
		// Another goroutine is reading the body now: what it will leave
		// unread cannot be known.
		return true
	}
	defer b.mu.Unlock()
	if b.eof {
		return false
	}
	return b.cont != nil || b.chunked || b.remaining > maxDrainBytes
}

// callHandler calls the handler and reports whether it returned normally.
// After a panic it answers 500 if nothing was written yet; a panic with
// http.ErrAbortHandler aborts the connection silently.
func (c *conn) callHandler(w *response, r *http.Request) (ok bool) {
	defer func() {
		if ok {
			return
		}
		v := recover()
		if v == nil || v == http.ErrAbortHandler {
			return
		}
		c.srv.log().Error("h1: panic serving request", "remote", c.remoteAddr, "method", r.Method,
			"panic", v, "stack", string(debug.Stack()))
		if c.body != nil {
			c.wmu.Lock()
			defer c.wmu.Unlock()
		}
		if !w.committed && w.err == nil {
			c.writeSimple(http.StatusInternalServerError, "Internal Server Error")
		}
	}()
	c.srv.Handler.ServeHTTP(w, r)
	return true
}

// writeContinue sends "100 Continue" before the first read of a body
// whose client expects it, if no response was started.
func (c *conn) writeContinue() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.wroteHeader || c.w.err != nil {
		return
	}
	c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		c.w.err = err
	}
}

// refuse answers a malformed request and closes the connection.
func (c *conn) refuse(pe *protoError) {
	c.srv.log().Debug("h1: refused request", "remote", c.remoteAddr, "status", pe.status, "reason", pe.reason)
	c.writeSimple(pe.status, pe.reason)
	c.closeWriteAndWait()
}

// writeSimple writes a short plain-text response with Connection: close.
func (c *conn) writeSimple(status int, msg string) {
	text := strconv.Itoa(status) + " " + statusText(status)
	body := text
	if msg != "" && msg != statusText(status) {
		body += ": " + msg
	}
	bw := c.bw
	bw.WriteString("HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nDate: ")
	bw.Write(c.srv.date.get(time.Now()))
	bw.WriteString("\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	bw.Flush()
}

// closeWriteAndWait half-closes the connection and reads what the client
// still sends for a moment, so that the response is not lost to a reset
// caused by unread input.
func (c *conn) closeWriteAndWait() {
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	cw.CloseWrite()
	c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, c.rwc, maxDrainBytes)
}

// flush sends buffered response bytes before the connection's reader
// blocks, so that a client waiting for a response is never left waiting.
func (c *conn) flush() {
	if c.bw.Buffered() > 0 {
		c.bw.Flush()
	}
}

// flushLocked is flush for the reads of a request's body, which may be
// made in a goroutine other than the handler's (http.Transport writes a
// request body from its own) while the handler writes the response.
func (c *conn) flushLocked() {
	c.wmu.Lock()
	c.flush()
	c.wmu.Unlock()
}

// handoff gives the connection, with what was read of it, to the fallback
// server.
func (c *conn) handoff() {
	ln := c.srv.fallbackListener()
	if ln == nil {
		c.refuse(errVersionNotSupp)
		return
	}
	if c.bw.Buffered() > 0 && c.bw.Flush() != nil {
		return
	}
	buffered := append([]byte(nil), c.br.bytes()...)
	c.rwc.SetDeadline(time.Time{})
	c.rdAt, c.wdAt = 0, 0
	c.handedOff = true
	rc := &replayConn{Conn: c.rwc, buf: buffered}
	if c.srv.ConnLimit != nil {
		// The connection keeps its slot while the fallback serves it.
		rc.release = c.srv.ConnLimit.Release
	}
	if !ln.deliver(rc) {
		c.handedOff = false
	}
}

// close ends the connection (unless it was handed off), releases its
// buffers and stops tracking it.
func (c *conn) close() {
	if !c.handedOff {
		if c.bw != nil {
			c.flushLocked()
		}
		c.rwc.Close()
		if c.srv.ConnLimit != nil {
			c.srv.ConnLimit.Release() // the slot Serve took for it
		}
	}
	if b := c.body; b != nil {
		// The handler panicked or its response failed, and a goroutine
		// of its may still read the body: Close waits for a read under
		// way, which the closed connection ends, and fails the next, so
		// that none reads the buffers released below.
		b.Close()
		c.body = nil
	}
	c.state.Store(stateClosed)
	c.cancelAll()
	c.br.release()
	if c.bw != nil {
		c.bw.Reset(nil)
		bufWriterPool.Put(c.bw)
		c.bw = nil
	}
	c.srv.trackConn(c, false)
}
