//go:build linux

package h1

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/raceio"
)

// rawTCPConn reads and writes a TCP connection with raw system calls
// through its syscall.RawConn, waiting in the runtime's netpoller as
// net.TCPConn does (deadlines included).
//
// The difference is what the runtime sees: net.TCPConn's Read and Write
// go through entersyscall/exitsyscall, so a write that takes longer than
// one sysmon tick (20 µs; loopback writes deliver to the receiver inside
// the call and often do) lets sysmon hand the processor to another
// thread. With GOMAXPROCS=1 on a busy core that is a futex wake-up and
// two context switches per request. The sockets are non-blocking, so a
// raw call returns at once with EAGAIN when it would block, and the
// goroutine then parks in the netpoller exactly as before.
type rawTCPConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The call in progress; a connection has at most one reader and one
	// writer at a time, as net.Conn users guarantee.
	rbuf []byte
	rn   int
	rerr syscall.Errno
	wbuf []byte
	wn   int
	werr syscall.Errno
	rfn  func(uintptr) bool
	wfn  func(uintptr) bool
	// rwaited: the last Read found nothing to read at first and waited
	// in the netpoller (readWaited).
	rwaited bool

	// A request to send as part of the next Read (sendOnRead).
	pend         []byte
	pendN        int    // bytes of pend written
	sent         *int64 // counts them for the caller
	check        bool   // look for unsolicited bytes or EOF before sending
	pendState    uint8
	pendErr      syscall.Errno
	pendDeadline time.Time
	probe        [1]byte
}

// pendState values: what the next Read's callback did with pend.
const (
	pendWaiting uint8 = iota // not yet sent
	pendSent                 // sent; the next call reads the reply
	pendStale                // the check found bytes or EOF: nothing sent
	pendBlocked              // the socket buffer filled up: the rest is written by Write
	pendFailed               // the write failed (pendErr)
)

// sendOnRead makes the next Read send p first, inside the same RawRead,
// and then wait for the reply without trying a read that must fail: the
// netpoller's readiness state is reset before the write, so a reply that
// arrives after it is never missed, and the read that would return EAGAIN
// (the backend has not even been scheduled yet) is not made. With check,
// the connection is first read without blocking: anything there (bytes
// nobody asked for, EOF, an error) means it cannot carry a request, and
// Read returns errStaleIdle having sent nothing. Each byte written is
// added to *sent. p must stay unchanged until that Read returns.
//
// Without check, the caller must know that nothing can be waiting on
// the connection: bytes that arrived before the Read, and whose
// readiness the netpoller already consumed, would not wake it.
//
// If the socket buffer fills up before p is written, the rest is written
// with Write under writeDeadline (zero: none), which is then cleared.
func (c *rawTCPConn) sendOnRead(p []byte, check bool, sent *int64, writeDeadline time.Time) {
	c.pend, c.pendN, c.check, c.sent, c.pendState = p, 0, check, sent, pendWaiting
	c.pendDeadline = writeDeadline
}

// rawIO is switched off by GATEHOUSE_H1_RAWIO=0, to compare.
var rawIO = os.Getenv("GATEHOUSE_H1_RAWIO") != "0"

// wrapConn returns c with raw-syscall reads and writes when c is a
// *net.TCPConn, and c itself otherwise.
func wrapConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !rawIO {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCPConn{TCPConn: tc, rc: rc}
	r.rfn, r.wfn = r.readFD, r.writeFD
	return r
}

// rawRead reads once into p, retrying when interrupted. It calls
// recvfrom rather than read: on a socket the two do the same, and
// recvfrom goes straight to the socket layer where read passes through
// the file layer first (BenchmarkSocketCalls: a write and its read cost
// 2.8 % less; perf had put the file layer at about 0.5 µs of kernel time
// per proxied request, which makes three reads and two writes).
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall6(sysRecv, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, 0, 0)
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// rawWrite writes p until all of it is written (errno 0), the socket
// buffer is full (EAGAIN) or the write fails, and returns how much was
// written. It calls sendto, for the reason rawRead calls recvfrom, with
// MSG_NOSIGNAL: a connection the peer closed fails with EPIPE and raises
// no SIGPIPE.
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n := 0
	for n < len(p) {
		m, _, e := syscall.RawSyscall6(sysSend, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p[n:]))), uintptr(len(p)-n), syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			n += int(m)
		case syscall.EINTR:
		default:
			return n, e
		}
	}
	return n, 0
}

func (c *rawTCPConn) readFD(fd uintptr) bool {
	if c.pend != nil && c.pendState == pendWaiting {
		return c.sendFD(fd)
	}
	n, e := rawRead(fd, c.rbuf)
	switch e {
	case 0:
		c.rn = n
	case syscall.EAGAIN:
		c.rwaited = true
		return false
	default:
		c.rerr = e
	}
	return true
}

// sendFD is the first call of a Read's callback when a request is
// pending; it reports false when the request is sent and the reply is to
// be awaited.
func (c *rawTCPConn) sendFD(fd uintptr) bool {
	if c.check {
		if _, e := rawRead(fd, c.probe[:]); e != syscall.EAGAIN {
			// Bytes, EOF (e == 0) or an error.
			c.pendState = pendStale
			return true
		}
	}
	n, e := rawWrite(fd, c.pend)
	c.pendN = n
	*c.sent += int64(n)
	switch e {
	case 0:
		c.pendState = pendSent
		return false
	case syscall.EAGAIN:
		c.pendState = pendBlocked
	default:
		c.pendErr = e
		c.pendState = pendFailed
	}
	return true
}

func (c *rawTCPConn) writeFD(fd uintptr) bool {
	n, e := rawWrite(fd, c.wbuf[c.wn:])
	c.wn += n
	switch e {
	case syscall.EAGAIN:
		return false
	case 0:
	default:
		c.werr = e
	}
	return true
}

func (c *rawTCPConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr, c.rwaited = p, 0, 0, false
	if c.pend != nil {
		raceio.ReleaseMerge()
		raceio.ReadRange(c.pend)
	}
	err := c.rc.Read(c.rfn)
	c.rbuf = nil
	n := c.rn
	if n > 0 {
		raceio.WriteRange(p[:n])
		raceio.Acquire()
	}
	if c.pend != nil {
		if n, err, done := c.finishPend(p, err); done {
			return n, err
		}
	}
	if err != nil {
		return n, c.opError("read", err)
	}
	if c.rerr != 0 {
		return n, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readWaited reports whether the last Read had to wait for its data.
func (c *rawTCPConn) readWaited() bool { return c.rwaited }

func (c *rawTCPConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	raceio.ReleaseMerge()
	raceio.ReadRange(p)
	err := c.rc.Write(c.wfn)
	c.wbuf = nil
	n := c.wn
	if err == nil && c.werr != 0 {
		err = os.NewSyscallError("write", c.werr)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// finishPend handles the outcome of a Read that had a request to send.
// It reports done when its results are the Read's.
func (c *rawTCPConn) finishPend(p []byte, err error) (int, error, bool) {
	state, rest, sent, perr := c.pendState, c.pend[c.pendN:], c.sent, c.pendErr
	c.pend, c.sent, c.pendErr = nil, nil, 0
	switch {
	case state == pendStale:
		return 0, errStaleIdle, true
	case state == pendFailed:
		return 0, c.opError("write", os.NewSyscallError("write", perr)), true
	case state == pendBlocked:
		// Finish the request the ordinary way, then read the reply.
		if !c.pendDeadline.IsZero() {
			c.SetWriteDeadline(c.pendDeadline)
			defer c.SetWriteDeadline(time.Time{})
		}
		n, werr := c.Write(rest)
		*sent += int64(n)
		if werr != nil {
			return 0, werr, true
		}
		n, err := c.Read(p)
		return n, err, true
	case state == pendWaiting:
		// RawRead failed before the callback ran (deadline, closed):
		// nothing was sent.
		return 0, err, err != nil
	}
	return 0, nil, false // sent; the reply was read as usual
}

// opError shapes an error as net.TCPConn's would be, so that callers
// testing for net.Error, os.ErrDeadlineExceeded or net.ErrClosed see the
// same thing.
func (c *rawTCPConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
