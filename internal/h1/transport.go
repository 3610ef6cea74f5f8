package h1

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Defaults of Transport.
const (
	DefaultDialTimeout            = 10 * time.Second
	DefaultIdleConnTimeout        = 90 * time.Second
	DefaultMaxIdleConnsPerHost    = 64
	DefaultMaxResponseHeaderBytes = 64 << 10
)

// Transport is an http.RoundTripper for plain HTTP/1.1 upstreams (http://
// URLs only; HTTPS and HTTP/2 stay on http.Transport). It writes each
// request and reads its response on the caller's goroutine over a
// connection from a per-host LIFO pool of idle connections; there is no
// goroutine per connection or per request. The response body returns the
// connection to the pool when it is read to the end and the connection
// can be reused, and closes it otherwise.
//
// Its zero value is usable. Fields must not change after the first
// RoundTrip.
type Transport struct {
	// DialContext dials upstream connections; nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds a dial. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response head after
	// the request was written. Zero means no limit (the request's context
	// still applies).
	ResponseHeaderTimeout time.Duration
	// ResponseIdleTimeout bounds the wait for more of a response body
	// once its head was read: a body read that gets nothing for this long
	// fails with ErrResponseIdle and the connection is closed. It is the
	// time between two reads, not the body's whole time, and it may fire
	// up to 1/32 of it late (a connection read again and again keeps its
	// timer). Zero means no limit. The connection of a 101 Switching
	// Protocols response is not bounded by it.
	ResponseIdleTimeout time.Duration
	// IdleConnTimeout closes connections idle for longer. Zero means
	// DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept per host.
	// Zero means DefaultMaxIdleConnsPerHost; negative keeps none.
	MaxIdleConnsPerHost int
	// MaxResponseHeaderBytes bounds a response head. Zero means
	// DefaultMaxResponseHeaderBytes.
	MaxResponseHeaderBytes int
	// StripHopByHop leaves the hop-by-hop fields out of the Header of a
	// final response other than 101 Switching Protocols: Connection,
	// Keep-Alive, Proxy-Connection, Proxy-Authenticate,
	// Proxy-Authorization, Te, Trailer, Transfer-Encoding, Upgrade, and
	// the fields its Connection names. A proxy sets it instead of removing
	// them from every response itself: the transport drops them while it
	// builds the map. The response's Close, ContentLength, Trailer and
	// TransferEncoding say what those fields said, as without it.
	StripHopByHop bool

	mu    sync.Mutex
	pools map[string]*hostPool // a pool leaves once its last idle connection timed out
	last  *hostPool            // the pool getConn found last, which most often it needs again
}

// ErrRequestNotSent is matched (with errors.Is) by the error of a round
// trip that failed before any byte of the request reached the
// connection: the upstream cannot have seen the request, so it is safe to
// send it again, to this upstream or another.
var ErrRequestNotSent = errors.New("h1: request not sent")

// ErrBadResponse is matched (with errors.Is) by the error of a round trip
// whose response was malformed or framed ambiguously; the connection is
// closed.
var ErrBadResponse = errors.New("h1: malformed response")

// ErrResponseIdle is the error of a response body read that got nothing
// for ResponseIdleTimeout. It is a net.Error whose Timeout is true, and it
// matches os.ErrDeadlineExceeded.
var ErrResponseIdle error = responseIdleError{}

type responseIdleError struct{}

func (responseIdleError) Error() string        { return "upstream response body idle timeout" }
func (responseIdleError) Timeout() bool        { return true }
func (responseIdleError) Temporary() bool      { return true }
func (responseIdleError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

type notSentError struct{ err error }

func (e *notSentError) Error() string   { return "h1: request not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() []error { return []error{ErrRequestNotSent, e.err} }

func notSent(err error) error {
	if errors.Is(err, ErrRequestNotSent) {
		return err
	}
	return &notSentError{err}
}

type badResponse string

func (e badResponse) Error() string        { return "h1: malformed response: " + string(e) }
func (e badResponse) Is(target error) bool { return target == ErrBadResponse }

func (t *Transport) dialTimeout() time.Duration {
	if t.DialTimeout > 0 {
		return t.DialTimeout
	}
	return DefaultDialTimeout
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout > 0 {
		return t.IdleConnTimeout
	}
	return DefaultIdleConnTimeout
}

func (t *Transport) maxIdle() int {
	switch {
	case t.MaxIdleConnsPerHost > 0:
		return t.MaxIdleConnsPerHost
	case t.MaxIdleConnsPerHost < 0:
		return 0
	}
	return DefaultMaxIdleConnsPerHost
}

func (t *Transport) maxHeaderBytes() int {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return DefaultMaxResponseHeaderBytes
}

// RoundTrip sends req and returns its response. A request sent on a
// pooled connection that the upstream had closed is sent again once on a
// new connection when nothing of a response was read and the request can
// be replayed (no body, or GetBody set) and is idempotent, as
// http.Transport does.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.roundTrip(req, time.Time{}, time.Time{})
}

// RoundTripHeadDeadline is RoundTrip with a deadline for the response
// head: dialing, sending the request and receiving the head must all be
// done by then, or the round trip fails with an error matching
// os.ErrDeadlineExceeded (context.DeadlineExceeded while dialing). It is
// enforced with the connection's deadlines, so it costs no context and
// no timer; the response body is not bounded by it. now is a reading of
// the clock the caller has just made, used instead of another (zero: the
// transport reads the clock).
func (t *Transport) RoundTripHeadDeadline(req *http.Request, now, deadline time.Time) (*http.Response, error) {
	return t.roundTrip(req, now, deadline)
}

func (t *Transport) roundTrip(req *http.Request, now, deadline time.Time) (*http.Response, error) {
	if err := checkRequest(req); err != nil {
		closeBody(req)
		return nil, notSent(err)
	}
	ctx := req.Context()
	stale := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, notSent(err)
		}
		if attempt > 0 || now.IsZero() {
			now = time.Now()
		}
		if !deadline.IsZero() && !now.Before(deadline) {
			closeBody(req)
			return nil, notSent(os.ErrDeadlineExceeded)
		}
		pc, err := t.getConn(ctx, req.URL.Host, now, deadline, req.Body == nil || req.Body == http.NoBody)
		if err != nil {
			closeBody(req)
			return nil, notSent(err)
		}
		res, err := pc.roundTrip(req, now, deadline)
		if err == nil {
			return res, nil
		}
		if errors.Is(err, errStaleIdle) && stale < maxStaleIdle {
			// Nothing was sent; the connection is closed. Take another.
			stale++
			attempt--
			continue
		}
		if attempt > 0 || !pc.reused || !retryable(req, err) {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := new(http.Request)
			*r2 = *req
			r2.Body = body
			req = r2
		}
	}
}

// staleConnError is the failure of a request on a reused connection that
// the upstream closed without sending any byte of a response.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string {
	return "h1: upstream closed a reused connection before responding: " + e.err.Error()
}
func (e *staleConnError) Unwrap() error { return e.err }

// retryable reports whether a request that failed on a reused
// connection may be sent again on a new one: its body can be recreated,
// and either nothing of it was sent or the upstream closed the connection
// without answering and the method is idempotent (or the request carries
// an idempotency key), as net/http decides.
func retryable(req *http.Request, err error) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if errors.Is(err, ErrRequestNotSent) {
		return true
	}
	var stale *staleConnError
	if !errors.As(err, &stale) {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return sends(req, "Idempotency-Key") || sends(req, "X-Idempotency-Key")
}

func checkRequest(req *http.Request) error {
	switch {
	case req.URL == nil:
		return errors.New("h1: nil Request.URL")
	case req.URL.Scheme != "http":
		return fmt.Errorf("h1: unsupported protocol scheme %q (only http)", req.URL.Scheme)
	case req.URL.Host == "":
		return errors.New("h1: no Host in request URL")
	case req.Header == nil:
		return errors.New("h1: nil Request.Header")
	}
	if req.Method != "" && !validFieldName(req.Method) {
		return fmt.Errorf("h1: invalid method %q", req.Method)
	}
	return nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPool holds the idle connections to one host: a LIFO stack, most
// recently used on top, oldest at the bottom.
type hostPool struct {
	t     *Transport
	key   string
	idle  []*persistConn
	timer *time.Timer
	armed bool
	// gone: pruned empty and out of pools (a connection that kept it
	// finds its key's pool again when it is put back).
	gone bool
}

// getConn takes the most recently used idle connection to host key that
// is still usable, or dials one. A pooled connection gets its
// response-head deadline here, before it is checked.
// maxStaleIdle bounds how many idle connections found stale one request
// goes through before it fails.
const maxStaleIdle = 64

// getConn takes an idle connection to key, checked as usable, or dials a
// new one. With deferCheck, a connection that can send a request as it
// reads the reply makes the check then, without a system call of its own.
func (t *Transport) getConn(ctx context.Context, key string, now, deadline time.Time, deferCheck bool) (*persistConn, error) {
	timeout := t.idleTimeout()
	t.mu.Lock()
	p := t.last
	if p == nil || p.key != key {
		p = t.pools[key]
		if p != nil {
			t.last = p
		}
	}
	for p != nil && len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		t.mu.Unlock()
		if now.Sub(pc.idleAt) < timeout {
			if hd := t.headDeadline(now, deadline); !hd.IsZero() {
				pc.setSlackDeadline(now, hd)
			} else if pc.rdSet {
				pc.setReadDeadline(time.Time{})
			}
			if deferCheck && pc.sor != nil && pc.br.buffered() == 0 {
				pc.reused, pc.needCheck = true, true
				return pc, nil
			}
			if pc.usable() {
				pc.reused = true
				return pc, nil
			}
		}
		pc.closeConn()
		t.mu.Lock()
	}
	t.mu.Unlock()
	return t.dial(ctx, key, deadline)
}

// headDeadline is when a response head sent from now must have arrived:
// the earlier of ResponseHeaderTimeout from now and deadline (zero: none).
func (t *Transport) headDeadline(now, deadline time.Time) time.Time {
	if d := t.ResponseHeaderTimeout; d > 0 {
		if h := now.Add(d); deadline.IsZero() || h.Before(deadline) {
			return h
		}
	}
	return deadline
}

// putIdle keeps pc for reuse, or closes it when the pool is full.
func (t *Transport) putIdle(pc *persistConn) {
	max := t.maxIdle()
	t.mu.Lock()
	p := pc.pool
	if p == nil || p.gone {
		if t.pools == nil {
			t.pools = map[string]*hostPool{}
		}
		if p = t.pools[pc.key]; p == nil {
			p = &hostPool{t: t, key: pc.key}
			t.pools[pc.key] = p
		}
		pc.pool = p
	}
	if len(p.idle) >= max {
		t.mu.Unlock()
		pc.closeConn()
		return
	}
	pc.idleAt = time.Now()
	p.idle = append(p.idle, pc)
	if !p.armed {
		p.armed = true
		if p.timer == nil {
			p.timer = time.AfterFunc(t.idleTimeout(), p.prune)
		} else {
			p.timer.Reset(t.idleTimeout())
		}
	}
	t.mu.Unlock()
}

// prune closes the connections idle for longer than the idle timeout and
// re-arms the timer for the oldest one left.
func (p *hostPool) prune() {
	t := p.t
	timeout := t.idleTimeout()
	now := time.Now()
	t.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleAt) >= timeout {
		n++
	}
	expired := append([]*persistConn(nil), p.idle[:n]...)
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.armed = len(p.idle) > 0
	if p.armed {
		p.timer.Reset(p.idle[0].idleAt.Add(timeout).Sub(now))
	} else if !p.gone {
		// Nothing idle is left: forget the pool, so that the pools of
		// upstreams gone for good (containers replaced) do not pile up.
		p.gone = true
		if t.pools[p.key] == p {
			delete(t.pools, p.key)
		}
		if t.last == p {
			t.last = nil
		}
	}
	t.mu.Unlock()
	for _, pc := range expired {
		pc.closeConn()
	}
}

// CloseIdleConnections closes every idle connection. Connections in use
// are closed when their response ends instead of being kept, if this is
// called again then; otherwise they return to the pool.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var all []*persistConn
	for _, p := range t.pools {
		all = append(all, p.idle...)
		clear(p.idle)
		p.idle = p.idle[:0]
		if p.timer != nil {
			p.timer.Stop()
		}
		p.armed, p.gone = false, true
	}
	t.pools, t.last = nil, nil
	t.mu.Unlock()
	for _, pc := range all {
		pc.closeConn()
	}
}

// IdleConns returns the number of idle connections to host (a URL's
// Host), for tests and metrics.
func (t *Transport) IdleConns(host string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.pools[host]; p != nil {
		return len(p.idle)
	}
	return 0
}

func (t *Transport) dial(ctx context.Context, key string, deadline time.Time) (*persistConn, error) {
	addr := key
	if _, _, err := net.SplitHostPort(key); err != nil {
		addr = net.JoinHostPort(trimBrackets(key), "80")
	}
	d := t.dialTimeout()
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline))
	}
	dctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var c net.Conn
	var err error
	if t.DialContext != nil {
		c, err = t.DialContext(dctx, "tcp", addr)
	} else {
		var d net.Dialer
		c, err = d.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return newPersistConn(t, key, wrapConn(c)), nil
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}
