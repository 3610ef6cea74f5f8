package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
)

// The gateway's defaults, so that every configuration pays for the same
// deadlines and limits.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	dialTimeout       = 5 * time.Second
	responseTimeout   = 30 * time.Second
	maxIdlePerHost    = 256
)

// serveMain runs one proxy configuration until SIGTERM.
func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	mode := fs.String("mode", "h1-rp", "configuration")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	backend := fs.String("backend", "", "backend host:port")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run here")
	fs.Parse(args)
	if *backend == "" {
		return errors.New("-backend is required")
	}
	target := &url.URL{Scheme: "http", Host: *backend}

	h1t := &h1.Transport{DialTimeout: dialTimeout, ResponseHeaderTimeout: responseTimeout, MaxIdleConnsPerHost: maxIdlePerHost}
	stdt := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
	}
	var handler http.Handler
	useH1 := true
	switch *mode {
	case "nethttp":
		handler, useH1 = reverseProxy(target, stdt), false
	case "nethttp-h1t":
		handler, useH1 = reverseProxy(target, h1t), false
	case "h1-rp":
		handler = reverseProxy(target, h1t)
	case "h1-httpt":
		handler = reverseProxy(target, stdt)
	case "h1-direct":
		handler = &directProxy{backend: *backend, rt: h1t}
	case "pump":
		return pump(*addr, *backend)
	case "epoll-pump":
		return epollPump(*addr, *backend)
	case "raw-pump":
		return rawPump(*addr, *backend)
	default:
		return fmt.Errorf("unknown mode %q", *mode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var shutdown func(context.Context) error
	errc := make(chan error, 1)
	if useH1 {
		s := &h1.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
		go func() { errc <- s.Serve(ln) }()
		shutdown = s.Shutdown
	} else {
		s := &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
		go func() { errc <- s.Serve(ln) }()
		shutdown = s.Shutdown
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = shutdown(ctx)
	return nil
}

func reverseProxy(target *url.URL, rt http.RoundTripper) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport:  rt,
		BufferPool: &bufferPool{},
	}
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// directProxy is the least a correct proxy does, without ReverseProxy:
// it forwards the request without its hop-by-hop fields, adds
// X-Forwarded-For, and copies the response back the same way.
type directProxy struct {
	backend string
	rt      http.RoundTripper
	bufs    bufferPool
}

// hopByHop are removed in both directions (RFC 9110 §7.6.1), with the
// fields that Connection names.
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func copyHeader(dst, src http.Header) {
	named := src["Connection"]
	for k, vs := range src {
		if hopByHop[k] || len(named) > 0 && listed(named, k) {
			continue
		}
		dst[k] = vs
	}
}

func listed(conn []string, k string) bool {
	for _, v := range conn {
		for len(v) > 0 {
			var tok string
			tok, v, _ = cut(v, ',')
			if http.CanonicalHeaderKey(trim(tok)) == k {
				return true
			}
		}
	}
	return false
}

func cut(s string, c byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trim(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func (p *directProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := make(http.Header, len(r.Header)+1)
	copyHeader(hdr, r.Header)
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		hdr["X-Forwarded-For"] = []string{ip}
	}
	out := (&http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: "http", Host: p.backend, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Host:          r.Host,
	}).WithContext(r.Context())
	if r.ContentLength == 0 {
		out.Body = nil
	}
	res, err := p.rt.RoundTrip(out)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	copyHeader(w.Header(), res.Header)
	w.WriteHeader(res.StatusCode)
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	if _, err := io.CopyBuffer(w, res.Body, buf); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// pump is a TCP byte pump that dials the backend for each client
// connection and copies bytes both ways without looking at them.
func pump(addr, backend string) error {
	return servePairs(addr, backend, func(c, up net.Conn) {
		go func() {
			io.Copy(up, c)
			up.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(c, up)
	})
}

// servePairs accepts connections on addr until SIGTERM or SIGINT and
// serves each on a goroutine of its own with pair, given the client
// connection and a new connection to backend; both are closed when pair
// returns.
func servePairs(addr, backend string, pair func(c, up net.Conn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", backend)
			if err != nil {
				return
			}
			defer up.Close()
			pair(c, up)
		}()
	}
}
