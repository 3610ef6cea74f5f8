package h1

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Server's limits, the same as the gateway's configuration
// defaults.
const (
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxURIBytes    = 8 << 10
	// maxDrainBytes is how much of a request body the handler left unread
	// the server reads and discards to keep the connection; beyond it the
	// connection is closed instead.
	maxDrainBytes = 256 << 10
	writeBufSize  = 4096
)

// Server serves HTTP/1.1 (and HTTP/1.0) over plain TCP connections. Its
// zero value is not usable: set Handler. Fields must not change after
// Serve is called.
type Server struct {
	// Handler serves every request of the fast path.
	Handler http.Handler
	// Fallback, when set, receives the connections the fast path does not
	// handle: protocol upgrades (WebSocket, h2c) and the HTTP/2 preface.
	// It gets the connection with the bytes already read replayed first,
	// and serves it from then on. Shutdown and Close also stop it.
	// Without Fallback, an upgrade offer is ignored (the Upgrade field is
	// removed) and the HTTP/2 preface is refused.
	Fallback *http.Server

	// ReadHeaderTimeout bounds reading a request head, counted from the
	// first byte of the request (for the first request of a connection,
	// from the accept). Zero means ReadTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request body, counted from the end of
	// the request head. Zero means no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, counted from the end of the
	// request head. Zero means no limit.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Zero means ReadTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits the request line and header fields
	// (431 beyond). Zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxURIBytes limits the request target (414 beyond). Zero means
	// DefaultMaxURIBytes.
	MaxURIBytes int
	// Logger receives handler panics, accept errors and, at debug level,
	// refused requests. Nil discards them.
	Logger *slog.Logger
	// BaseContext, when set, returns the base context of the requests
	// accepted on a listener.
	BaseContext func(net.Listener) context.Context
	// ReuseRequests makes each connection reuse one *http.Request, with
	// its URL and its Header map, for all its requests, emptied for each
	// (two allocations fewer per request). The Handler must then keep
	// none of them once ServeHTTP has returned: not the request, not
	// r.URL, not r.Header (the strings in them stay valid).
	ReuseRequests bool
	// ConnLimit, when set, bounds the connections served at once: Serve
	// takes a slot for each connection it accepts, waiting while none is
	// free (the connection in hand waits, unserved, and the next ones wait
	// in the kernel's accept queue), and a connection gives it back when it
	// closes, after the Fallback's use of it included.
	ConnLimit Limiter
	// ClientCloseCheck is how often the server looks for clients that
	// closed (or reset) their connection while their request was running,
	// and cancels those requests' contexts, which ends an upstream round
	// trip made under them: a request is checked once it has run for at
	// least this long, so a client's close is noticed within twice this.
	// Zero means DefaultClientCloseCheck; negative, never (a close is then
	// noticed when the response is written). The check stops when the
	// server shuts down. It works on Linux, macOS and the BSDs; elsewhere
	// the peek finds nothing.
	ClientCloseCheck time.Duration

	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	closing    atomic.Bool
	fbStart    sync.Once
	sweepStart sync.Once
	fbLn       *memListener
	fbDone     chan struct{}
	ctxServer  *http.Server
	done       chan struct{} // closed by Shutdown and Close: ends a wait for a ConnLimit slot
	doneOnce   sync.Once
	date       dateCache
	loggerOnce sync.Once
	logger     *slog.Logger
}

// Limiter is a count of connections with a maximum
// (connlimit.Limit).
type Limiter interface {
	// Acquire takes a slot, waiting while none is free; it returns
	// false, having taken none, once done is closed.
	Acquire(done <-chan struct{}) bool
	// Release gives back a slot taken by Acquire.
	Release()
}

// doneChan is closed once the server shuts down.
func (s *Server) doneChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// signalDone closes doneChan.
func (s *Server) signalDone() {
	ch := s.doneChan()
	s.doneOnce.Do(func() { close(ch) })
}

// connection states, for Shutdown.
const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateClosed
)

func (s *Server) shuttingDown() bool { return s.closing.Load() }

func (s *Server) log() *slog.Logger {
	s.loggerOnce.Do(func() {
		s.logger = s.Logger
		if s.logger == nil {
			s.logger = slog.New(slog.DiscardHandler)
		}
	})
	return s.logger
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) maxURIBytes() int {
	if s.MaxURIBytes > 0 {
		return s.MaxURIBytes
	}
	return DefaultMaxURIBytes
}

func (s *Server) headerTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return s.ReadTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadTimeout
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	if s.shuttingDown() {
		return http.ErrServerClosed
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln and serves each on its own goroutine.
// It returns http.ErrServerClosed after Shutdown or Close, or the
// listener's error.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("h1: Server.Handler is nil")
	}
	if !s.trackListener(&ln, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(&ln, false)
	s.startFallback(ln.Addr())
	s.startCloseCheck()
	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(ln)
	}
	// ServerContextKey tells code such as httputil.ReverseProxy that it
	// runs under a server that recovers http.ErrAbortHandler.
	base = context.WithValue(base, http.ServerContextKey, s.contextServer())
	var delay time.Duration
	var done chan struct{}
	if s.ConnLimit != nil {
		done = s.doneChan()
	}
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log().Warn("h1: accept error; retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.ConnLimit != nil && !s.ConnLimit.Acquire(done) {
			rw.Close()
			return http.ErrServerClosed
		}
		c := s.newConn(rw, base)
		if !s.trackConn(c, true) {
			rw.Close()
			if s.ConnLimit != nil {
				s.ConnLimit.Release()
			}
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// contextServer is the value of http.ServerContextKey in request
// contexts: Fallback when set, else an empty *http.Server that only
// marks the context.
func (s *Server) contextServer() *http.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctxServer == nil {
		s.ctxServer = s.Fallback
		if s.ctxServer == nil {
			s.ctxServer = &http.Server{}
		}
	}
	return s.ctxServer
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shuttingDown() {
			return false
		}
		if s.listeners == nil {
			s.listeners = map[*net.Listener]struct{}{}
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shuttingDown() {
			return false
		}
		if s.conns == nil {
			s.conns = map[*conn]struct{}{}
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Server) closeListenersLocked() {
	for ln := range s.listeners {
		(*ln).Close()
	}
}

// Shutdown stops accepting connections, closes idle ones (and new ones
// that sent nothing within a grace of 5 s), and waits for the requests in
// flight to finish: a connection is closed after its
// current response, which carries "Connection: close". It returns nil
// when every connection is closed. If ctx ends first, it closes the
// remaining connections forcibly (as Close does) and returns ctx's error.
// Fallback is shut down with the same ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.signalDone()
	s.mu.Lock()
	s.closeListenersLocked()
	s.mu.Unlock()
	fbErr := make(chan error, 1)
	if s.Fallback != nil && s.fallbackStarted() {
		go func() { fbErr <- s.Fallback.Shutdown(ctx) }()
	} else {
		fbErr <- nil
	}
	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !s.closeIdle() {
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, 100*time.Millisecond)
			timer.Reset(wait)
		}
	}
	select {
	case err := <-fbErr:
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			s.Close()
		}
		return err
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// newConnGrace is how long Shutdown lets a new connection send its first
// request before closing it, as net/http does: its client may be sending
// it right now.
const newConnGrace = 5 * time.Second

// closeIdle closes the connections waiting for a request (new ones after
// newConnGrace) and reports whether no connection is left.
func (s *Server) closeIdle() bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) ||
			now.Sub(c.accepted) > newConnGrace && c.state.CompareAndSwap(stateNew, stateClosed) {
			c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection at once, cancelling
// the contexts of the requests in flight, and closes Fallback.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.signalDone()
	s.mu.Lock()
	s.closeListenersLocked()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.rwc.Close()
		c.cancelAll()
	}
	s.mu.Unlock()
	if s.Fallback != nil && s.fallbackStarted() {
		return s.Fallback.Close()
	}
	return nil
}

var bufWriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}

// dateCache formats the Date header once per second.
type dateCache struct{ v atomic.Pointer[dateEntry] }

type dateEntry struct {
	sec int64
	b   []byte
}

func (d *dateCache) get(now time.Time) []byte {
	sec := now.Unix()
	if e := d.v.Load(); e != nil && e.sec == sec {
		return e.b
	}
	e := &dateEntry{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
	d.v.Store(e)
	return e.b
}
