package h1

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// In-memory connections for benchmarks that measure the CPU the HTTP
// machinery spends per request without the kernel's share: a client that
// sends one request after each response (closed loop), and an upstream
// that answers each request with a canned response.

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

type fakeBase struct{}

func (fakeBase) LocalAddr() net.Addr              { return fakeAddr("127.0.0.1:80") }
func (fakeBase) RemoteAddr() net.Addr             { return fakeAddr("127.0.0.1:40000") }
func (fakeBase) SetDeadline(time.Time) error      { return nil }
func (fakeBase) SetReadDeadline(time.Time) error  { return nil }
func (fakeBase) SetWriteDeadline(time.Time) error { return nil }
func (fakeBase) CloseWrite() error                { return nil }

// clientConn sends n copies of req, each after the previous response was
// written (one Write per response, as both servers flush once).
type clientConn struct {
	fakeBase
	req     []byte
	left    int
	turn    chan struct{} // a response was written: send the next request
	pending []byte
	closed  chan struct{}
	once    sync.Once
}

func newClientConn(req []byte, n int) *clientConn {
	c := &clientConn{req: req, left: n, turn: make(chan struct{}, 1), closed: make(chan struct{})}
	c.turn <- struct{}{}
	return c
}

func (c *clientConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.left == 0 {
			return 0, io.EOF
		}
		select {
		case <-c.turn:
		case <-c.closed:
			return 0, net.ErrClosed
		}
		c.left--
		c.pending = c.req
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *clientConn) Write(p []byte) (int, error) {
	select {
	case c.turn <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *clientConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// oneConnListener accepts one connection, then blocks until closed.
type oneConnListener struct {
	c      net.Conn
	once   sync.Once
	done   chan struct{}
	closer sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	return &oneConnListener{c: c, done: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return fakeAddr("127.0.0.1:80") }

// upstreamConn answers every request head it is sent with res.
type upstreamConn struct {
	fakeBase
	res     []byte
	mu      sync.Mutex
	cond    *sync.Cond
	seen    []byte
	ready   int // responses owed
	pending []byte
	closed  bool
}

func newUpstreamConn(res []byte) *upstreamConn {
	u := &upstreamConn{res: res}
	u.cond = sync.NewCond(&u.mu)
	return u
}

func (u *upstreamConn) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return 0, net.ErrClosed
	}
	u.seen = append(u.seen, p...)
	for {
		i := bytes.Index(u.seen, []byte("\r\n\r\n"))
		if i < 0 {
			break
		}
		u.seen = u.seen[:copy(u.seen, u.seen[i+4:])]
		u.ready++
	}
	u.cond.Broadcast()
	return len(p), nil
}

func (u *upstreamConn) Read(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.pending) == 0 {
		if u.closed {
			return 0, net.ErrClosed
		}
		if u.ready > 0 {
			u.ready--
			u.pending = u.res
			break
		}
		u.cond.Wait()
	}
	n := copy(p, u.pending)
	u.pending = u.pending[n:]
	return n, nil
}

func (u *upstreamConn) Close() error {
	u.mu.Lock()
	u.closed = true
	u.cond.Broadcast()
	u.mu.Unlock()
	return nil
}

// upstreamDialer dials fresh upstreamConns answering res.
func upstreamDialer(res []byte) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) { return newUpstreamConn(res), nil }
}
