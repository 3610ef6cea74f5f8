//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package h1

// peek cannot look at the socket on this platform: an idle connection is
// assumed alive, and a stale one is detected when the request fails (the
// request is then retried when that is safe).
func (pc *persistConn) peek(fd uintptr) bool {
	pc.alive = true
	return true
}
