package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backendSeen is what a test backend records of a request.
type backendSeen struct {
	method, uri, host, body string
	header                  http.Header
	te                      []string
	cl                      int64
}

// countingBackend is a net/http backend that counts the connections it
// accepts.
func countingBackend(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func roundTrip(t *testing.T, tr *Transport, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	res.Body.Close()
	return res, string(b)
}

func TestTransport_AgainstNetHTTPBackend(t *testing.T) {
	seen := make(chan backendSeen, 1)
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- backendSeen{r.Method, r.RequestURI, r.Host, string(b), r.Header.Clone(), r.TransferEncoding, r.ContentLength}
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(http.StatusNotModified)
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "ok")
		case "/big":
			w.Write(bytes.Repeat([]byte("b"), 1<<20))
		default:
			w.Header()["X-Multi"] = []string{"1", "2"}
			fmt.Fprintf(w, "hello %s", r.Method)
		}
	}))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	base := backend.URL

	t.Run("GET with escaped path and query", func(t *testing.T) {
		req := newRequest(t, "GET", base+"/a%2Fb/c?x=1&y=%20", nil)
		req.Header["X-Multi"] = []string{"a", "b"}
		res, body := roundTrip(t, tr, req)
		s := <-seen
		if s.uri != "/a%2Fb/c?x=1&y=%20" || strings.Join(s.header["X-Multi"], ",") != "a,b" || s.header.Get("User-Agent") != "" {
			t.Errorf("backend saw %+v", s)
		}
		if body != "hello GET" || strings.Join(res.Header["X-Multi"], ",") != "1,2" || res.ContentLength != 9 || res.Proto != "HTTP/1.1" || res.Status != "200 OK" {
			t.Errorf("response %v %q", res, body)
		}
	})
	t.Run("Host override", func(t *testing.T) {
		req := newRequest(t, "GET", base+"/", nil)
		req.Host = "virtual.example"
		roundTrip(t, tr, req)
		if s := <-seen; s.host != "virtual.example" {
			t.Errorf("host %q", s.host)
		}
	})
	t.Run("POST with Content-Length", func(t *testing.T) {
		_, body := roundTrip(t, tr, newRequest(t, "POST", base+"/", strings.NewReader("payload")))
		s := <-seen
		if s.body != "payload" || s.cl != 7 || len(s.te) != 0 || body != "hello POST" {
			t.Errorf("backend saw %+v", s)
		}
	})
	t.Run("POST of unknown length is chunked", func(t *testing.T) {
		req := newRequest(t, "POST", base+"/", io.MultiReader(strings.NewReader("chu"), strings.NewReader("nked")))
		req.ContentLength = -1
		roundTrip(t, tr, req)
		if s := <-seen; s.body != "chunked" || len(s.te) != 1 || s.te[0] != "chunked" {
			t.Errorf("backend saw %+v", s)
		}
	})
	t.Run("PUT with an empty body sends Content-Length 0", func(t *testing.T) {
		req := newRequest(t, "PUT", base+"/", io.NopCloser(strings.NewReader("")))
		req.ContentLength = 0
		roundTrip(t, tr, req)
		if s := <-seen; s.header.Get("Content-Length") != "0" || len(s.te) != 0 {
			t.Errorf("backend saw %+v", s)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		res, body := roundTrip(t, tr, newRequest(t, "HEAD", base+"/", nil))
		<-seen
		if body != "" || res.ContentLength != int64(len("hello HEAD")) {
			t.Errorf("HEAD: CL %d body %q", res.ContentLength, body)
		}
	})
	t.Run("204 and 304", func(t *testing.T) {
		for _, p := range []string{"/204", "/304"} {
			res, body := roundTrip(t, tr, newRequest(t, "GET", base+p, nil))
			<-seen
			if body != "" || res.Body != http.NoBody {
				t.Errorf("%s: %d %q", p, res.StatusCode, body)
			}
		}
	})
	t.Run("chunked response with trailer", func(t *testing.T) {
		res, body := roundTrip(t, tr, newRequest(t, "GET", base+"/chunked", nil))
		<-seen
		if body != "part1,part2" || res.ContentLength != -1 || res.Trailer.Get("X-Sum") != "ok" {
			t.Errorf("%q CL=%d trailer=%v", body, res.ContentLength, res.Trailer)
		}
		if res.Header.Get("Transfer-Encoding") != "" || res.Header.Get("Trailer") != "" {
			t.Errorf("framing fields left in the header: %v", res.Header)
		}
	})
	t.Run("large response", func(t *testing.T) {
		_, body := roundTrip(t, tr, newRequest(t, "GET", base+"/big", nil))
		<-seen
		if len(body) != 1<<20 {
			t.Errorf("%d bytes", len(body))
		}
	})
}

func TestTransport_ReusesConnections(t *testing.T) {
	backend, conns := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100))
	}))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for range 10 {
		roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil))
	}
	// Closing a body whose rest is already buffered keeps the connection.
	res, err := tr.RoundTrip(newRequest(t, "GET", backend.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Read(make([]byte, 10))
	res.Body.Close()
	roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil))
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests", n)
	}
	if n := tr.IdleConns(strings.TrimPrefix(backend.URL, "http://")); n != 1 {
		t.Errorf("%d idle connections", n)
	}
}

func TestTransport_ConnectionCloseFromBackend(t *testing.T) {
	backend, conns := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for range 3 {
		res, body := roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil))
		if body != "bye" || !res.Close {
			t.Errorf("%q close=%v", body, res.Close)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want one per request", n)
	}
}

// rawBackend serves each accepted connection with fn.
func rawBackend(t *testing.T, fn func(c net.Conn, br *bufio.Reader, n int)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fn(c, bufio.NewReader(c), n)
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// readRequestHead consumes one request head.
func readRequestHead(br *bufio.Reader) error {
	tp := textproto.NewReader(br)
	if _, err := tp.ReadLine(); err != nil {
		return err
	}
	_, err := tp.ReadMIMEHeader()
	return err
}

// TestTransport_StaleConnection: the backend closes a kept connection
// without answering. An idempotent request is sent again on a new
// connection; a POST is not, and its error does not claim it was unsent.
func TestTransport_StaleConnection(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		if readRequestHead(br) != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if n%2 == 0 {
			readRequestHead(br) // then close without answering
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	roundTrip(t, tr, newRequest(t, "GET", url, nil))
	if _, body := roundTrip(t, tr, newRequest(t, "GET", url, nil)); body != "ok" {
		t.Errorf("retried GET: %q", body)
	}
	roundTrip(t, tr, newRequest(t, "GET", url, nil)) // leaves a connection that will go stale
	_, err := tr.RoundTrip(newRequest(t, "POST", url, strings.NewReader("x")))
	if err == nil {
		t.Fatal("POST on a stale connection succeeded: it must not be replayed")
	}
	if errors.Is(err, ErrRequestNotSent) {
		t.Errorf("POST error claims the request was not sent: %v", err)
	}
}

// oneResponseBackend answers one request per connection, counting the
// request heads it read in served, then closes the connection.
func oneResponseBackend(t *testing.T, served *atomic.Int32) string {
	return rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		if readRequestHead(br) != nil {
			return
		}
		served.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
}

// TestTransport_ClosedIdleConnectionIsNotUsed: a connection the backend
// closed while idle is noticed before a request is written on it.
func TestTransport_ClosedIdleConnectionIsNotUsed(t *testing.T) {
	var served atomic.Int32
	url := oneResponseBackend(t, &served)
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	roundTrip(t, tr, newRequest(t, "GET", url, nil))
	time.Sleep(50 * time.Millisecond) // let the FIN arrive
	if _, body := roundTrip(t, tr, newRequest(t, "POST", url, strings.NewReader("x"))); body != "ok" {
		t.Errorf("%q", body)
	}
	if served.Load() != 2 {
		t.Errorf("served %d", served.Load())
	}
}

// TestTransport_UnsolicitedDataNeverDesynchronizes: bytes a backend sends
// beyond a response (here a whole forged response) must never be read as
// the response to the next request.
func TestTransport_UnsolicitedDataNeverDesynchronizes(t *testing.T) {
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprint("delay ", delay), func(t *testing.T) {
			url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
				for i := 0; ; i++ {
					if readRequestHead(br) != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ngenuine")
					if n == 0 && i == 0 {
						time.Sleep(delay)
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
					}
				}
			})
			tr := &Transport{}
			defer tr.CloseIdleConnections()
			roundTrip(t, tr, newRequest(t, "GET", url, nil))
			// The forged bytes arrive while the connection is idle. (Bytes
			// arriving after the next request was written cannot be told
			// from its response by any HTTP/1.1 client.)
			time.Sleep(2*delay + 20*time.Millisecond)
			for range 3 {
				if _, body := roundTrip(t, tr, newRequest(t, "GET", url, nil)); body != "genuine" {
					t.Fatalf("got %q", body)
				}
			}
		})
	}
}

func TestTransport_ContextCancellation(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			io.WriteString(w, "start")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	tr := &Transport{}
	defer tr.CloseIdleConnections()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", backend.URL+"/head", nil)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting for the head: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancellation took %v", time.Since(start))
	}

	ctx, cancel = context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", backend.URL+"/body", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := io.ReadAll(res.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("reading the body: %v", err)
	}
	res.Body.Close()
	if n := tr.IdleConns(strings.TrimPrefix(backend.URL, "http://")); n != 0 {
		t.Errorf("a cancelled connection went back to the pool")
	}
}

func TestTransport_ResponseHeaderTimeout(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		readRequestHead(br)
		io.ReadAll(br) // never answers
	})
	tr := &Transport{ResponseHeaderTimeout: 100 * time.Millisecond}
	_, err := tr.RoundTrip(newRequest(t, "GET", url, nil))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("got %v, want a timeout", err)
	}
	if errors.Is(err, ErrRequestNotSent) {
		t.Errorf("timeout claims the request was not sent")
	}
}

// TestTransport_SlowBodyOutlivesResponseHeaderTimeout: the head timeout
// does not apply to a body that streams for longer.
func TestTransport_SlowBodyOutlivesResponseHeaderTimeout(t *testing.T) {
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			io.WriteString(w, "tick")
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	tr := &Transport{ResponseHeaderTimeout: 80 * time.Millisecond}
	defer tr.CloseIdleConnections()
	if _, body := roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil)); body != "ticktickticktick"[:12] {
		t.Errorf("%q", body)
	}
}

func TestTransport_ErrRequestNotSent(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := ln.Addr().String()
	ln.Close()
	tr := &Transport{DialTimeout: time.Second}
	cases := []struct {
		name string
		req  func() *http.Request
	}{
		{"dial refused", func() *http.Request { return newRequest(t, "GET", "http://"+closedAddr+"/", nil) }},
		{"https is not handled", func() *http.Request { return newRequest(t, "GET", "https://example.com/", nil) }},
		{"invalid header value", func() *http.Request {
			r := newRequest(t, "GET", "http://"+closedAddr+"/", nil)
			r.Header["X-Bad"] = []string{"a\r\nInjected: 1"}
			return r
		}},
		{"cancelled before sending", func() *http.Request {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			r, _ := http.NewRequestWithContext(ctx, "GET", "http://"+closedAddr+"/", nil)
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.RoundTrip(tc.req())
			if !errors.Is(err, ErrRequestNotSent) {
				t.Errorf("%v does not match ErrRequestNotSent", err)
			}
		})
	}
}

// TestTransport_RefusesInjection: a header value or request target that
// would split the request is refused before anything is written.
func TestTransport_RefusesInjection(t *testing.T) {
	var got atomic.Int32
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	// A connection that sent a valid Host first checks the next one too.
	roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil))
	for _, mutate := range []func(r *http.Request){
		func(r *http.Request) { r.Host = "a\r\nX: y" },
		func(r *http.Request) { r.Header["X"] = []string{"v\nGET /smuggled HTTP/1.1"} },
		func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} },
		func(r *http.Request) { r.URL.RawQuery = "a=1 HTTP/1.1\r\nX: y" },
		func(r *http.Request) { r.Host = "a\r\nX: y" },
	} {
		req := newRequest(t, "GET", backend.URL, nil)
		mutate(req)
		if _, err := tr.RoundTrip(req); !errors.Is(err, ErrRequestNotSent) {
			t.Errorf("got %v", err)
		}
	}
	roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil))
	if got.Load() != 2 {
		t.Errorf("backend saw %d requests, want only the two valid ones", got.Load())
	}
}

func TestTransport_InformationalResponses(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		readRequestHead(br)
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
	})
	var codes []int
	var link string
	ctx := httptrace.WithClientTrace(testContext(t), &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		codes = append(codes, code)
		link = h.Get("Link")
		return nil
	}})
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	res, body := roundTrip(t, tr, req)
	if res.StatusCode != 200 || body != "done" || len(codes) != 1 || codes[0] != 103 || link != "</a.css>" {
		t.Errorf("%d %q 1xx=%v link=%q", res.StatusCode, body, codes, link)
	}
}

func TestTransport_SwitchingProtocols(t *testing.T) {
	backend, _ := countingBackend(t, http.HandlerFunc(echoUpgrade))
	tr := &Transport{}
	req := newRequest(t, "GET", backend.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	rwc, ok := res.Body.(io.ReadWriteCloser)
	if res.StatusCode != 101 || !ok {
		t.Fatalf("%d %T", res.StatusCode, res.Body)
	}
	defer rwc.Close()
	io.WriteString(rwc, "ping\n")
	line, _ := bufio.NewReader(rwc).ReadString('\n')
	if line != "echo ping\n" {
		t.Errorf("%q", line)
	}
}

// TestTransport_MalformedResponses: each response is malformed or framed
// ambiguously; the transport must fail cleanly (an error, the connection
// closed) and never hand back something a second parser could read
// differently.
func TestTransport_MalformedResponses(t *testing.T) {
	cases := []struct {
		name, response string
		bodyErr        bool // the head is fine, the body fails
	}{
		{"bare LF in the status line", "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", false},
		{"bare LF in a field", "HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok", false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", false},
		{"NUL in a value", "HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok", false},
		{"Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false},
		{"invalid Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", false},
		{"unsupported Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false},
		{"Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"status code out of range", "HTTP/1.1 600 Nope\r\nContent-Length: 0\r\n\r\n", false},
		{"status code not numeric", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", false},
		{"control character in the reason", "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", false},
		{"head too large", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", false},
		{"unsolicited 101", "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n", false},
		{"too many 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 10) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"closed before the head ends", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false},
		{"invalid chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", true},
		{"chunk longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n", true},
		{"body shorter than Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true},
		{"chunked body cut off", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
				readRequestHead(br)
				io.WriteString(c, tc.response)
			})
			tr := &Transport{}
			defer tr.CloseIdleConnections()
			res, err := tr.RoundTrip(newRequest(t, "GET", url, nil))
			if !tc.bodyErr {
				if err == nil {
					res.Body.Close()
					t.Fatalf("accepted: %d %v", res.StatusCode, res.Header)
				}
				if errors.Is(err, ErrRequestNotSent) {
					t.Errorf("error claims the request was not sent: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("head refused: %v", err)
			}
			if _, err := io.ReadAll(res.Body); err == nil {
				t.Errorf("body read succeeded")
			}
			res.Body.Close()
			if n := tr.IdleConns(strings.TrimPrefix(url, "http://")); n != 0 {
				t.Errorf("a connection with a broken body went back to the pool")
			}
		})
	}
}

// TestTransport_ResponseUntilClose reads a body delimited by the end of
// the connection (HTTP/1.0 style) and does not keep the connection.
func TestTransport_ResponseUntilClose(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		readRequestHead(br)
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nall of it")
	})
	tr := &Transport{}
	res, body := roundTrip(t, tr, newRequest(t, "GET", url, nil))
	if body != "all of it" || !res.Close || res.ContentLength != -1 {
		t.Errorf("%q close=%v CL=%d", body, res.Close, res.ContentLength)
	}
	if n := tr.IdleConns(strings.TrimPrefix(url, "http://")); n != 0 {
		t.Errorf("kept a connection delimited by close")
	}
}

func TestTransport_ConcurrentRequests(t *testing.T) {
	backend, conns := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	tr := &Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				msg := fmt.Sprintf("%d/%d", i, j)
				res, err := tr.RoundTrip(newRequest(t, "POST", backend.URL, strings.NewReader(msg)))
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(b) != msg {
					t.Errorf("got %q, want %q", b, msg)
				}
			}
		})
	}
	wg.Wait()
	if n := tr.IdleConns(strings.TrimPrefix(backend.URL, "http://")); n > 4 {
		t.Errorf("%d idle connections, more than MaxIdleConnsPerHost", n)
	}
	if conns.Load() > 50 {
		t.Errorf("%d connections: the pool is not reused", conns.Load())
	}
}

// TestTransport_ClosedIdleConnectionsBodyless: several pooled connections
// the backend closed while idle are each found stale before a request
// without a body is written on them (the check made as the request is
// sent), and the request goes out once, on a new connection, whatever
// its method.
func TestTransport_ClosedIdleConnectionsBodyless(t *testing.T) {
	for _, method := range []string{"GET", "POST", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			var heads atomic.Int32
			url := oneResponseBackend(t, &heads)
			tr := &Transport{}
			defer tr.CloseIdleConnections()
			// Three connections in the pool, each closed by the backend.
			var wg sync.WaitGroup
			release := make(chan struct{})
			for range 3 {
				wg.Go(func() {
					res, err := tr.RoundTrip(newRequest(t, "GET", url, nil))
					if err != nil {
						t.Error(err)
						return
					}
					<-release // keep all three busy at once, so three are dialed
					io.ReadAll(res.Body)
					res.Body.Close()
				})
			}
			for heads.Load() < 3 {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			time.Sleep(50 * time.Millisecond) // let the FINs arrive
			heads.Store(0)
			if _, body := roundTrip(t, tr, newRequest(t, method, url, nil)); body != "ok" {
				t.Fatalf("body %q", body)
			}
			if n := heads.Load(); n != 1 {
				t.Fatalf("the backend read %d request heads, want 1", n)
			}
		})
	}
}

// TestTransport_LargeHeadOnReusedConnection: a request head larger than
// the write buffer is partly written before the request is complete; the
// idle check must still come before the first byte, and the request must
// arrive whole.
func TestTransport_LargeHeadOnReusedConnection(t *testing.T) {
	var got atomic.Int64
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		for {
			tp := textproto.NewReader(br)
			if _, err := tp.ReadLine(); err != nil {
				return
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				return
			}
			got.Store(int64(len(h.Get("X-Big"))))
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	roundTrip(t, tr, newRequest(t, "GET", url, nil))
	big := strings.Repeat("b", 3*writeBufSize)
	req := newRequest(t, "GET", url, nil)
	req.Header.Set("X-Big", big)
	if _, body := roundTrip(t, tr, req); body != "ok" {
		t.Fatalf("body %q", body)
	}
	if got.Load() != int64(len(big)) {
		t.Fatalf("backend got a %d-byte field, want %d", got.Load(), len(big))
	}
}

// TestTransport_HeadDeadline: RoundTripHeadDeadline bounds the wait for
// the response head (on a new and on a reused connection), not the body.
func TestTransport_HeadDeadline(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		for {
			tp := textproto.NewReader(br)
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			if _, err := tp.ReadMIMEHeader(); err != nil {
				return
			}
			switch {
			case strings.Contains(line, "/silent"):
				time.Sleep(2 * time.Second)
				return
			case strings.Contains(line, "/slowbody"):
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
				time.Sleep(300 * time.Millisecond)
				io.WriteString(c, "cd")
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for _, reused := range []bool{false, true} {
		if reused {
			roundTrip(t, tr, newRequest(t, "GET", url+"/warm", nil))
		}
		start := time.Now()
		_, err := tr.RoundTripHeadDeadline(newRequest(t, "GET", url+"/silent", nil), time.Time{}, start.Add(100*time.Millisecond))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("reused=%v: error %v, want os.ErrDeadlineExceeded", reused, err)
		}
		if errors.Is(err, ErrRequestNotSent) {
			t.Fatalf("reused=%v: the request was sent, but the error says it was not", reused)
		}
		if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
			t.Fatalf("reused=%v: gave up after %s, want about 100ms", reused, d)
		}
	}
	res, err := tr.RoundTripHeadDeadline(newRequest(t, "GET", url+"/slowbody", nil), time.Time{}, time.Now().Add(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(b) != "abcd" {
		t.Fatalf("body %q, %v: the head deadline cut the body", b, err)
	}
	// The deadline set for one round trip does not linger on the pooled
	// connection.
	time.Sleep(150 * time.Millisecond)
	if _, body := roundTrip(t, tr, newRequest(t, "GET", url+"/ok", nil)); body != "ok" {
		t.Fatalf("next round trip: %q", body)
	}
	if _, err := tr.RoundTripHeadDeadline(newRequest(t, "GET", url+"/ok", nil), time.Now(), time.Now().Add(-time.Second)); !errors.Is(err, ErrRequestNotSent) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v, want a not-sent deadline error", err)
	}
}

// TestTransport_HeadDeadlineBoundsBodyWrite: a backend that stops reading
// a large request body cannot hold the round trip past the deadline.
func TestTransport_HeadDeadlineBoundsBodyWrite(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		readRequestHead(br)
		time.Sleep(2 * time.Second) // reads nothing more
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	body := bytes.NewReader(bytes.Repeat([]byte("x"), 64<<20))
	req := newRequest(t, "POST", url, body)
	start := time.Now()
	_, err := tr.RoundTripHeadDeadline(req, time.Time{}, start.Add(200*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("error %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("gave up after %s", d)
	}
}

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// TestPersistConn_HeadDeadlineSlack: a response-head deadline is set up
// to 1/32 of its timeout late, and one already set within that margin is
// kept instead of being set again.
func TestPersistConn_HeadDeadlineSlack(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &deadlineConn{Conn: a}
	pc := newPersistConn(&Transport{}, "k", c)
	start := time.Unix(1_000_000, 0)
	const timeout = 32 * time.Second // a margin of 1 s
	at := func(d time.Duration) { pc.setSlackDeadline(start.Add(d), start.Add(d+timeout)) }
	steps := []struct {
		after time.Duration
		want  time.Time // zero: the deadline set is kept
	}{
		{0, start.Add(timeout + time.Second)},
		{500 * time.Millisecond, time.Time{}},
		{time.Second, time.Time{}}, // exactly at the margin's end
		{time.Second + time.Millisecond, start.Add(time.Second + time.Millisecond + timeout + time.Second)},
	}
	for i, s := range steps {
		before := len(c.set)
		at(s.after)
		switch {
		case s.want.IsZero() && len(c.set) != before:
			t.Errorf("step %d: set %v, want the deadline kept", i, c.set[before])
		case !s.want.IsZero() && (len(c.set) != before+1 || !c.set[before].Equal(s.want)):
			t.Errorf("step %d: set %v, want %v", i, c.set[before:], s.want)
		}
	}
	// A shorter timeout wants an earlier deadline than the one set: it is
	// set, never left to fire late by more than its own margin.
	before := len(c.set)
	now := start.Add(2 * time.Second)
	pc.setSlackDeadline(now, now.Add(time.Second))
	if want := now.Add(time.Second + time.Second/32); len(c.set) != before+1 || !c.set[before].Equal(want) {
		t.Errorf("shorter timeout: set %v, want %v", c.set[before:], want)
	}
	// Cleared (a body read blocked): the next one is set.
	pc.setReadDeadline(time.Time{})
	before = len(c.set)
	pc.setSlackDeadline(now, now.Add(time.Second))
	if len(c.set) != before+1 {
		t.Errorf("after clearing, the deadline was not set")
	}
}

// TestTransport_ResponseHeaderTimeoutOnReusedConnection: on a pooled
// connection, whose deadline may be kept from the request before, the
// head timeout still fires, and not before it is due.
func TestTransport_ResponseHeaderTimeoutOnReusedConnection(t *testing.T) {
	var served atomic.Int32
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		for {
			if readRequestHead(br) != nil {
				return
			}
			if served.Add(1) == 1 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			io.ReadAll(br) // the second request is never answered
			return
		}
	})
	const timeout = 200 * time.Millisecond
	tr := &Transport{ResponseHeaderTimeout: timeout}
	defer tr.CloseIdleConnections()
	if _, body := roundTrip(t, tr, newRequest(t, "GET", url, nil)); body != "ok" {
		t.Fatalf("first response: %q", body)
	}
	time.Sleep(timeout / 64) // within the margin: the deadline set is kept
	start := time.Now()
	_, err := tr.RoundTrip(newRequest(t, "GET", url, nil))
	elapsed := time.Since(start)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	if elapsed < timeout {
		t.Errorf("the head timeout fired after %v, before its %v", elapsed, timeout)
	}
	if served.Load() != 2 {
		t.Errorf("the backend saw %d requests, want 2 (the second on the same connection)", served.Load())
	}
}

// TestTransport_StripHopByHop: with StripHopByHop, a response's Header
// is what removing the hop-by-hop fields and those Connection names (in
// any case) from the Header without it gives; Close, ContentLength and
// Trailer are unchanged; a 101's Header keeps every field.
func TestTransport_StripHopByHop(t *testing.T) {
	heads := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nx-secret: s\r\nX-Kept: k\r\nTE: trailers\r\nProxy-Authenticate: Basic\r\nPROXY-CONNECTION: x\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nProxy-Authorization: x\r\nConnection: " + strings.Repeat("x", 70) + "\r\n" + strings.Repeat("X", 70) + ": long\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nConnection: Date\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\nKeep-Alive: 1\r\n\r\n",
	}
	for i, head := range heads {
		url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
			if readRequestHead(br) == nil {
				io.WriteString(c, head)
			}
		})
		get := func(strip bool) *http.Response {
			tr := &Transport{StripHopByHop: strip}
			defer tr.CloseIdleConnections()
			req := newRequest(t, "GET", url, nil)
			if strings.Contains(head, " 101 ") {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "x")
			}
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("head %d: %v", i, err)
			}
			if res.StatusCode != 101 {
				io.ReadAll(res.Body)
			}
			res.Body.Close()
			return res
		}
		full, stripped := get(false), get(true)
		want := full.Header.Clone()
		if full.StatusCode != 101 {
			conn := want["Connection"]
			for k := range want {
				switch k {
				case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
					delete(want, k)
				}
				for _, v := range conn {
					for _, tok := range strings.Split(v, ",") {
						if strings.EqualFold(strings.TrimSpace(tok), k) {
							delete(want, k)
						}
					}
				}
			}
		}
		if fmt.Sprint(stripped.Header) != fmt.Sprint(want) {
			t.Errorf("head %d: Header %v, want %v", i, stripped.Header, want)
		}
		if stripped.Close != full.Close || stripped.ContentLength != full.ContentLength || fmt.Sprint(stripped.Trailer) != fmt.Sprint(full.Trailer) {
			t.Errorf("head %d: Close %v ContentLength %d Trailer %v, want %v %d %v", i, stripped.Close, stripped.ContentLength, stripped.Trailer, full.Close, full.ContentLength, full.Trailer)
		}
	}
}

// TestTransport_PoolsPerHost: requests to two hosts, alternating, each
// reach their own host and reuse its one connection (getConn's last-pool
// shortcut must not hand one host's connection to the other).
func TestTransport_PoolsPerHost(t *testing.T) {
	var seen [2]atomic.Int32
	var conns [2]*atomic.Int32
	var urls [2]string
	for i := range urls {
		b, c := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen[i].Add(1)
			fmt.Fprint(w, i)
		}))
		urls[i], conns[i] = b.URL, c
	}
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for n := 0; n < 10; n++ {
		i := n % 2
		if _, body := roundTrip(t, tr, newRequest(t, "GET", urls[i], nil)); body != fmt.Sprint(i) {
			t.Fatalf("request %d to host %d answered by %q", n, i, body)
		}
	}
	for i := range urls {
		if seen[i].Load() != 5 || conns[i].Load() != 1 {
			t.Errorf("host %d: %d requests on %d connections, want 5 on 1", i, seen[i].Load(), conns[i].Load())
		}
	}
}

// TestTransport_ResponseIdleTimeout: a body that stops arriving fails
// with ErrResponseIdle after ResponseIdleTimeout (a timeout that matches
// os.ErrDeadlineExceeded), whatever its framing, and the connection is
// not used again; a body that keeps arriving, slower than the timeout
// in all but never idle for that long, is read whole.
func TestTransport_ResponseIdleTimeout(t *testing.T) {
	const idle = 150 * time.Millisecond
	stalls := map[string]string{
		"length":  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n",
		"close":   "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhalf",
	}
	for name, head := range stalls {
		t.Run(name, func(t *testing.T) {
			var conns atomic.Int32
			url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
				conns.Add(1)
				if readRequestHead(br) != nil {
					return
				}
				io.WriteString(c, head)
				io.Copy(io.Discard, br) // then nothing, until the client closes
			})
			tr := &Transport{ResponseIdleTimeout: idle}
			defer tr.CloseIdleConnections()
			res, err := tr.RoundTrip(newRequest(t, "GET", url, nil))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			b, err := io.ReadAll(res.Body)
			took := time.Since(start)
			res.Body.Close()
			if string(b) != "half" || !errors.Is(err, ErrResponseIdle) {
				t.Fatalf("read %q, %v; want \"half\" and ErrResponseIdle", b, err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%v is not a timeout matching os.ErrDeadlineExceeded", err)
			}
			if took < idle || took > 5*time.Second {
				t.Errorf("the read failed after %v, want about %v", took, idle)
			}
			// The connection is closed: the next request dials.
			res, err = tr.RoundTrip(newRequest(t, "GET", url, nil))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
	t.Run("slow but never idle", func(t *testing.T) {
		backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for range 6 {
				io.WriteString(w, "tick")
				w.(http.Flusher).Flush()
				time.Sleep(idle / 3)
			}
		}))
		tr := &Transport{ResponseIdleTimeout: idle}
		defer tr.CloseIdleConnections()
		if _, body := roundTrip(t, tr, newRequest(t, "GET", backend.URL, nil)); body != strings.Repeat("tick", 6) {
			t.Errorf("%q", body)
		}
	})
	t.Run("tunnel", func(t *testing.T) {
		// The connection of a 101 is a tunnel, silent as long as its ends
		// like: the idle timeout does not apply.
		backend, _ := countingBackend(t, http.HandlerFunc(echoUpgrade))
		tr := &Transport{ResponseIdleTimeout: idle}
		req := newRequest(t, "GET", backend.URL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		rwc := res.Body.(io.ReadWriteCloser)
		defer rwc.Close()
		br := bufio.NewReader(rwc)
		io.WriteString(rwc, "ping\n")
		if line, err := br.ReadString('\n'); line != "echo ping\n" {
			t.Fatalf("%q %v", line, err)
		}
		done := make(chan string, 1)
		go func() {
			line, err := br.ReadString('\n')
			if err != nil {
				line = err.Error()
			}
			done <- line
		}()
		time.Sleep(3 * idle) // the read waits, silent, past the idle timeout
		io.WriteString(rwc, "again\n")
		if line := <-done; line != "echo again\n" {
			t.Errorf("after a silence: %q", line)
		}
	})
}

// TestTransport_CancelBetweenBodyReads: a request cancelled while its
// body is not being read (the proxy writing what it read to its client)
// reads nothing more, with an idle timeout as without: the idle deadline
// set before the next read must not undo the cancellation's.
func TestTransport_CancelBetweenBodyReads(t *testing.T) {
	for _, idle := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprint(idle), func(t *testing.T) {
			backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for range 20 {
					io.WriteString(w, "tick")
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}))
			tr := &Transport{ResponseIdleTimeout: idle}
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res, err := tr.RoundTrip(newRequest(t, "GET", backend.URL, nil).WithContext(ctx))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			buf := make([]byte, 64)
			for range 2 { // reads that wait for the socket
				if _, err := res.Body.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			time.Sleep(100 * time.Millisecond) // more than idle/32 after the last deadline
			n, err := res.Body.Read(buf)
			if n > 0 || !errors.Is(err, context.Canceled) {
				t.Errorf("after the cancellation: read %q, %v; want nothing and context.Canceled", buf[:n], err)
			}
		})
	}
}
