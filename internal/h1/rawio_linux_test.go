//go:build linux

package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// tcpPair returns the two ends of a loopback TCP connection, the first
// wrapped by wrapConn.
func tcpPair(t testing.TB) (*rawTCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	w := wrapConn(c)
	rc, ok := w.(*rawTCPConn)
	if !ok {
		t.Fatalf("wrapConn(*net.TCPConn) = %T, want *rawTCPConn", w)
	}
	t.Cleanup(func() { rc.Close(); peer.Close() })
	return rc, peer
}

func TestRawConn_ReadWriteEOF(t *testing.T) {
	c, peer := tcpPair(t)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	go peer.Write([]byte("pong"))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	peer.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after peer closed = %d, %v; want 0, EOF", n, err)
	}
}

// A write larger than the socket buffers is completed across EAGAINs, in
// order, while the peer reads slowly.
func TestRawConn_LargeWrite(t *testing.T) {
	c, peer := tcpPair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 7919)
		for b.Len() < len(want) {
			n, err := peer.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	n, err := c.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("peer got %d bytes, not what was written", len(g))
	}
}

func TestRawConn_Deadlines(t *testing.T) {
	c, _ := tcpPair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline: %v; want a timeout matching os.ErrDeadlineExceeded", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %#v is not a read *net.OpError", err)
	}
	// A deadline in the past fails a write at once: nothing is sent.
	c.SetWriteDeadline(time.Unix(1, 0))
	if n, err := c.Write([]byte("x")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past its deadline = %d, %v", n, err)
	}
}

func TestRawConn_CloseUnblocksRead(t *testing.T) {
	c, _ := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed connection: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after Close")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed connection: %v; want net.ErrClosed", err)
	}
}

func TestRawConn_ResetIsAnError(t *testing.T) {
	c, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if _, err = c.Write([]byte("after reset")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a reset connection: %v; want a write *net.OpError", err)
	}
}

func TestWrapConn_OtherConnsUnchanged(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if wrapConn(a) != a {
		t.Fatal("wrapConn changed a non-TCP connection")
	}
}

// sendOnRead: the request goes out inside the next Read, which returns
// the reply; the bytes sent are counted.
func TestRawConn_SendOnRead(t *testing.T) {
	c, peer := tcpPair(t)
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(peer, buf); err == nil && string(buf) == "hello" {
			peer.Write([]byte("world"))
		}
	}()
	var sent int64
	c.sendOnRead([]byte("hello"), true, &sent, time.Time{})
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "world" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if sent != 5 {
		t.Fatalf("sent = %d, want 5", sent)
	}
}

// With the check, bytes already waiting on the connection, or its end,
// mean it cannot carry a request: nothing is sent.
func TestRawConn_SendOnReadFindsStale(t *testing.T) {
	for _, name := range []string{"unsolicited", "eof"} {
		t.Run(name, func(t *testing.T) {
			c, peer := tcpPair(t)
			if name == "eof" {
				peer.Close()
			} else {
				peer.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
			}
			time.Sleep(20 * time.Millisecond)
			var sent int64
			c.sendOnRead([]byte("hello"), true, &sent, time.Time{})
			n, err := c.Read(make([]byte, 16))
			if n != 0 || !errors.Is(err, errStaleIdle) || sent != 0 {
				t.Fatalf("Read = %d, %v, sent %d; want 0, errStaleIdle, 0", n, err, sent)
			}
		})
	}
}

// A request larger than the socket buffers is finished by an ordinary
// write, then the reply is read.
func TestRawConn_SendOnReadLarge(t *testing.T) {
	c, peer := tcpPair(t)
	req := bytes.Repeat([]byte("r"), 8<<20)
	go func() {
		time.Sleep(20 * time.Millisecond) // let the socket buffers fill
		if _, err := io.CopyN(io.Discard, peer, int64(len(req))); err == nil {
			peer.Write([]byte("done"))
		}
	}()
	var sent int64
	c.sendOnRead(req, false, &sent, time.Time{})
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "done" || sent != int64(len(req)) {
		t.Fatalf("Read = %q, %v, sent %d", buf[:n], err, sent)
	}
}

// A read deadline already past fails the Read before anything is sent.
func TestRawConn_SendOnReadDeadline(t *testing.T) {
	c, _ := tcpPair(t)
	c.SetReadDeadline(time.Unix(1, 0))
	var sent int64
	c.sendOnRead([]byte("hello"), false, &sent, time.Time{})
	if _, err := c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) || sent != 0 {
		t.Fatalf("Read = %v, sent %d", err, sent)
	}
	// The pending request was dropped with the failed Read.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) || sent != 0 {
		t.Fatalf("second Read = %v, sent %d", err, sent)
	}
}

// TestRawConn_RaceDetectorSeesSocketOrder: a value written before a
// message is sent is read after the message arrives, on another
// goroutine; under -race this reports a race unless the raw calls tell
// the race detector what package syscall would.
func TestRawConn_RaceDetectorSeesSocketOrder(t *testing.T) {
	c, peer := tcpPair(t)
	peerRaw := wrapConn(peer).(*rawTCPConn)
	var shared int
	done := make(chan int)
	go func() {
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			done <- -1
			return
		}
		done <- shared
	}()
	shared = 42
	if _, err := peerRaw.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != 42 {
		t.Fatalf("read %d", got)
	}
}

// A write that fails inside the Read is that Read's error, a write
// *net.OpError, and nothing counts as sent.
func TestRawConn_SendOnReadWriteFails(t *testing.T) {
	c, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	time.Sleep(20 * time.Millisecond)
	var sent int64
	c.sendOnRead([]byte("hello"), false, &sent, time.Time{})
	_, err := c.Read(make([]byte, 4))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || sent != 0 {
		t.Fatalf("Read = %v (sent %d); want a write *net.OpError, nothing sent", err, sent)
	}
}

// BenchmarkSocketCalls compares, in one run, a 300-byte write and its
// read on a loopback TCP connection made with read(2) and write(2)
// (what rawRead and rawWrite called before) and with recvfrom(2) and
// sendto(2) (what they call now). A proxied request makes two of each.
func BenchmarkSocketCalls(b *testing.B) {
	fileRead := func(fd uintptr, p []byte) (int, syscall.Errno) {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		return int(n), e
	}
	fileWrite := func(fd uintptr, p []byte) (int, syscall.Errno) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		return int(n), e
	}
	for _, v := range []struct {
		name  string
		read  func(uintptr, []byte) (int, syscall.Errno)
		write func(uintptr, []byte) (int, syscall.Errno)
	}{{"read-write", fileRead, fileWrite}, {"recvfrom-sendto", rawRead, rawWrite}} {
		b.Run(v.name, func(b *testing.B) {
			c, peer := tcpPair(b)
			defer c.Close()
			defer peer.Close()
			prc, err := peer.(*net.TCPConn).SyscallConn()
			if err != nil {
				b.Fatal(err)
			}
			out, in := make([]byte, 300), make([]byte, 4096)
			var failed error
			err = c.rc.Control(func(wfd uintptr) {
				err := prc.Control(func(rfd uintptr) {
					for b.Loop() {
						if n, e := v.write(wfd, out); e != 0 || n != len(out) {
							failed = fmt.Errorf("write: %d bytes, %v", n, e)
							return
						}
						// Loopback delivers within the write: the bytes are there.
						if n, e := v.read(rfd, in); e != 0 || n != len(out) {
							failed = fmt.Errorf("read: %d bytes, %v", n, e)
							return
						}
					}
				})
				if err != nil {
					failed = err
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			if failed != nil {
				b.Fatal(failed)
			}
		})
	}
}

// TestServer_YieldSkippedWhileReadsWait: a client that pauses between
// requests makes every read after the yield wait in the netpoller
// anyway; after yieldMissLimit of those the connection stops yielding
// for yieldPause requests, then tries again.
func TestServer_YieldSkippedWhileReadsWait(t *testing.T) {
	type state struct{ misses, noYield uint8 }
	var mu sync.Mutex
	var seen []state
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(connKey{}).(*conn)
		if _, ok := c.rwc.(*rawTCPConn); !ok {
			t.Errorf("connection is %T, not *rawTCPConn", c.rwc)
		}
		mu.Lock()
		seen = append(seen, state{c.yieldMisses, c.noYield})
		mu.Unlock()
	}))
	nc, br := rawConn(t, addr)
	const n = yieldMissLimit + yieldPause + yieldMissLimit + 20
	for range n {
		if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		readResponse(t, br, "GET")
		time.Sleep(2 * time.Millisecond) // the server's next read waits
	}
	nc.Close()
	mu.Lock() // the handler of the last request ran before its response was read
	defer mu.Unlock()
	paused, resumed := -1, -1
	for i, s := range seen {
		if paused < 0 && s.noYield == yieldPause {
			paused = i
		}
		if paused >= 0 && i > paused && s.noYield == 0 && s.misses > 0 {
			resumed = i
			break
		}
	}
	if paused < 0 || resumed < 0 {
		t.Fatalf("the yield was not paused and resumed: (misses, noYield) per request %v", seen)
	}
	if paused < yieldMissLimit {
		t.Errorf("paused at request %d, before %d yields that waited", paused, yieldMissLimit)
	}
	for i := paused + 1; i < paused+yieldPause && i < len(seen); i++ {
		if seen[i].noYield != seen[i-1].noYield-1 {
			t.Fatalf("request %d: noYield %d after %d: the pause does not count down", i, seen[i].noYield, seen[i-1].noYield)
		}
	}
}

// waitsFake is a readWaiter that answers from a script.
type waitsFake struct{ waited bool }

func (f *waitsFake) readWaited() bool { return f.waited }

// TestConn_Yielded: yields after which the read did not wait keep the
// connection yielding; only yieldMissLimit in a row that did pause it.
func TestConn_Yielded(t *testing.T) {
	f := &waitsFake{}
	c := &conn{waits: f}
	for i := range 1000 {
		f.waited = i%(yieldMissLimit) != 0 // one read in yieldMissLimit did not wait
		c.yielded()
		if c.noYield != 0 {
			t.Fatalf("paused after %d yields although one read in %d did not wait", i+1, yieldMissLimit)
		}
	}
	f.waited = false
	c.yielded()
	f.waited = true
	for i := range yieldMissLimit {
		if c.noYield != 0 {
			t.Fatalf("paused after %d yields that waited", i)
		}
		c.yielded()
	}
	if c.noYield != yieldPause || c.yieldMisses != 0 {
		t.Fatalf("after %d yields that waited: noYield %d, misses %d; want %d, 0", yieldMissLimit, c.noYield, c.yieldMisses, yieldPause)
	}
	(&conn{}).yielded() // a connection that cannot tell: nothing to note
}
