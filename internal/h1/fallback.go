package h1

import (
	"net"
	"net/http"
	"sync"
)

// The fallback: connections that need what the fast path does not do are
// handed to a standard *http.Server through an in-memory listener. The
// connection is wrapped so that the bytes the fast path already read are
// read again first; net/http then owns it.

func (s *Server) startFallback(addr net.Addr) {
	if s.Fallback == nil {
		return
	}
	s.fbStart.Do(func() {
		ln := newMemListener(addr)
		done := make(chan struct{})
		s.mu.Lock()
		s.fbLn, s.fbDone = ln, done
		s.mu.Unlock()
		go func() {
			defer close(done)
			if err := s.Fallback.Serve(ln); err != nil && err != http.ErrServerClosed {
				s.log().Error("h1: fallback server stopped", "error", err)
			}
		}()
	})
}

func (s *Server) fallbackStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fbLn != nil
}

func (s *Server) fallbackListener() *memListener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fbLn
}

// memListener is a net.Listener whose connections are handed to it by
// the fast path.
type memListener struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newMemListener(addr net.Addr) *memListener {
	return &memListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the next connection handed over.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections handed over later are closed.
func (l *memListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is the address of the fast path's listener.
func (l *memListener) Addr() net.Addr { return l.addr }

// deliver hands c to the fallback server; it reports false (and the
// caller closes c) when the listener is closed.
func (l *memListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// replayConn reads buffered bytes before reading from the connection.
type replayConn struct {
	net.Conn
	buf     []byte
	release func() // when set, called once the connection is closed
	once    sync.Once
}

func (c *replayConn) Close() error {
	err := c.Conn.Close()
	if c.release != nil {
		c.once.Do(c.release)
	}
	return err
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection as it does with a
// *net.TCPConn.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
