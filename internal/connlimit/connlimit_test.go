package connlimit

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestFromFileLimit(t *testing.T) {
	for _, c := range []struct {
		nofile uint64
		want   int
	}{
		{256, 64},
		{1024, 256},
		{65536, 32512},
		{1 << 20, (1<<20 - 512) / 2},
		{1<<64 - 1, 1 << 20}, // RLIM_INFINITY
	} {
		if got := fromFileLimit(c.nofile); got != c.want {
			t.Errorf("fromFileLimit(%d) = %d, want %d", c.nofile, got, c.want)
		}
	}
	if n := Default(); n < 64 || n > 1<<20 {
		t.Errorf("Default() = %d", n)
	}
}

// TestListener: a listener waiting for a connection holds no slot,
// Accept waits while the limit is reached, a connection gives its slot
// back when closed (once, however often it is closed), and closing the
// listener ends a wait.
func TestListener(t *testing.T) {
	l := New(1)
	var waited atomic.Int32
	l.OnWait = func() { waited.Add(1) }
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Listener(inner)
	defer ln.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	time.Sleep(50 * time.Millisecond)
	if n := l.Open(); n != 0 {
		t.Errorf("a listener waiting for a connection holds %d slots", n)
	}
	dial()
	first := <-accepted
	dial()
	select {
	case <-accepted:
		t.Fatal("a second connection was accepted over a limit of one")
	case <-time.After(200 * time.Millisecond):
	}
	if l.Open() != 1 || waited.Load() != 1 || l.Waits() != 1 {
		t.Errorf("open %d, waits %d (OnWait %d), want 1, 1", l.Open(), l.Waits(), waited.Load())
	}
	first.Close()
	first.Close()
	second := <-accepted
	if second == nil || l.Open() != 1 {
		t.Fatalf("after the first closed: %v, open %d", second, l.Open())
	}
	second.Close()
	dial() // the third
	if c := <-accepted; c == nil {
		t.Fatal("the third connection was not accepted")
	} else {
		defer c.Close()
	}
	// A fourth waits for the third's slot; closing the listener ends the
	// wait and closes the connection that waited.
	fourth := dial()
	deadline := time.Now().Add(5 * time.Second)
	for l.Waits() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ln.Close()
	select {
	case _, ok := <-accepted:
		if ok {
			t.Error("accepted a connection over the limit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the listener did not end the wait for a slot")
	}
	fourth.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := fourth.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the connection that waited was not closed: %d, %v", n, err)
	}
	if n := l.Open(); n != 1 {
		t.Errorf("%d slots taken, want 1 (the third's)", n)
	}
}
