package securitytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// Gateway is a whole gateway process (package server) running in the
// test's process, with its listeners on 127.0.0.1.
type Gateway struct {
	Server *server.Server
	// Addr is the plain HTTP listener ("public"); TLSAddr the HTTPS one
	// ("tls"), when the configuration has it.
	Addr, TLSAddr string
	// Logs receives the process log, AccessLog the access log (JSON).
	Logs, AccessLog *Buffer

	cancel context.CancelFunc
	done   chan struct{}
	err    error

	cfgMu sync.Mutex
	cfg   string
}

// SetConfig replaces the configuration the gateway loads on its next
// reload (Server.Reload).
func (g *Gateway) SetConfig(cfg string) {
	g.cfgMu.Lock()
	g.cfg = cfg
	g.cfgMu.Unlock()
}

func (g *Gateway) config() []byte {
	g.cfgMu.Lock()
	defer g.cfgMu.Unlock()
	return []byte(g.cfg)
}

// Buffer is a goroutine-safe bytes.Buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Reset empties the buffer.
func (s *Buffer) Reset() {
	s.mu.Lock()
	s.b.Reset()
	s.mu.Unlock()
}

// StartGateway parses cfg, starts a gateway with it and stops it when the
// test ends. Listener addresses in cfg should be 127.0.0.1:0; the
// listener named "tls", if any, is the TLS one.
func StartGateway(t testing.TB, cfg string) *Gateway {
	t.Helper()
	g := &Gateway{Logs: &Buffer{}, AccessLog: &Buffer{}, done: make(chan struct{}), cfg: cfg}
	logger := slog.New(slog.NewJSONHandler(g.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	access := slog.New(slog.NewJSONHandler(g.AccessLog, nil))
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	srv, err := server.New(ctx, server.Options{
		Load:           func() (*config.Document, config.Diagnostics) { return config.Parse("security.yaml", g.config()) },
		Logger:         logger,
		AccessLogger:   access,
		StartupTimeout: 5 * time.Second,
		DataDir:        t.TempDir(),
	})
	if err != nil {
		cancel()
		t.Fatalf("gateway config: %v", err)
	}
	if err := srv.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	g.Server = srv
	g.Addr = srv.Addr("public").String()
	if a := srv.Addr("tls"); a != nil {
		g.TLSAddr = a.String()
	}
	go func() {
		g.err = srv.Serve(ctx)
		close(g.done)
	}()
	t.Cleanup(g.Stop)
	return g
}

// Stop drains and stops the gateway; it is safe to call twice.
func (g *Gateway) Stop() {
	g.cancel()
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
	}
}

// AccessEntry is one access-log line.
type AccessEntry struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	Status   int    `json:"status"`
	API      string `json:"api"`
	Upstream string `json:"upstream"`
	Denial   string `json:"denial"`
	Subject  string `json:"subject"`
}

// Forwarded reports whether the gateway sent the request to a backend.
func (a AccessEntry) Forwarded() bool { return a.Upstream != "" }

// Access returns the access-log lines written so far.
func (g *Gateway) Access() []AccessEntry {
	var out []AccessEntry
	for _, line := range strings.Split(g.AccessLog.String(), "\n") {
		if line == "" {
			continue
		}
		var e AccessEntry
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// SelfSignedCert writes a certificate for 127.0.0.1 and localhost and its
// key to dir, and returns their paths and the certificate pool that trusts
// it.
func SelfSignedCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gatehouse-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TLSClientConfig trusts pool and offers the given ALPN protocols.
func TLSClientConfig(pool *x509.CertPool, protos ...string) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: protos, MinVersion: tls.VersionTLS12}
}
