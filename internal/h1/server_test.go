package h1

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServer_KeepAliveServesManyRequestsOnOneConnection(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, rec)
	c, br := rawConn(t, addr)
	for i := range 5 {
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		res, body := readResponse(t, br, "GET")
		if res.StatusCode != 200 || body != "ok" || res.Close {
			t.Fatalf("request %d: %d %q close=%v", i, res.StatusCode, body, res.Close)
		}
		if res.Header.Get("Date") == "" || res.ContentLength != 2 {
			t.Errorf("response lacks Date or Content-Length: %v", res.Header)
		}
	}
	if n := len(rec.requests()); n != 5 {
		t.Errorf("handler saw %d requests", n)
	}
}

func TestServer_WorksWithNetHTTPClient(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		fmt.Fprintf(w, "%s %s %s %q", r.Method, r.URL.Path, r.URL.RawQuery, b)
	}))
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	res, err := client.Post("http://"+addr+"/p?q=1", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != `POST /p q=1 "body"` || res.Header.Get("X-Method") != "POST" {
		t.Errorf("got %q %v", b, res.Header)
	}
}

// A handler can take the time the server read each request's head
// instead of reading the clock: it is set per request, before the
// handler runs.
func TestServer_Arrival(t *testing.T) {
	arrivals := make(chan time.Time, 2)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals <- w.(interface{ Arrival() time.Time }).Arrival()
		time.Sleep(5 * time.Millisecond)
	}))
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var prev time.Time
	for i := range 2 {
		before := time.Now()
		res, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := <-arrivals
		if got.Before(before) || got.After(time.Now()) || !got.After(prev) {
			t.Fatalf("request %d: arrival %v, not between %v and now, after %v", i, got, before, prev)
		}
		prev = got.Add(5 * time.Millisecond) // the next request's head is read after this handler slept
	}
}

// TestServer_FlushesBeforeBlocking: a response must not wait in the
// buffer while the server waits for bytes the client only sends after
// reading it (here a stray CRLF after a body, as old browsers sent).
func TestServer_FlushesBeforeBlocking(t *testing.T) {
	_, addr := startServer(t, &recorder{})
	c, br := rawConn(t, addr)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n")
	res, body := readResponse(t, br, "POST")
	if res.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	io.WriteString(c, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	if res, _ := readResponse(t, br, "GET"); res.StatusCode != 200 {
		t.Fatalf("second request: %d", res.StatusCode)
	}
}

func TestServer_HeadHasNoBody(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body := readResponse(t, br, "HEAD")
	if res.StatusCode != 200 || body != "" || res.Header.Get("Content-Length") != "5" {
		t.Errorf("HEAD: %d %q %v", res.StatusCode, body, res.Header)
	}
	if res, body := readResponse(t, br, "GET"); body != "hello" {
		t.Errorf("GET after HEAD: %d %q", res.StatusCode, body)
	}
}

func TestServer_NoBodyStatuses(t *testing.T) {
	for _, code := range []int{http.StatusNoContent, http.StatusNotModified} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			werrc := make(chan error, 1)
			_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/next" {
					io.WriteString(w, "next")
					return
				}
				w.Header().Set("Transfer-Encoding", "chunked")
				w.WriteHeader(code)
				_, err := io.WriteString(w, "must not be sent")
				werrc <- err
			}))
			c, br := rawConn(t, addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			res, body := readResponse(t, br, "GET")
			if res.StatusCode != code || body != "" || res.Header.Get("Transfer-Encoding") != "" {
				t.Errorf("%d %q %v", res.StatusCode, body, res.Header)
			}
			if code == http.StatusNoContent && res.Header.Get("Content-Length") != "" {
				t.Errorf("204 with Content-Length")
			}
			if werr := <-werrc; !errors.Is(werr, http.ErrBodyNotAllowed) {
				t.Errorf("Write returned %v", werr)
			}
			if _, body := readResponse(t, br, "GET"); body != "next" {
				t.Errorf("next response %q", body)
			}
		})
	}
}

// TestServer_ResponseFraming checks how a response is delimited in each
// case a handler can create.
func TestServer_ResponseFraming(t *testing.T) {
	big := strings.Repeat("x", 3*pendingSize)
	cases := []struct {
		name    string
		proto   string
		handler func(w http.ResponseWriter)
		wantCL  int64
		wantTE  bool
		close   bool
		body    string
	}{
		{"small body gets a Content-Length", "HTTP/1.1", func(w http.ResponseWriter) { io.WriteString(w, "small") }, 5, false, false, "small"},
		{"large body is chunked", "HTTP/1.1", func(w http.ResponseWriter) { io.WriteString(w, big) }, -1, true, false, big},
		{"handler's Content-Length", "HTTP/1.1", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		}, int64(len(big)), false, false, big},
		{"flush commits to chunked", "HTTP/1.1", func(w http.ResponseWriter) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		}, -1, true, false, "ab"},
		{"empty body", "HTTP/1.1", func(w http.ResponseWriter) {}, 0, false, false, ""},
		{"HTTP/1.0 large body is delimited by close", "HTTP/1.0", func(w http.ResponseWriter) { io.WriteString(w, big) }, -1, false, true, big},
		{"handler asks to close", "HTTP/1.1", func(w http.ResponseWriter) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}, 3, false, true, "bye"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.handler(w) }))
			c, br := rawConn(t, addr)
			keep := ""
			if tc.proto == "HTTP/1.0" {
				keep = "Connection: keep-alive\r\n"
			}
			fmt.Fprintf(c, "GET / %s\r\nHost: a\r\n%s\r\n", tc.proto, keep)
			res, body := readResponse(t, br, "GET")
			if res.ContentLength != tc.wantCL || (len(res.TransferEncoding) > 0) != tc.wantTE || res.Close != tc.close || body != tc.body {
				t.Errorf("CL=%d TE=%v close=%v body %d bytes; want CL=%d TE=%v close=%v %d bytes",
					res.ContentLength, res.TransferEncoding, res.Close, len(body), tc.wantCL, tc.wantTE, tc.close, len(tc.body))
			}
		})
	}
}

func TestServer_ContentLengthMismatch(t *testing.T) {
	longErr := make(chan error, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "4")
		if r.URL.Path == "/long" {
			_, err := io.WriteString(w, "toolong")
			longErr <- err
			return
		}
		io.WriteString(w, "ab") // short
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /short HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Errorf("a short body must end with the connection closed (unexpected EOF)")
	}
	c2, br2 := rawConn(t, addr)
	io.WriteString(c2, "GET /long HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, err := http.ReadResponse(br2, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-longErr; !errors.Is(err, http.ErrContentLength) {
		t.Errorf("writing past Content-Length returned %v", err)
	}
}

func TestServer_StreamsResponseWithFlush(t *testing.T) {
	release := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second")
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first chunk before the handler finished: %q %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "second" {
		t.Errorf("rest %q", rest)
	}
}

func TestServer_Trailers(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "data")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "7")
	}))
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	if res.Trailer.Get("X-Sum") != "42" || res.Trailer.Get("X-Late") != "7" {
		t.Errorf("trailers %v", res.Trailer)
	}
}

func TestServer_InformationalResponses(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if h.Get("Link") == "" {
			t.Errorf("103 without its Link")
		}
		got = append(got, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+addr+"/", nil)
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(got) != 1 || got[0] != 103 || string(b) != "final" {
		t.Errorf("1xx %v, body %q", got, b)
	}
}

func TestServer_ContentTypeAndDate(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/own" {
			w.Header().Set("Date", "custom")
			w.Header().Set("Content-Type", "application/x-own")
		}
		io.WriteString(w, "<html><body>hi</body></html>")
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /sniff HTTP/1.1\r\nHost: a\r\n\r\nGET /own HTTP/1.1\r\nHost: a\r\n\r\n")
	res, _ := readResponse(t, br, "GET")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("sniffed %q", ct)
	}
	if _, err := http.ParseTime(res.Header.Get("Date")); err != nil {
		t.Errorf("Date %q: %v", res.Header.Get("Date"), err)
	}
	res, _ = readResponse(t, br, "GET")
	if res.Header.Get("Content-Type") != "application/x-own" || res.Header.Get("Date") != "custom" || len(res.Header["Date"]) != 1 {
		t.Errorf("handler's fields not kept: %v", res.Header)
	}
}

// TestServer_HandlerCannotSplitResponse: CR and LF in a value a handler
// sets must not start a new field or a new response.
func TestServer_HandlerCannotSplitResponse(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Evil"] = []string{"a\r\nSet-Cookie: x=1\r\n\r\nHTTP/1.1 200 OK"}
		w.Header()["Bad Name"] = []string{"v"}
		io.WriteString(w, "ok")
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if res.Header.Get("Set-Cookie") != "" || res.Header.Get("Bad Name") != "" || body != "ok" {
		t.Errorf("injected: %v %q", res.Header, body)
	}
}

func TestServer_LargeAndStreamedRequestBodies(t *testing.T) {
	payload := make([]byte, 3<<20)
	rand.Read(payload)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(payload)
		if chunked {
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < len(payload); i += 100 << 10 {
					pw.Write(payload[i:min(i+100<<10, len(payload))])
				}
				pw.Close()
			}()
			body = pr
		}
		res, err := client.Post("http://"+addr+"/", "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !bytes.Equal(got, payload) {
			t.Errorf("chunked=%v: echoed %d bytes, want %d identical", chunked, len(got), len(payload))
		}
	}
}

// TestServer_UnreadBody: a body the handler did not read is discarded to
// keep the connection when it is small, and closes it when it is large.
func TestServer_UnreadBody(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored") }))
	c, br := rawConn(t, addr)
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	res, _ := readResponse(t, br, "POST")
	if res.Close {
		t.Errorf("small unread body closed the connection")
	}
	if res, _ := readResponse(t, br, "GET"); res.StatusCode != 200 {
		t.Errorf("next request: %d", res.StatusCode)
	}
	c2, br2 := rawConn(t, addr)
	fmt.Fprintf(c2, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", 10<<20)
	res, _ = readResponse(t, br2, "POST")
	if !res.Close {
		t.Errorf("large unread body kept the connection")
	}
}

func TestServer_ExpectContinue(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Expect") == "" {
			t.Errorf("Expect field removed")
		}
		w.Write(b)
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q %v before sending the body", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "data")
	if _, body := readResponse(t, br, "PUT"); body != "data" {
		t.Errorf("body %q", body)
	}
}

// TestServer_ExpectContinueNotSentWhenRejected: a handler that answers
// without reading gets no 100 Continue sent, and the connection closes
// since the client may or may not send the body.
func TestServer_ExpectContinueNotSentWhenRejected(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "too big", http.StatusRequestEntityTooLarge)
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n")
	res, _ := readResponse(t, br, "PUT")
	if res.StatusCode != 413 || !res.Close {
		t.Errorf("%d close=%v", res.StatusCode, res.Close)
	}
}

func TestServer_PanicAnswers500AndCloses(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	res, _ := readResponse(t, br, "GET")
	if res.StatusCode != 500 || !res.Close {
		t.Errorf("%d close=%v", res.StatusCode, res.Close)
	}
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("the connection served a request after a panic")
	}
}

func TestServer_AbortHandlerClosesSilently(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 3*pendingSize))
		panic(http.ErrAbortHandler)
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Errorf("an aborted response must not look complete")
	}
}

func TestServer_BodyUnreadableAfterHandlerReturns(t *testing.T) {
	bodies := make(chan io.Reader, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			bodies <- r.Body
		}
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	readResponse(t, br, "POST")
	readResponse(t, br, "GET")
	if _, err := (<-bodies).Read(make([]byte, 10)); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("read after return: %v", err)
	}
}

func TestServer_RequestContext(t *testing.T) {
	type seen struct {
		remote, local string
		server        bool
	}
	got := make(chan seen, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		_, isServer := r.Context().Value(http.ServerContextKey).(*http.Server)
		got <- seen{r.RemoteAddr, fmt.Sprint(la), isServer}
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	readResponse(t, br, "GET")
	s := <-got
	if s.remote != c.LocalAddr().String() || s.local != addr || !s.server {
		t.Errorf("%+v", s)
	}
}

func TestServer_CloseCancelsRequestContext(t *testing.T) {
	started := make(chan struct{})
	done := make(chan error, 1)
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		done <- r.Context().Err()
	}))
	c, _ := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request context not cancelled by Close")
	}
}

func TestServer_HTTP2PrefaceWithoutFallbackIsRefused(t *testing.T) {
	_, addr := startServer(t, &recorder{})
	if got := exchange(t, addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); len(got) != 1 || got[0] != 505 {
		t.Errorf("statuses %v", got)
	}
}

// TestServer_UpgradeWithoutFallbackIsIgnored: without a fallback the
// upgrade offer is dropped and the request served as a plain one.
func TestServer_UpgradeWithoutFallbackIsIgnored(t *testing.T) {
	got := make(chan string, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Upgrade")
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
	if res, _ := readResponse(t, br, "GET"); res.StatusCode != 200 {
		t.Errorf("%d", res.StatusCode)
	}
	if u := <-got; u != "" {
		t.Errorf("handler saw Upgrade %q", u)
	}
}

func TestServer_MaxURIBytes(t *testing.T) {
	_, addr := startServer(t, &recorder{}, func(s *Server) { s.MaxURIBytes = 300 })
	if got := exchange(t, addr, "GET /"+strings.Repeat("a", 299)+" HTTP/1.1\r\nHost: a\r\n\r\n"); len(got) != 1 || got[0] != 200 {
		t.Errorf("at the limit: %v", got)
	}
	if got := exchange(t, addr, "GET /"+strings.Repeat("a", 300)+" HTTP/1.1\r\nHost: a\r\n\r\n"); len(got) != 1 || got[0] != 414 {
		t.Errorf("over the limit: %v", got)
	}
	// A request line still arriving is refused as soon as it is too long.
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /"+strings.Repeat("a", 2000))
	if got := readStatuses(t, br); len(got) != 1 || got[0] != 414 {
		t.Errorf("partial request line: %v", got)
	}
}

func TestServer_LargeHeadWithinLimit(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, rec, func(s *Server) { s.MaxHeaderBytes = 32 << 10 })
	big := strings.Repeat("t", 20<<10)
	raw := "GET /a HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + big + "\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
	if got := exchange(t, addr, raw); len(got) != 2 || got[0] != 200 || got[1] != 200 {
		t.Errorf("statuses %v", got)
	}
	raw = "GET /c HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + big + big + "\r\n\r\n"
	if got := exchange(t, addr, raw); len(got) != 1 || got[0] != 431 {
		t.Errorf("over the limit: %v", got)
	}
}

// TestServer_ConcurrentConnections runs many clients at once (for -race).
func TestServer_ConcurrentConnections(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				msg := fmt.Sprintf("%d-%d", i, j)
				res, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader(msg))
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
}

// PeerAddr gives the client's address, the same as RemoteAddr, without
// parsing it per request; outside an h1 server it reports false.
func TestServer_PeerAddr(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, ok := PeerAddr(r.Context())
		fmt.Fprintf(w, "%v %s %s", ok, ap, r.RemoteAddr)
	}))
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != "true" || f[1] != f[2] || !strings.HasPrefix(f[1], "127.0.0.1:") {
		t.Fatalf("handler saw %q", b)
	}
	if _, ok := PeerAddr(context.Background()); ok {
		t.Fatal("PeerAddr outside an h1 server reported an address")
	}
}

// SetHeader hands the response a header map of the handler's: the head
// is written from it, the connection's own map comes back for the next
// request (empty, and not the handed-over one), and once the head is
// written the map can no longer be replaced.
func TestResponse_SetHeader(t *testing.T) {
	type setter interface{ SetHeader(http.Header) bool }
	var handed http.Header
	var afterWrite, nilRefused bool
	var sawOnNext http.Header
	n := 0
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		s, ok := w.(setter)
		if !ok {
			t.Error("the ResponseWriter has no SetHeader")
			return
		}
		if n == 2 {
			sawOnNext = w.Header().Clone()
			io.WriteString(w, "second")
			return
		}
		w.Header().Set("X-Before", "dropped with the map it was in")
		nilRefused = !s.SetHeader(nil)
		handed = http.Header{"X-Handed": {"one", "two"}, "Content-Type": {"text/plain"}}
		if !s.SetHeader(handed) {
			t.Error("SetHeader before the head was refused")
		}
		w.Header().Set("X-After", "set through Header")
		w.WriteHeader(http.StatusAccepted)
		afterWrite = s.SetHeader(http.Header{"X-Late": {"no"}})
		io.WriteString(w, "first")
	}))
	conn, br := rawConn(t, addr)
	io.WriteString(conn, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if res.StatusCode != http.StatusAccepted || body != "first" {
		t.Fatalf("first: %d %q", res.StatusCode, body)
	}
	if got := res.Header.Values("X-Handed"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("X-Handed %q", got)
	}
	if res.Header.Get("X-After") == "" || res.Header.Get("X-Before") != "" || res.Header.Get("X-Late") != "" {
		t.Errorf("head %v: want X-After only of the three", res.Header)
	}
	if !nilRefused || afterWrite {
		t.Errorf("SetHeader(nil) refused: %v; after WriteHeader accepted: %v", nilRefused, afterWrite)
	}
	io.WriteString(conn, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
	if res, body := readResponse(t, br, "GET"); body != "second" || res.Header.Get("X-Handed") != "" {
		t.Fatalf("second: %q %v", body, res.Header)
	}
	if len(sawOnNext) != 0 {
		t.Errorf("the next request's header started with %v", sawOnNext)
	}
	if got := handed.Get("X-After"); got == "" {
		t.Errorf("the handed-over map lost what was set through Header: %v", handed)
	}
}

// TestServer_ReuseRequests: with ReuseRequests, a connection's requests
// are one *http.Request, URL and Header map, holding each time what that
// request sent and nothing of the one before (a field the handler set
// included); without it, each request is new.
func TestServer_ReuseRequests(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		t.Run(fmt.Sprintf("reuse=%v", reuse), func(t *testing.T) {
			type seen struct {
				req    *http.Request
				url    *url.URL
				header string
				target string
			}
			var mu sync.Mutex
			var got []seen
			_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				got = append(got, seen{r, r.URL, fmt.Sprint(r.Header), fmt.Sprintf("%s %q %q %v %q %q", r.Method, r.URL.Path, r.URL.RawQuery, r.URL.ForceQuery, r.Host, r.URL.Fragment)})
				mu.Unlock()
				r.Header.Set("X-Handler", "set") // must not reach the next request
				r.URL.Fragment = "handler"
			}), func(s *Server) { s.ReuseRequests = reuse })
			statuses := exchange(t, addr, "GET /a?q=1 HTTP/1.1\r\nHost: one\r\nX-A: 1\r\nX-B: 2\r\nX-B: 3\r\n\r\n"+
				"POST /b? HTTP/1.1\r\nHost: two\r\nX-C: 4\r\nContent-Length: 0\r\n\r\n"+
				"GET /c HTTP/1.1\r\nHost: three\r\n\r\n")
			if len(statuses) != 3 {
				t.Fatalf("statuses %v", statuses)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []seen{
				{header: "map[X-A:[1] X-B:[2 3]]", target: `GET "/a" "q=1" false "one" ""`},
				{header: "map[Content-Length:[0] X-C:[4]]", target: `POST "/b" "" true "two" ""`},
				{header: "map[]", target: `GET "/c" "" false "three" ""`},
			}
			for i, g := range got {
				if g.header != want[i].header || g.target != want[i].target {
					t.Errorf("request %d: header %s, %s; want %s, %s", i, g.header, g.target, want[i].header, want[i].target)
				}
				if i > 0 && ((g.req == got[0].req) != reuse || (g.url == got[0].url) != reuse) {
					t.Errorf("request %d: same request as the first %v, same URL %v; want %v", i, g.req == got[0].req, g.url == got[0].url, reuse)
				}
			}
		})
	}
}

// HeaderNames holds exactly the NameBits of the request's Header as the
// server built it, on one connection whose requests have different
// fields (ReuseRequests and not): a name whose bit is missing is not in
// the Header.
func TestServer_HeaderNames(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("reuse=%v", reuse), func(t *testing.T) {
			bad := make(chan string, 100)
			_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := w.(interface{ HeaderNames() uint64 }).HeaderNames()
				var want uint64
				for k := range r.Header {
					want |= NameBit(k)
				}
				if got != want {
					bad <- fmt.Sprintf("%v: HeaderNames %#x, want %#x", r.Header, got, want)
				}
			}), func(s *Server) { s.ReuseRequests = reuse })
			c, br := rawConn(t, addr)
			heads := []string{
				"X-A: 1\r\nAccept: */*\r\nX-Request-Id: abc\r\n",
				"",
				"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx-a: 2\r\nX-A: 3\r\n",
				"Content-Length: 0\r\nUser-Agent: t\r\n",
			}
			for _, fields := range heads {
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n"+fields+"\r\n"); err != nil {
					t.Fatal(err)
				}
				if res, _ := readResponse(t, br, "GET"); res.StatusCode != 200 {
					t.Fatal(res.Status)
				}
			}
			close(bad)
			for msg := range bad {
				t.Error(msg)
			}
		})
	}
}

// NameBit tells names apart by their length, first and last bytes.
func TestNameBit(t *testing.T) {
	if NameBit("X-A") != NameBit("X-A") || NameBit("X-A") == NameBit("X-B") || NameBit("X-A") == NameBit("X-AA") || NameBit("X-A") == NameBit("Y-A") {
		t.Error("names of different lengths, first or last bytes share a bit")
	}
	// The names a proxy looks up have bits apart from each other's and
	// from those of the fields clients send most: a lookup that the
	// bits let through then hits.
	looked := []string{"User-Agent", "Authorization", "X-Api-Key", "Te", "Connection", "Upgrade",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "Traceparent"}
	common := []string{"Accept", "Accept-Encoding", "Accept-Language", "Cookie", "Content-Type", "Content-Length",
		"Tracestate", "Forwarded", "Origin", "Referer", "Cache-Control", "Pragma", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-Dest", "Sec-Fetch-User", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "If-None-Match",
		"If-Modified-Since", "Priority", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Dnt",
		"Upgrade-Insecure-Requests", "X-Real-Ip", "Idempotency-Key"}
	owner := map[uint64]string{}
	for _, n := range looked {
		if o, ok := owner[NameBit(n)]; ok {
			t.Errorf("%s and %s share a bit", n, o)
		}
		owner[NameBit(n)] = n
	}
	for _, n := range common {
		if o, ok := owner[NameBit(n)]; ok {
			t.Errorf("%s shares the bit of %s, which is looked up", n, o)
		}
	}
}

// TestServer_SendsACompleteResponseAtOnce: a response whose last byte
// the handler has written (its Content-Length reached, or a status or
// length that allows no body) reaches the client while the handler is
// still running, so that what a handler does afterwards (the gateway's
// access line) does not delay the client.
func TestServer_SendsACompleteResponseAtOnce(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/write":
			h.Set("Content-Length", "5")
			w.Write([]byte("hel"))
			w.Write([]byte("lo"))
		case "/string":
			h.Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/untyped":
			h.Del("Content-Type") // committed at the first write, which sniffs it
			h.Set("Content-Length", "5")
			w.Write([]byte("hello"))
		case "/empty":
			h.Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
		case "/read-body":
			b, _ := io.ReadAll(r.Body) // read to its end: nothing more to read from the connection
			h.Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
		}
		<-release
	}))
	c, br := rawConn(t, addr)
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/write", "hello", 200},
		{"/string", "hello", 200},
		{"/untyped", "hello", 200},
		{"/empty", "", 200},
		{"/no-content", "", 204},
		{"/read-body", "hello", 200},
	} {
		if tc.path == "/read-body" {
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", tc.path)
		} else {
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", tc.path)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("%s: no response while the handler runs: %v", tc.path, err)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != tc.status || string(body) != tc.body {
			t.Fatalf("%s: %d %q %v", tc.path, res.StatusCode, body, err)
		}
		release <- struct{}{} // the handler returns; the connection serves the next
	}
}

// TestServer_ResponseAfterTheHandlerWhileTheBodyIsUnread: a complete
// response to a request whose body the handler left unread is sent when
// the handler returns, not before (the body must be drained first). A
// body another goroutine reads while the handler writes is answered too;
// under -race this checks that the response's checks of the body's state
// do not race with its reader.
func TestServer_ResponseAfterTheHandlerWhileTheBodyIsUnread(t *testing.T) {
	release := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := make(chan struct{})
		if r.URL.Path == "/reader" {
			go func() {
				defer close(done)
				io.ReadAll(r.Body)
			}()
		} else {
			close(done)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
		<-release
		<-done
	}))
	for _, path := range []string{"/unread", "/reader"} {
		c, br := rawConn(t, addr)
		if path == "/unread" {
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello", path)
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := br.ReadByte(); err == nil {
				t.Fatalf("%s: a response before the handler returned", path)
			} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("%s: %v", path, err)
			}
			io.WriteString(c, "world")
		} else {
			// The whole body at once: the reader gets to its end
			// without waiting for the client.
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld", path)
		}
		release <- struct{}{}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, body := readResponse(t, br, "POST")
		if res.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: %d %q", path, res.StatusCode, body)
		}
	}
}

// TestServer_PipelinedResponsesTogether: responses to requests that came
// together are written together, when the server next waits, even when
// each was complete before its handler returned.
func TestServer_PipelinedResponsesTogether(t *testing.T) {
	const n = 3
	req := strings.Repeat("GET / HTTP/1.1\r\nHost: a\r\n\r\n", n)
	c := &writeCounter{in: strings.NewReader(req)}
	ln := newOneConnListener(c)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	eventually(t, "the connection closed", c.isClosed)
	s.Close()
	<-done
	writes, out := c.result()
	if got := strings.Count(out, "HTTP/1.1 200 OK\r\n"); got != n {
		t.Fatalf("%d responses, want %d:\n%s", got, n, out)
	}
	if writes != 1 {
		t.Errorf("%d writes for %d pipelined responses, want 1", writes, n)
	}
}

// writeCounter is a connection that reads from in, then reports EOF, and
// counts the writes made to it.
type writeCounter struct {
	fakeBase
	in     io.Reader
	mu     sync.Mutex
	writes int
	out    bytes.Buffer
	closed bool
}

func (c *writeCounter) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *writeCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.out.Write(p)
}

func (c *writeCounter) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *writeCounter) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *writeCounter) result() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.out.String()
}

// TestServer_BodyReadElsewhereWhileWriting: a body read in another
// goroutine (as http.Transport writes a request body from its own) sends
// what the response buffered before it waits for the client and, to a
// client that expects it, 100 Continue at its first read unless the
// response has started; the handler writes the response meanwhile. Both
// use the connection's write buffer, which -race checks, and the
// response arrives whole.
func TestServer_BodyReadElsewhereWhileWriting(t *testing.T) {
	const lines, bodyLen = 40, 40
	line := func(i int) string { return fmt.Sprintf("line %03d\n", i) }
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := make(chan int64, 1)
		go func() {
			n, _ := io.Copy(io.Discard, r.Body)
			read <- n
		}()
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(lines*len(line(0))))
		for i := range lines {
			io.WriteString(w, line(i))
			if i%8 == 7 {
				w.(http.Flusher).Flush()
			}
			time.Sleep(time.Millisecond / 2)
		}
		if n := <-read; n != bodyLen {
			t.Errorf("the other goroutine read %d body bytes, want %d", n, bodyLen)
		}
	}))
	for _, expect := range []bool{false, true} {
		c, br := rawConn(t, addr)
		head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n", bodyLen)
		if expect {
			head += "Expect: 100-continue\r\n"
		}
		io.WriteString(c, head+"\r\n")
		sent := make(chan error, 1)
		go func() {
			// The body a byte at a time, so that the reader waits for
			// the client between them while the handler writes.
			for range bodyLen {
				if _, err := c.Write([]byte{'b'}); err != nil {
					sent <- err
					return
				}
				time.Sleep(time.Millisecond / 2)
			}
			sent <- nil
		}()
		res, body := readResponse(t, br, "POST")
		if res.StatusCode == http.StatusContinue {
			res, body = readResponse(t, br, "POST")
		}
		var want strings.Builder
		for i := range lines {
			want.WriteString(line(i))
		}
		if res.StatusCode != 200 || body != want.String() {
			t.Fatalf("expect %v: %d %q", expect, res.StatusCode, body)
		}
		if err := <-sent; err != nil {
			t.Fatalf("expect %v: sending the body: %v", expect, err)
		}
	}
}

// TestServer_BodyReaderOutlivesAnAbortedHandler: a goroutine still reading
// the body when the handler aborts gets an error once the connection
// closes, and reads none of the buffers the connection releases (-race
// checks it).
func TestServer_BodyReaderOutlivesAnAbortedHandler(t *testing.T) {
	readErr := make(chan error, 1)
	started := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() {
			buf := make([]byte, 4)
			var err error
			for err == nil {
				select {
				case <-started:
				default:
					close(started)
				}
				_, err = r.Body.Read(buf)
			}
			readErr <- err
		}()
		<-started
		panic(http.ErrAbortHandler)
	}))
	c, br := rawConn(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
	for range 20 {
		if _, err := io.WriteString(c, "bbbb"); err != nil {
			break // the server closed the connection
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-readErr:
		if err == nil || err == io.EOF {
			t.Fatalf("the body's read after the abort returned %v, want an error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the body's reader was not stopped")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a response to an aborted handler")
	}
}
