//go:build linux

package h1

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
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

func (c *rawTCPConn) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rbuf))), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = e
			return true
		}
	}
}

func (c *rawTCPConn) writeFD(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

func (c *rawTCPConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.rfn)
	c.rbuf = nil
	n := c.rn
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

func (c *rawTCPConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
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
