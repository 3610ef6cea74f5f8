package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startProxy runs the gateway's shape: h1.Server, httputil.ReverseProxy,
// h1.Transport, to backend.
func startProxy(t *testing.T, backend string) (string, *Transport) {
	target, _ := url.Parse(backend)
	tr := &Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}, Transport: tr}
	_, addr := startServer(t, proxy, func(s *Server) { s.Fallback = &http.Server{Handler: proxy} })
	return "http://" + addr, tr
}

// TestProxy_EndToEnd sends what a gateway forwards through the whole
// chain and compares what the client gets with what the backend sent.
func TestProxy_EndToEnd(t *testing.T) {
	big := make([]byte, 2<<20)
	rand.Read(big)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
			w.Header().Set("X-XFF", r.Header.Get("X-Forwarded-For"))
			w.Write(b)
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/stream":
			for i := range 3 {
				fmt.Fprintf(w, "event %d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(10 * time.Millisecond)
			}
		case "/trailer":
			w.Header().Set("Trailer", "X-Checksum")
			io.WriteString(w, "body")
			w.Header().Set("X-Checksum", "abc")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/hop":
			w.Header().Set("Connection", "X-Private")
			w.Header().Set("X-Private", "secret")
			w.Header().Set("Keep-Alive", "timeout=5")
			io.WriteString(w, "hop")
		default:
			http.NotFound(w, r)
		}
	}))
	defer backend.Close()
	proxyURL, _ := startProxy(t, backend.URL)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	t.Run("POST with Content-Length", func(t *testing.T) {
		res, err := client.Post(proxyURL+"/echo", "application/octet-stream", bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !bytes.Equal(got, big) || res.Header.Get("X-XFF") != "127.0.0.1" {
			t.Errorf("echoed %d bytes, XFF %q", len(got), res.Header.Get("X-XFF"))
		}
	})
	t.Run("POST chunked", func(t *testing.T) {
		res, err := client.Post(proxyURL+"/echo", "text/plain", io.MultiReader(strings.NewReader("a"), strings.NewReader("b")))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(got) != "ab" || res.Header.Get("X-TE") != "chunked" {
			t.Errorf("%q TE=%q", got, res.Header.Get("X-TE"))
		}
	})
	t.Run("large response", func(t *testing.T) {
		res, err := client.Get(proxyURL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !bytes.Equal(got, big) || res.ContentLength != int64(len(big)) {
			t.Errorf("%d bytes, CL %d", len(got), res.ContentLength)
		}
	})
	t.Run("streamed response arrives as it is sent", func(t *testing.T) {
		res, err := client.Get(proxyURL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		for i := range 3 {
			line, err := br.ReadString('\n')
			if err != nil || line != "event "+strconv.Itoa(i)+"\n" {
				t.Fatalf("%q %v", line, err)
			}
		}
	})
	t.Run("trailers", func(t *testing.T) {
		res, err := client.Get(proxyURL + "/trailer")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(res.Body)
		res.Body.Close()
		if res.Trailer.Get("X-Checksum") != "abc" {
			t.Errorf("trailer %v", res.Trailer)
		}
	})
	t.Run("204", func(t *testing.T) {
		res, err := client.Get(proxyURL + "/nocontent")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 204 {
			t.Errorf("%d", res.StatusCode)
		}
	})
	t.Run("hop-by-hop fields do not cross", func(t *testing.T) {
		res, err := client.Get(proxyURL + "/hop")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(res.Body)
		res.Body.Close()
		if res.Header.Get("X-Private") != "" || res.Header.Get("Keep-Alive") != "" {
			t.Errorf("%v", res.Header)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		res, err := client.Head(proxyURL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.ContentLength != int64(len(big)) {
			t.Errorf("CL %d", res.ContentLength)
		}
	})
}

// TestProxy_BackendDownIs502 checks that a transport failure reaches the
// client as an error response, and that the connection stays usable.
func TestProxy_BackendDownIs502(t *testing.T) {
	backend := httptest.NewServer(http.NotFoundHandler())
	backend.Close()
	proxyURL, _ := startProxy(t, backend.URL)
	for range 2 {
		res, err := http.Get(proxyURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("%d", res.StatusCode)
		}
	}
}

// TestProxy_BackendCutsBodyAbortsClientResponse: a body the backend cuts
// off must not reach the client as a complete response.
func TestProxy_BackendCutsBodyAbortsClientResponse(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		readRequestHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	})
	proxyURL, _ := startProxy(t, url)
	res, err := http.Get(proxyURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, err := io.ReadAll(res.Body); err == nil {
		t.Errorf("client got a complete response %q", b)
	}
}

// TestProxy_ServerCloseCancelsUpstreamWait: a handler waiting on an
// upstream round trip under its request's context is released when the
// server connection closes, whether the context is the connection's own
// (watched without registering in it) or derived from it.
func TestProxy_ServerCloseCancelsUpstreamWait(t *testing.T) {
	for _, derived := range []bool{false, true} {
		t.Run(fmt.Sprint("derived ", derived), func(t *testing.T) {
			silent := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
				readRequestHead(br)
				time.Sleep(3 * time.Second)
			})
			tr := &Transport{}
			defer tr.CloseIdleConnections()
			errc := make(chan error, 1)
			started := make(chan struct{})
			srv, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				if derived {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", silent+"/", nil)
				close(started)
				_, err := tr.RoundTrip(req)
				errc <- err
			}))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			<-started
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			srv.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("round trip ended with %v, want context.Canceled", err)
				}
				if d := time.Since(start); d > time.Second {
					t.Fatalf("released %s after Close", d)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the upstream wait outlived the server connection")
			}
		})
	}
}
