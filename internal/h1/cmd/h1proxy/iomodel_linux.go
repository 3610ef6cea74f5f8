//go:build linux && !386

package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"
)

// epollPump is the byte pump with nginx's I/O model instead of Go's
// netpoller: one goroutine, locked to its thread, waits in epoll_wait
// (level-triggered) and, for each readable socket, reads once and writes
// what it read to the socket's peer with raw system calls. No goroutine
// is parked or woken per read. It is a measurement, not a proxy: a write
// that would block is retried on the spot (the benchmark's messages are
// small), and a connection is closed with its peer on EOF or any error.
func epollPump(addr, backend string) error {
	runtime.LockOSThread()
	la, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	ba, err := netip.ParseAddrPort(backend)
	if err != nil {
		return fmt.Errorf("-backend: %w", err)
	}
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := syscall.Bind(lfd, sockaddr(la)); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 1024); err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := epollAdd(ep, lfd); err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()

	peer := map[int32]int32{}
	closePair := func(fd int32) {
		p, ok := peer[fd]
		if !ok {
			return
		}
		delete(peer, fd)
		delete(peer, p)
		syscall.Close(int(fd))
		syscall.Close(int(p))
	}
	events := make([]syscall.EpollEvent, 128)
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := ev.Fd
			if int(fd) == lfd {
				for {
					cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					ufd, err := dialNonblock(ba)
					if err != nil {
						syscall.Close(cfd)
						continue
					}
					peer[int32(cfd)], peer[int32(ufd)] = int32(ufd), int32(cfd)
					if epollAdd(ep, cfd) != nil || epollAdd(ep, ufd) != nil {
						closePair(int32(cfd))
					}
				}
				continue
			}
			p, ok := peer[fd]
			if !ok {
				continue
			}
			m, e := recvRaw(uintptr(fd), buf)
			if e == syscall.EAGAIN || e == syscall.EINTR {
				continue
			}
			if e != 0 || m == 0 {
				closePair(fd)
				continue
			}
			if !writeAll(p, buf[:m]) {
				closePair(fd)
			}
		}
	}
}

// recvRaw and sendRaw are the system calls package h1 reads and writes a
// socket with (recvfrom and sendto since the sixth session; read and
// write before, when the fifth session measured these pumps).
func recvRaw(fd uintptr, p []byte) (uintptr, syscall.Errno) {
	m, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return m, e
}

func sendRaw(fd uintptr, p []byte) (uintptr, syscall.Errno) {
	m, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	return m, e
}

func writeAll(fd int32, b []byte) bool {
	for len(b) > 0 {
		m, e := sendRaw(uintptr(fd), b)
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			runtime.Gosched()
		case e != 0:
			return false
		default:
			b = b[m:]
		}
	}
	return true
}

// dialNonblock connects to a (loopback: the connect completes at once)
// and returns the socket, non-blocking, with TCP_NODELAY.
func dialNonblock(a netip.AddrPort) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(fd, sockaddr(a)); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

func sockaddr(a netip.AddrPort) *syscall.SockaddrInet4 {
	return &syscall.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
}

func epollAdd(ep, fd int) error {
	return syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
}

// rawPump is the byte pump with Gatehouse's I/O pattern and no HTTP work:
// one goroutine per client connection, in lockstep (read the client,
// write the backend, read the backend, write the client), with raw
// system calls through syscall.RawConn as package h1 makes them, and a
// runtime.Gosched before each client read as h1's connection loop does.
// A read that finds nothing parks the goroutine in the netpoller. It
// assumes that one read returns one whole message (true of the
// benchmark's small requests and responses): a measurement, not a proxy.
func rawPump(addr, backend string) error {
	return servePairs(addr, backend, func(c, up net.Conn) {
		crc, err1 := c.(*net.TCPConn).SyscallConn()
		urc, err2 := up.(*net.TCPConn).SyscallConn()
		if err1 != nil || err2 != nil {
			return
		}
		buf := make([]byte, 64<<10)
		for {
			runtime.Gosched()
			n := rawConnRead(crc, buf)
			if n <= 0 || !rawConnWrite(urc, buf[:n]) {
				return
			}
			n = rawConnRead(urc, buf)
			if n <= 0 || !rawConnWrite(crc, buf[:n]) {
				return
			}
		}
	})
}

// rawConnRead reads once, waiting in the netpoller while there is
// nothing to read; it returns 0 on EOF and -1 on an error.
func rawConnRead(rc syscall.RawConn, p []byte) int {
	n := -1
	err := rc.Read(func(fd uintptr) bool {
		m, e := recvRaw(fd, p)
		switch e {
		case syscall.EAGAIN:
			return false
		case 0:
			n = int(m)
		}
		return true
	})
	if err != nil {
		return -1
	}
	return n
}

// rawConnWrite writes all of p, waiting in the netpoller while the
// socket buffer is full.
func rawConnWrite(rc syscall.RawConn, p []byte) bool {
	ok := true
	err := rc.Write(func(fd uintptr) bool {
		for len(p) > 0 {
			m, e := sendRaw(fd, p)
			switch e {
			case 0:
				p = p[m:]
			case syscall.EAGAIN:
				return false
			case syscall.EINTR:
			default:
				ok = false
				return true
			}
		}
		return true
	})
	return ok && err == nil
}
