package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// tunnel bounds the silence of an upgraded connection (a WebSocket): a
// watchdog closes both sides once nothing went either way for idle.
// Every read and write on either side that moves a byte is activity; the
// watchdog is one timer, re-armed for what is left of idle when it finds
// activity since it was set, so that traffic costs a clock reading per
// read or write and no timer operation.
type tunnel struct {
	idle time.Duration
	x    *policy.Exchange // for the access line's error, when the watchdog fires

	last atomic.Int64 // time of the last activity, Unix nanoseconds

	mu      sync.Mutex
	timer   *time.Timer
	closers []io.Closer // the two sides, closed when the watchdog fires
	done    bool        // the watchdog fired or was stopped
}

type tunnelKey struct{}

// errTunnelIdle is the access line's error for a tunnel the watchdog
// closed.
type errTunnelIdle time.Duration

func (e errTunnelIdle) Error() string {
	return fmt.Sprintf("upgraded connection closed after %s with nothing sent either way (tunnel_idle)", time.Duration(e))
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// add registers a side; the watchdog starts with the first.
func (t *tunnel) add(c io.Closer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		c.Close()
		return
	}
	t.closers = append(t.closers, c)
	if t.timer == nil {
		t.touch()
		t.timer = time.AfterFunc(t.idle, t.check)
	}
}

// check runs when the timer fires: it closes both sides after idle
// without activity, and waits for the rest of idle otherwise.
func (t *tunnel) check() {
	quiet := time.Since(time.Unix(0, t.last.Load()))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	if quiet < t.idle {
		t.timer.Reset(t.idle - quiet)
		return
	}
	t.done = true
	if t.x != nil && t.x.Record != nil {
		t.x.Record.Cause = errTunnelIdle(t.idle)
	}
	for _, c := range t.closers {
		c.Close()
	}
}

// stop ends the watchdog once the tunnel is over.
func (t *tunnel) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	if t.timer != nil {
		t.timer.Stop()
	}
}

// backendSide wraps the backend's side of the tunnel (the 101 response's
// body).
func (t *tunnel) backendSide(rwc io.ReadWriteCloser) io.ReadWriteCloser {
	s := &tunnelSide{rw: rwc, c: rwc, t: t}
	t.add(rwc)
	if cw, ok := rwc.(closeWriter); ok {
		return tunnelSideCW{s, cw}
	}
	return s
}

// tunnelSide counts the reads and writes of one side as activity.
type tunnelSide struct {
	rw io.ReadWriter
	c  io.Closer
	t  *tunnel
}

func (s *tunnelSide) Read(p []byte) (int, error) {
	n, err := s.rw.Read(p)
	if n > 0 {
		s.t.touch()
	}
	return n, err
}

func (s *tunnelSide) Write(p []byte) (int, error) {
	n, err := s.rw.Write(p)
	if n > 0 {
		s.t.touch()
	}
	return n, err
}

func (s *tunnelSide) Close() error { return s.c.Close() }

// tunnelConn is the client's side: the hijacked connection, its reads
// and writes counted.
type tunnelConn struct {
	net.Conn
	s tunnelSide
}

func (c *tunnelConn) Read(p []byte) (int, error)  { return c.s.Read(p) }
func (c *tunnelConn) Write(p []byte) (int, error) { return c.s.Write(p) }

// closeWriter is a connection that can half-close: ReverseProxy passes a
// side's end on to the other side through it, and closes both without it.
// A wrapped side keeps the method exactly when what it wraps has it.
type closeWriter interface{ CloseWrite() error }

type tunnelConnCW struct {
	*tunnelConn
	cw closeWriter
}

func (c tunnelConnCW) CloseWrite() error { return c.cw.CloseWrite() }

type tunnelSideCW struct {
	*tunnelSide
	cw closeWriter
}

func (s tunnelSideCW) CloseWrite() error { return s.cw.CloseWrite() }

// tunnelWriter hands ReverseProxy the client's connection, wrapped for
// the tunnel's watchdog when there is one, and says whether it was
// hijacked.
type tunnelWriter struct {
	http.ResponseWriter
	t        *tunnel // nil without an idle timeout
	hijacked bool
}

func (w *tunnelWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	w.hijacked = true
	if w.t == nil {
		return conn, brw, nil
	}
	tc := &tunnelConn{Conn: conn}
	tc.s = tunnelSide{rw: conn, c: conn, t: w.t}
	w.t.add(conn)
	if cw, ok := conn.(closeWriter); ok {
		return tunnelConnCW{tc, cw}, brw, nil
	}
	return tc, brw, nil
}
