// Package connlimit bounds the client connections a process serves.
//
// A Limit is a number of slots shared by listeners: a listener takes a
// slot for each connection it accepts and gives it back when the
// connection closes. While every slot is taken, the connection just
// accepted waits, unserved, for one (a listener holds at most one such
// connection), and the next ones wait in the kernel's accept queue (and,
// once that is full, their SYNs are dropped and retried by the client)
// instead of being accepted and using up the process's file descriptors,
// which the gateway also needs for its upstream connections, its files
// and its admin listener.
package connlimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Limit is a count of open connections with a maximum. Its methods are
// safe for concurrent use.
type Limit struct {
	slots chan struct{}
	waits atomic.Uint64
	// OnWait, when set, is called each time an accepted connection has to
	// wait for a free slot (before it waits). It must not block.
	OnWait func()
}

// New returns a Limit of n connections (n > 0).
func New(n int) *Limit {
	if n <= 0 {
		panic("connlimit: the limit must be positive")
	}
	return &Limit{slots: make(chan struct{}, n)}
}

// Acquire takes a slot, waiting while none is free. It returns false,
// having taken none, once done is closed.
func (l *Limit) Acquire(done <-chan struct{}) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	l.waits.Add(1)
	if l.OnWait != nil {
		l.OnWait()
	}
	select {
	case l.slots <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// Release gives back a slot taken by Acquire.
func (l *Limit) Release() { <-l.slots }

// Open is the number of slots taken: the connections open.
func (l *Limit) Open() int { return len(l.slots) }

// Max is the limit.
func (l *Limit) Max() int { return cap(l.slots) }

// Waits is the number of accepted connections that had to wait for a
// free slot.
func (l *Limit) Waits() uint64 { return l.waits.Load() }

// Listener returns ln limited by l: Accept takes a slot for the
// connection it accepted, waiting for one while none is free, and the
// connection it returns gives it back when closed (once, whoever closes
// it). For servers that accept through a net.Listener, such as
// net/http's; closing the listener ends a wait (and closes the connection
// that waited).
func (l *Limit) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l, done: make(chan struct{})}
}

type listener struct {
	net.Listener
	l         *Limit
	done      chan struct{}
	closeOnce sync.Once
}

func (ln *listener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !ln.l.Acquire(ln.done) {
		c.Close()
		return nil, net.ErrClosed
	}
	return &conn{Conn: c, l: ln.l}, nil
}

func (ln *listener) Close() error {
	ln.closeOnce.Do(func() { close(ln.done) })
	return ln.Listener.Close()
}

type conn struct {
	net.Conn
	l    *Limit
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.Release)
	return err
}

// CloseWrite half-closes the connection when it can (as net/http does
// with a *net.TCPConn).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// reserve is what Default leaves of the open-file limit for everything
// other than client connections and their upstream connections.
const reserve = 512

func fromFileLimit(nofile uint64) int {
	const most = 1 << 20
	if nofile > 2*most+reserve {
		return most
	}
	return max(64, (int(nofile)-reserve)/2)
}
