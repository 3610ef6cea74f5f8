package h1

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoUpgrade is a handler that accepts a WebSocket-style upgrade by
// hijacking the connection and echoes lines back.
func echoUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "websocket" {
		http.Error(w, "upgrade required", http.StatusUpgradeRequired)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Served-By: %s\r\n\r\n", r.Header.Get("X-Hop"))
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString("echo " + line)
		brw.Flush()
	}
}

// TestServer_FallbackServesWebSocketUpgrade: requests before the upgrade
// are served by the fast path; the upgrade request, with the bytes read
// already, goes to the fallback server, which owns the connection from
// then on.
func TestServer_FallbackServesWebSocketUpgrade(t *testing.T) {
	fast := &recorder{}
	var mu sync.Mutex
	var fallbackSaw []string
	fb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fallbackSaw = append(fallbackSaw, r.Method+" "+r.RequestURI)
		mu.Unlock()
		echoUpgrade(w, r)
	})}
	_, addr := startServer(t, fast, func(s *Server) { s.Fallback = fb })
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /before-1 HTTP/1.1\r\nHost: a\r\n\r\nGET /before-2 HTTP/1.1\r\nHost: a\r\n\r\n")
	readResponse(t, br, "GET")
	readResponse(t, br, "GET")
	// The upgrade request and the first frame arrive together: the
	// fallback must get both.
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Errorf("first frame: %q", line)
	}
	io.WriteString(c, "again\n")
	if line, _ := br.ReadString('\n'); line != "echo again\n" {
		t.Errorf("second frame: %q", line)
	}
	if got := strings.Join(fast.requests(), ","); got != "GET /before-1,GET /before-2" {
		t.Errorf("fast path served %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(fallbackSaw, ",") != "GET /ws" {
		t.Errorf("fallback served %q", fallbackSaw)
	}
}

// TestServer_FallbackKeepsTheConnection: a WebSocket offer the fallback
// declines is served by it as a plain request, and so is everything after
// it on that connection (here chunked POSTs): from the handoff on, the
// connection is net/http's. An offer to upgrade to anything else is not
// handed over: h1 drops it and serves the request, and the connection
// stays with h1's parser.
func TestServer_FallbackKeepsTheConnection(t *testing.T) {
	fast := &recorder{}
	fallback := &recorder{}
	_, addr := startServer(t, fast, func(s *Server) { s.Fallback = &http.Server{Handler: fallback} })
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n")
	readResponse(t, br, "GET")
	io.WriteString(c, "POST /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
	if res, body := readResponse(t, br, "POST"); res.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	io.WriteString(c, "POST /offer HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if res, body := readResponse(t, br, "POST"); res.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	io.WriteString(c, "POST /after HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")
	if res, _ := readResponse(t, br, "POST"); res.StatusCode != 200 {
		t.Fatalf("%d", res.StatusCode)
	}
	if got := strings.Join(fast.requests(), ","); got != "GET /before,POST /h2c x" {
		t.Errorf("fast path served %q", got)
	}
	if got := strings.Join(fallback.requests(), ","); got != "POST /offer abc,POST /after def" {
		t.Errorf("fallback served %q", got)
	}
}

// TestServer_WebSocketThroughProxy runs the gateway's shape end to end:
// h1.Server with ReverseProxy over h1.Transport on the fast path and the
// same handler on the fallback, to a backend that upgrades.
func TestServer_WebSocketThroughProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(echoUpgrade))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("X-Hop", "proxy")
		},
		Transport: tr,
	}
	_, addr := startServer(t, proxy, func(s *Server) { s.Fallback = &http.Server{Handler: proxy} })
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
	if res, _ := readResponse(t, br, "GET"); res.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain request: %d", res.StatusCode)
	}
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("X-Served-By") != "proxy" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
	for _, msg := range []string{"one", "two"} {
		io.WriteString(c, msg+"\n")
		if line, _ := br.ReadString('\n'); line != "echo "+msg+"\n" {
			t.Errorf("got %q", line)
		}
	}
}

// TestServer_FallbackServesHTTP2PriorKnowledge: the HTTP/2 preface goes
// to the fallback, which speaks h2c.
func TestServer_FallbackServesHTTP2PriorKnowledge(t *testing.T) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	fb := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
	})}
	_, addr := startServer(t, &recorder{}, func(s *Server) { s.Fallback = fb })
	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &cp}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "HTTP/2.0 /h2" {
		t.Errorf("got %q", b)
	}
}

func TestServer_ShutdownStopsFallback(t *testing.T) {
	fbDone := make(chan struct{})
	fb := &http.Server{Handler: http.HandlerFunc(echoUpgrade)}
	fb.RegisterOnShutdown(func() { close(fbDone) })
	s, addr := startServer(t, &recorder{}, func(s *Server) { s.Fallback = fb })
	c, br := rawConn(t, addr)
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != 101 {
		t.Fatalf("%v %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fbDone: // net/http runs shutdown hooks on their own goroutines
	case <-time.After(5 * time.Second):
		t.Error("fallback not shut down")
	}
}
