package upstream

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
)

// TransportOptions configure the HTTP transport of one backend.
type TransportOptions struct {
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// ResponseIdleTimeout bounds the time between two reads of a response
	// body (h1.Transport's ResponseIdleTimeout); zero means no limit.
	ResponseIdleTimeout time.Duration
	MaxIdleConnsPerHost int
	// RootCAs verifies backend certificates; nil means the system roots.
	RootCAs *x509.CertPool
	// CAPEM is the PEM the pool came from; it is part of the identity of
	// the transport, so that a changed CA makes a new one.
	CAPEM      []byte
	ServerName string
	// ClientCert, when set, is presented to backends that ask for one.
	ClientCert *ClientCert
}

func (o TransportOptions) key(backend string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%d\x00%s\x00", backend, o.DialTimeout, o.ResponseHeaderTimeout, o.ResponseIdleTimeout, o.MaxIdleConnsPerHost, o.ServerName)
	h.Write(o.CAPEM)
	if o.ClientCert != nil {
		fmt.Fprintf(h, "\x00cert\x00%s", o.ClientCert.ID())
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Transports is a registry of backend transports that outlives
// configuration snapshots: a reload that does not change a backend's
// transport settings keeps its transport and its idle connections.
type Transports struct {
	mu sync.Mutex
	m  map[string]*Transport
}

// NewTransports returns an empty registry.
func NewTransports() *Transports {
	return &Transports{m: map[string]*Transport{}}
}

// Transport carries requests to one backend's instances: plain http://
// instances over h1.Transport (synchronous, pooled, strict), https://
// ones (TLS, HTTP/2) over net/http's. It is a proxy's transport: the
// Header of a final response other than 101 Switching Protocols never
// holds a hop-by-hop field (Connection, Keep-Alive, Proxy-Connection,
// Proxy-Authenticate, Proxy-Authorization, Te, Trailer,
// Transfer-Encoding, Upgrade) or a field its Connection named; the h1
// transport drops them while it reads the head (h1's StripHopByHop).
type Transport struct {
	plain  *h1.Transport
	secure *http.Transport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		return t.plain.RoundTrip(req)
	}
	// net/http writes only Header: the h1.Fields go into a copy of it.
	req = h1.WithFieldsSet(req)
	if in, ok := req.Context().Value(h1.InformationalKey).(h1.Informational); ok {
		// net/http takes 1xx responses through httptrace only.
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{Got1xxResponse: in.Got1xxResponse}))
	}
	var idle *idleBody
	if d := t.plain.ResponseIdleTimeout; d > 0 {
		// net/http bounds no wait within a body: the request's own
		// context, cancelled by a timer that runs while a body read waits.
		ctx, cancel := context.WithCancel(req.Context())
		req = req.WithContext(ctx)
		idle = &idleBody{cancel: cancel, d: d}
	}
	res, err := t.secure.RoundTrip(req)
	if err != nil {
		if idle != nil {
			idle.cancel()
		}
		return res, err
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		h1.RemoveHopByHop(res.Header)
		if idle != nil {
			idle.body = res.Body
			res.Body = idle
		}
	}
	return res, err
}

// idleBody is a response body whose reads may wait at most d each: a
// read that waits longer cancels the round trip's context and fails with
// h1.ErrResponseIdle. Once the body is closed, the context is cancelled
// (what net/http expects of a request whose response is done with).
type idleBody struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	d      time.Duration
	timer  *time.Timer
	fired  atomic.Bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.timer == nil {
		b.timer = time.AfterFunc(b.d, b.expire)
	} else {
		b.timer.Reset(b.d)
	}
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && b.fired.Load() {
		err = h1.ErrResponseIdle
	}
	return n, err
}

func (b *idleBody) expire() {
	b.fired.Store(true)
	b.cancel()
}

func (b *idleBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.body.Close()
	b.cancel()
	return err
}

// RoundTripHeadDeadline implements HeadDeadliner for http:// instances.
func (t *Transport) RoundTripHeadDeadline(req *http.Request, now, deadline time.Time) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		return t.plain.RoundTripHeadDeadline(req, now, deadline)
	}
	return nil, ErrNoHeadDeadline
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *Transport) CloseIdleConnections() {
	t.plain.CloseIdleConnections()
	t.secure.CloseIdleConnections()
}

// Get returns the transport for backend with options o, creating it if
// needed, and its registry key.
func (t *Transports) Get(backend string, o TransportOptions) (*Transport, string) {
	k := o.key(backend)
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.m[k]; ok {
		return tr, k
	}
	tr := newTransport(o)
	t.m[k] = tr
	return tr, k
}

// Retain closes the idle connections of, and forgets, every transport
// whose key is not in keep. In-flight requests on them finish normally.
func (t *Transports) Retain(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tr := range t.m {
		if !keep[k] {
			tr.CloseIdleConnections()
			delete(t.m, k)
		}
	}
}

// Close closes every idle connection.
func (t *Transports) Close() {
	t.Retain(nil)
}

func newTransport(o TransportOptions) *Transport {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	plain := &h1.Transport{
		DialContext:           dialer.DialContext,
		DialTimeout:           o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ResponseIdleTimeout:   o.ResponseIdleTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		StripHopByHop:         true,
	}
	tr := &http.Transport{
		// Never the environment's proxy: backends are addressed directly.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0, // no global cap; per-host cap below
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		ForceAttemptHTTP2:     true,
		// The client's request as it came: no Accept-Encoding of the
		// transport's own, whose gzip it would then decode behind the
		// client's back (a no-transform response changed, its strong
		// ETag left on another representation).
		DisableCompression: true,
		TLSClientConfig: &tls.Config{
			RootCAs:    o.RootCAs,
			ServerName: o.ServerName,
			MinVersion: tls.VersionTLS12,
		},
	}
	if o.ClientCert != nil {
		tr.TLSClientConfig.GetClientCertificate = o.ClientCert.GetClientCertificate
	}
	return &Transport{plain: plain, secure: tr}
}
