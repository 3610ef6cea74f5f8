package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connlimit"
)

// TestServer_ConnLimit: with a limit of two connections, a third is
// served only once one of the first two closes; a
// connection handed to the fallback keeps its slot until it closes; and
// Close ends a wait for a slot.
func TestServer_ConnLimit(t *testing.T) {
	lim := connlimit.New(2)
	s := &Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		Fallback: &http.Server{Handler: http.HandlerFunc(echoUpgrade)},
		// Longer than the test: no connection may leave by a timeout.
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       time.Minute,
		ConnLimit:         lim,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer s.Close()
	addr := ln.Addr().String()

	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	dial := func() *client {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &client{c, bufio.NewReader(c)}
	}
	// get sends a request and reads its answer within wait; it returns
	// the status, or the read's error.
	get := func(cl *client, wait time.Duration) (int, error) {
		t.Helper()
		io.WriteString(cl.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		cl.c.SetReadDeadline(time.Now().Add(wait))
		res, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
	// waiting checks that cl's request, sent by get, gets no answer yet.
	waiting := func(cl *client) {
		t.Helper()
		if code, err := get(cl, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection over the limit was served: %d %v", code, err)
		}
	}
	// answered reads the answer to the request waiting on cl.
	answered := func(cl *client) {
		t.Helper()
		cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatalf("the waiting connection was not served once a slot was free: %v", err)
		}
		res.Body.Close()
	}

	c1, c2 := dial(), dial()
	for _, cl := range []*client{c1, c2} {
		if code, err := get(cl, 5*time.Second); code != 200 {
			t.Fatalf("%d %v", code, err)
		}
	}
	// A listener waiting for a connection holds no slot.
	if n := lim.Open(); n != 2 {
		t.Errorf("%d slots taken by two connections", n)
	}
	c3 := dial()
	waiting(c3)
	c1.c.Close()
	answered(c3)

	// c2 goes to the fallback, and keeps its slot there.
	io.WriteString(c2.c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	c2.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if res, err := http.ReadResponse(c2.br, nil); err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	c4 := dial()
	waiting(c4)
	c3.c.Close()
	answered(c4)
	c5 := dial()
	waiting(c5)
	c2.c.Close() // the fallback's connection
	answered(c5)
	if n := lim.Open(); n != 2 {
		t.Errorf("%d slots taken, want 2 (c4 and c5)", n)
	}
	// c3, c4 and c5 waited.
	if lim.Waits() != 3 {
		t.Errorf("%d waits, want 3", lim.Waits())
	}

	// A wait for a slot ends with the server.
	c6 := dial()
	waiting(c6)
	s.Close()
	select {
	case err := <-served:
		if err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still waits for a slot after Close")
	}
	deadline := time.Now().Add(5 * time.Second)
	for lim.Open() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := lim.Open(); n != 0 {
		t.Errorf("%d slots still taken after Close", n)
	}
}
