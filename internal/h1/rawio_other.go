//go:build !linux

package h1

import "net"

// wrapConn returns c: raw-syscall I/O is used on Linux only.
func wrapConn(c net.Conn) net.Conn { return c }
