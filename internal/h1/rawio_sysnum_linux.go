//go:build linux && !386

package h1

import "syscall"

// The system calls rawRead and rawWrite make: recvfrom and sendto.
const (
	sysRecv = syscall.SYS_RECVFROM
	sysSend = syscall.SYS_SENDTO
)
