package h1

import "syscall"

// On linux/386 the socket calls go through socketcall(2), which has no
// number of its own in package syscall: read and write do the same on a
// socket and ignore rawRead's and rawWrite's further arguments. Without
// MSG_NOSIGNAL a write to a closed connection raises SIGPIPE, which the
// Go runtime ignores on descriptors other than 1 and 2 (os/signal), so
// the write still fails with EPIPE.
const (
	sysRecv = syscall.SYS_READ
	sysSend = syscall.SYS_WRITE
)
