//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package h1

// peek cannot look at the socket on this platform: an idle connection is
// assumed alive, and a stale one is detected when the request fails (the
// request is then retried when that is safe).
func (pc *persistConn) peek(fd uintptr) bool {
	pc.alive = true
	return true
}

// peekClosed cannot look at the socket on this platform: a client that
// closes its connection while its request runs is noticed when the
// response is written.
func peekClosed(fd uintptr) bool { return false }
