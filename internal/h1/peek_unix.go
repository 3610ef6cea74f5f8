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
