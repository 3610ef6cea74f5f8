package h1

import (
	"syscall"
	"time"
)

// DefaultClientCloseCheck is how often the server looks for clients that
// closed their connection while their request was running
// (Server.ClientCloseCheck).
const DefaultClientCloseCheck = 250 * time.Millisecond

// A connection reads nothing while its handler runs (once the request's
// body is read), so a client that closes its connection then is noticed
// only when the response is written: a handler waiting for a slow backend
// would keep it waiting, for a response no one will read. net/http reads
// in the background for this (a goroutine per request); nginx peeks at
// the socket when the kernel reports the client's end-of-file.
//
// h1 does it with no work per request but two atomic stores: each
// connection publishes the number of the request under way once its
// client has sent all of it and nothing more is buffered (conn.watch),
// and clears it when the handler returns. A sweep of the connections
// every ClientCloseCheck finds those whose request is the same as at the
// sweep before (running for at least that long) and peeks at their
// socket without blocking or consuming: an end-of-file, or an error that
// ends a connection (a reset), with nothing to read before it, means the
// client has gone, and, if that request is still the one under way, the
// connection's context is cancelled, which ends an upstream round trip
// made under it. Data
// pending (a pipelined request) or nothing yet means the client is still
// there. As with net/http and nginx, a client that only half-closed its
// side (shutdown(SHUT_WR)) counts as gone.

// clientCloseCheck is the sweep's interval, 0 for none.
func (s *Server) clientCloseCheck() time.Duration {
	if s.ClientCloseCheck < 0 {
		return 0
	}
	if s.ClientCloseCheck == 0 {
		return DefaultClientCloseCheck
	}
	return s.ClientCloseCheck
}

// startCloseCheck starts the sweep, once per server.
func (s *Server) startCloseCheck() {
	d := s.clientCloseCheck()
	if d == 0 {
		return
	}
	s.sweepStart.Do(func() { go s.sweepLoop(d, s.doneChan()) })
}

// sweepLoop sweeps every d until the server shuts down or closes (a
// graceful shutdown bounds the requests it waits for by its context).
func (s *Server) sweepLoop(d time.Duration, done <-chan struct{}) {
	t := time.NewTicker(d)
	defer t.Stop()
	var due []dueConn
	for {
		select {
		case <-t.C:
		case <-done:
			return
		}
		due = s.sweep(due[:0])
		for i, d := range due {
			// Only if the request peeked for is still the one under way:
			// the client's bytes may have been read meanwhile (a
			// pipelined request, then a half-close).
			if d.c.clientClosed() && d.c.watch.Load() == d.seq {
				d.c.cancelAll()
			}
			due[i] = dueConn{}
		}
	}
}

// dueConn is a connection to peek at, and the request it was found under
// way.
type dueConn struct {
	c   *conn
	seq uint64
}

// sweep notes each connection's request under way and appends to due
// those whose request was already under way at the sweep before.
func (s *Server) sweep(due []dueConn) []dueConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		w := c.watch.Load()
		if w != 0 && w == c.swept && c.state.Load() == stateActive {
			due = append(due, dueConn{c, w})
		}
		c.swept = w
	}
	return due
}

// watchFrom publishes seq as the request under way, its client having
// sent all of it, unless more is buffered already (a pipelined request:
// the client may have half-closed after it and still wait for both
// responses).
func (c *conn) watchFrom(seq uint64) {
	if c.br.buffered() > 0 {
		seq = 0
	}
	c.watch.Store(seq)
}

// clientClosed reports whether the client has closed or reset its
// connection, with nothing left to read before that.
func (c *conn) clientClosed() bool {
	sc, ok := c.rwc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	if rc.Control(func(fd uintptr) { closed = peekClosed(fd) }) != nil {
		return false // closed on this side meanwhile
	}
	return closed
}
