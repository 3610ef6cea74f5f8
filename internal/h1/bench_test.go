package h1

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmarks compare, in one run, h1 with the net/http machinery it
// replaces. Run them with one CPU, as the gateway is measured:
//
//	go test -run '^$' -bench . -benchmem -cpu 1 ./internal/h1/

var (
	benchRequest = []byte("GET /bench/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n" +
		"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\r\nX-Request-Id: 0123456789abcdef\r\n\r\n")
	benchBody     = `{"ok":true,"from":"bench-backend"}` + "\n"
	benchResponse = []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(benchBody)) +
		"\r\nContent-Type: application/json\r\nDate: Wed, 25 Nov 2026 19:08:42 GMT\r\n\r\n" + benchBody)
)

func BenchmarkParseRequestHead(b *testing.B) {
	var h requestHead
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if err := parseRequestHead(benchRequest, &h, DefaultMaxURIBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequestHead_NetHTTP is the baseline: net/http's parser
// (http.ReadRequest), which also builds the *http.Request.
func BenchmarkParseRequestHead_NetHTTP(b *testing.B) {
	r := &loopReader{data: benchRequest}
	br := bufio.NewReader(r)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildRequest is parsing plus building the *http.Request the
// handler receives, comparable with http.ReadRequest.
func BenchmarkBuildRequest(b *testing.B) {
	var h requestHead
	buf := make([]byte, len(benchRequest))
	tmpl := (&http.Request{RemoteAddr: "127.0.0.1:40000"}).WithContext(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, benchRequest)
		if err := parseRequestHead(buf, &h, DefaultMaxURIBytes); err != nil {
			b.Fatal(err)
		}
		if _, _, err := buildRequest(tmpl, buf, &h, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponseHead(b *testing.B) {
	var h responseHead
	head := benchResponse[:len(benchResponse)-len(benchBody)]
	b.ReportAllocs()
	for b.Loop() {
		if err := parseResponseHead(head, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponseHead_NetHTTP(b *testing.B) {
	r := &loopReader{data: benchResponse}
	br := bufio.NewReader(r)
	b.ReportAllocs()
	for b.Loop() {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
	}
}

// loopReader returns data over and over.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// BenchmarkServer is a full server round trip over an in-memory
// connection (no kernel): read and parse the request, call a handler
// writing a small response, write the response.
func BenchmarkServer(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(benchBody))}
		io.WriteString(w, benchBody)
	})
	b.Run("h1", func(b *testing.B) { benchServe(b, h1Serve(handler)) })
	b.Run("nethttp", func(b *testing.B) { benchServe(b, netHTTPServe(handler)) })
}

// BenchmarkProxy is a full proxy round trip over in-memory connections:
// server, handler, upstream transport and a canned upstream response.
func BenchmarkProxy(b *testing.B) {
	target := &url.URL{Scheme: "http", Host: "backend:8080"}
	h1t := func() *Transport {
		return &Transport{DialContext: upstreamDialer(benchResponse), ResponseHeaderTimeout: 30 * time.Second}
	}
	stdt := func() *http.Transport {
		return &http.Transport{DialContext: upstreamDialer(benchResponse), MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 30 * time.Second}
	}
	b.Run("nethttp+ReverseProxy+http.Transport", func(b *testing.B) {
		benchServe(b, netHTTPServe(benchReverseProxy(target, stdt())))
	})
	b.Run("h1+ReverseProxy+h1.Transport", func(b *testing.B) {
		benchServe(b, h1Serve(benchReverseProxy(target, h1t())))
	})
	b.Run("h1+direct+h1.Transport", func(b *testing.B) {
		benchServe(b, h1Serve(&benchDirect{host: target.Host, rt: h1t()}))
	})
}

type serveFunc func(ln net.Listener) (shutdown func())

func h1Serve(h http.Handler) serveFunc {
	return func(ln net.Listener) func() {
		s := &Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		go s.Serve(ln)
		return func() { s.Close() }
	}
}

func netHTTPServe(h http.Handler) serveFunc {
	return func(ln net.Listener) func() {
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		go s.Serve(ln)
		return func() { s.Close() }
	}
}

// benchServe sends b.N requests on one connection, each after the
// previous response.
func benchServe(b *testing.B, serve serveFunc) {
	b.ReportAllocs()
	c := newClientConn(benchRequest, b.N)
	ln := newOneConnListener(c)
	b.ResetTimer()
	stop := serve(ln)
	<-c.closed
	b.StopTimer()
	ln.Close()
	stop()
}

type benchBufferPool struct{ p sync.Pool }

func (bp *benchBufferPool) Get() []byte {
	if v, ok := bp.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (bp *benchBufferPool) Put(buf []byte) { bp.p.Put(&buf) }

func benchReverseProxy(target *url.URL, rt http.RoundTripper) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  rt,
		BufferPool: &benchBufferPool{},
		ErrorLog:   log.New(io.Discard, "", 0), // requests cut off when a benchmark ends
	}
}

// benchDirect is a minimal correct proxy handler without ReverseProxy.
type benchDirect struct {
	host string
	rt   http.RoundTripper
	bufs benchBufferPool
}

var benchHop = map[string]bool{"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Connection": true, "Proxy-Authorization": true}

func (p *benchDirect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := make(http.Header, len(r.Header)+1)
	for k, v := range r.Header {
		if !benchHop[k] {
			hdr[k] = v
		}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		hdr["X-Forwarded-For"] = []string{ip}
	}
	out := (&http.Request{
		Method: r.Method, URL: &url.URL{Scheme: "http", Host: p.host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Header: hdr, Host: r.Host, ProtoMajor: 1, ProtoMinor: 1,
	}).WithContext(r.Context())
	if r.ContentLength != 0 {
		out.Body, out.ContentLength = r.Body, r.ContentLength
	}
	res, err := p.rt.RoundTrip(out)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	wh := w.Header()
	for k, v := range res.Header {
		if !benchHop[k] {
			wh[k] = v
		}
	}
	w.WriteHeader(res.StatusCode)
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	if _, err := io.CopyBuffer(w, res.Body, buf); err != nil {
		panic(http.ErrAbortHandler)
	}
}
