package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitingHandler starts, reads the body when told to, and then waits for
// its request's context to end or for hold to pass (or the request's
// ?hold= duration), whichever comes first; it reports the context's error
// (nil: it was not cancelled).
type waitingHandler struct {
	readBody bool
	hold     time.Duration
	started  chan struct{}
	ended    chan error
}

func newWaitingHandler(readBody bool, hold time.Duration) *waitingHandler {
	return &waitingHandler{readBody: readBody, hold: hold, started: make(chan struct{}, 4), ended: make(chan error, 4)}
}

func (h *waitingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.readBody {
		io.Copy(io.Discard, r.Body)
	}
	h.started <- struct{}{}
	hold := h.hold
	if d, err := time.ParseDuration(r.URL.Query().Get("hold")); err == nil {
		hold = d
	}
	t := time.NewTimer(hold)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
	h.ended <- r.Context().Err()
	io.WriteString(w, "ok")
}

func (h *waitingHandler) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-h.ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the handler did not end", what)
		return nil
	}
}

func (h *waitingHandler) awaitStart(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not start")
	}
}

// skipWithoutPeek skips a test on the systems where the server cannot
// peek at a client's socket (peek_other.go).
func skipWithoutPeek(t *testing.T) {
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "openbsd":
	default:
		t.Skipf("the client-close check cannot peek at sockets on %s", runtime.GOOS)
	}
}

func checkEvery(d time.Duration) func(*Server) { return func(s *Server) { s.ClientCloseCheck = d } }

// A client that goes away while its request runs (closing, half-closing or
// resetting its connection, after a body or none) has the request's
// context cancelled within a few checks, not when the handler gets round
// to writing its response.
func TestServer_ClientCloseCancelsTheRequest(t *testing.T) {
	skipWithoutPeek(t)
	get := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	closeIt := func(c *net.TCPConn) { c.Close() }
	cases := []struct {
		name    string
		first   string // a request served before, on the same connection
		request string
		leave   func(c *net.TCPConn)
	}{
		{"close", "", get, closeIt},
		{"half-close", "", get, func(c *net.TCPConn) { c.CloseWrite() }},
		{"reset", "", get, func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"close after a body", "", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", closeIt},
		{"close after a chunked body", "", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", closeIt},
		{"close on the second request", "GET /?hold=0s HTTP/1.1\r\nHost: a\r\n\r\n", get, closeIt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWaitingHandler(true, 10*time.Second)
			_, addr := startServer(t, h, checkEvery(20*time.Millisecond))
			c, br := rawConn(t, addr)
			if tc.first != "" {
				io.WriteString(c, tc.first)
				h.awaitStart(t)
				if err := h.wait(t, "first request"); err != nil {
					t.Fatalf("the first request's context ended: %v", err)
				}
				readResponse(t, br, "GET")
			}
			io.WriteString(c, tc.request)
			h.awaitStart(t)
			start := time.Now()
			tc.leave(c.(*net.TCPConn))
			err := h.wait(t, tc.name)
			if err != context.Canceled {
				t.Fatalf("the request's context: %v, want it cancelled", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("cancelled %v after the client left, want within a few checks of 20 ms", took)
			}
		})
	}
}

// The check leaves alone a client that is still there: one that waits,
// one that sent a second request and half-closed (it waits for both
// responses: its first request is not cancelled, though the second would
// be if it ran long), one whose body the handler has not read; and a
// server with the check turned off.
func TestServer_ClientCloseCheckKeepsWaitingClients(t *testing.T) {
	const hold = 200 * time.Millisecond // ten checks
	get := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	cases := []struct {
		name     string
		check    time.Duration
		readBody bool
		request  string
		leave    func(c *net.TCPConn)
		want     int // responses
	}{
		{"waiting", 20 * time.Millisecond, true, get, func(*net.TCPConn) {}, 1},
		{"pipelined, then half-closed", 20 * time.Millisecond, true, get + "GET /?hold=0s HTTP/1.1\r\nHost: a\r\n\r\n", func(c *net.TCPConn) { c.CloseWrite() }, 2},
		{"body unread, then half-closed", 20 * time.Millisecond, false,
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", func(c *net.TCPConn) { c.CloseWrite() }, 1},
		{"check off, half-closed", -1, true, get, func(c *net.TCPConn) { c.CloseWrite() }, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWaitingHandler(tc.readBody, hold)
			_, addr := startServer(t, h, checkEvery(tc.check))
			c, br := rawConn(t, addr)
			io.WriteString(c, tc.request)
			h.awaitStart(t)
			tc.leave(c.(*net.TCPConn))
			for i := range tc.want {
				if err := h.wait(t, tc.name); err != nil {
					t.Fatalf("request %d: its context ended (%v) though its client waits", i+1, err)
				}
				if i+1 < tc.want {
					h.awaitStart(t)
				}
			}
			var n int
			for ; n < tc.want; n++ {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				b, _ := io.ReadAll(res.Body)
				if res.StatusCode != 200 || string(b) != "ok" {
					t.Errorf("response %d: %d %q", n+1, res.StatusCode, b)
				}
			}
			if n != tc.want {
				t.Errorf("%d responses, want %d", n, tc.want)
			}
		})
	}
}

// An upstream round trip of the package's Transport, made under the
// request's context, ends when the client goes away: the backend sees its
// connection closed, rather than the gateway waiting for its answer.
func TestServer_ClientCloseEndsTheUpstreamRoundTrip(t *testing.T) {
	skipWithoutPeek(t)
	backendGone := make(chan struct{})
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bln.Close()
	go func() {
		c, err := bln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		// Never answer; wait for the gateway to give up.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); err == io.EOF {
			close(backendGone)
		}
	}()
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	errs := make(chan error, 1)
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), "GET", "http://"+bln.Addr().String()+"/", nil)
		res, err := tr.RoundTrip(out)
		if err == nil {
			res.Body.Close()
		}
		errs <- err
	})
	_, addr := startServer(t, proxy, checkEvery(20*time.Millisecond))
	c, _ := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the round trip is under way
	c.Close()
	select {
	case <-backendGone:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's connection stayed open after the client left")
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("round trip: %v, want it cancelled", err)
	}
}
