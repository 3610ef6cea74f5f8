//go:build linux || darwin || freebsd || netbsd || openbsd

package h1

import "syscall"

// peek looks, without blocking and without consuming anything, at whether
// an idle connection has data or end-of-file pending; only "nothing to
// read yet" means alive.
func (pc *persistConn) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), pc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	pc.alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true
}

// peekClosed looks, without blocking and without consuming anything, at
// whether a client's connection has end-of-file or a reset (or another
// error that ends a connection) pending with nothing to read before it.
func peekClosed(fd uintptr) bool {
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case nil:
			return n == 0
		case syscall.ECONNRESET, syscall.ETIMEDOUT, syscall.EPIPE, syscall.ENOTCONN:
			return true
		default:
			return false // nothing yet (EAGAIN), or a failure of the call itself
		}
	}
}
