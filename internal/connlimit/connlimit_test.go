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

// TestListener: Accept waits while the limit is reached, a connection
// gives its slot back when closed (once, however often it is closed), and
// closing the listener ends a wait.
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
	// The loop waits no more (a slot is free) and blocks in Accept; closing
	// the listener ends it, as it ends a wait for a slot.
	third := dial()
	if c := <-accepted; c == nil {
		t.Fatal("the third connection was not accepted")
	} else {
		defer c.Close()
	}
	_ = third
	go func() { time.Sleep(100 * time.Millisecond); ln.Close() }()
	select {
	case _, ok := <-accepted:
		if ok {
			t.Error("accepted a connection over the limit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the listener did not end the wait for a slot")
	}
}
