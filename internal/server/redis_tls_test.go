package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// tlsRedis runs a redis-server of its own that speaks only TLS and
// requires a client certificate, stopped (by its PID) when the test ends.
type tlsRedis struct {
	addr                          string
	caFile, clientCert, clientKey string
	stop                          func()
}

func startTLSRedis(t *testing.T) *tlsRedis {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "redis test CA")
	r := &tlsRedis{caFile: ca.WriteFile(t, dir, "ca")}
	r.clientCert, r.clientKey = ca.Client(t, "gatehouse").WriteFiles(t, dir, "client")
	r.addr = "127.0.0.1:" + freePort(t)
	r.start(t, ca, dir)
	return r
}

// start runs redis-server on r.addr with a server certificate of ca,
// requiring client certificates of ca alone, and waits until a handshake
// with r's client certificate (of ca) completes.
func (r *tlsRedis) start(t *testing.T, ca *testpki.CA, dir string) {
	t.Helper()
	if os.Getenv("GATEHOUSE_TEST_REDIS_URL") == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the Redis tests run where a Redis is installed (this one starts a redis-server of its own, with TLS)")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: the TLS test starts one of its own")
	}
	srvCert, srvKey := ca.Server(t, "127.0.0.1", "redis.test").WriteFiles(t, dir, "server")
	caFile := ca.WriteFile(t, dir, "server-ca")
	_, port, _ := net.SplitHostPort(r.addr)
	r.stop = startProcess(t, bin, "--port", "0", "--bind", "127.0.0.1", "--tls-port", port,
		"--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", dir)
	cert, err := tls.LoadX509KeyPair(r.clientCert, r.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "redis-server with TLS to answer", func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", r.addr,
			&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func redisTLSConfig(t *testing.T, r *tlsRedis, tlsBlock string) string {
	t.Helper()
	return rateLimitedConfig(t, fmt.Sprintf("  redis:\n    url: rediss://%s/0\n%s", r.addr, tlsBlock), 3, "ip")
}

// A Redis behind TLS with a private CA and client certificates: the
// gateway verifies it with storage.redis.tls.ca_file, presents its
// certificate, and keeps its rate limits there; without the CA, or
// without the certificate, it refuses to start and says why.
func TestRedisTLS_PrivateCAAndClientCertificate(t *testing.T) {
	r := startTLSRedis(t)
	file := redisTLSConfig(t, r, fmt.Sprintf("    tls:\n      ca_file: %q\n      client_cert_file: %q\n      client_key_file: %q",
		r.caFile, r.clientCert, r.clientKey))
	g := serve(t, file, t.TempDir(), slog.New(slog.DiscardHandler))
	var codes []int
	for range 4 {
		codes = append(codes, status(t, g.url+"/x"))
	}
	if fmt.Sprint(codes) != "[200 200 200 429]" {
		t.Fatalf("through the TLS Redis: %v, want the limit of 3 then 429", codes)
	}

	for name, c := range map[string]struct{ block, want string }{
		"no CA":          {fmt.Sprintf("    tls:\n      client_cert_file: %q\n      client_key_file: %q", r.clientCert, r.clientKey), "certificate signed by unknown authority"},
		"no certificate": {fmt.Sprintf("    tls:\n      ca_file: %q", r.caFile), "storage.redis: connecting to Redis at " + r.addr},
		"wrong name":     {fmt.Sprintf("    tls:\n      ca_file: %q\n      server_name: cache.example\n      client_cert_file: %q\n      client_key_file: %q", r.caFile, r.clientCert, r.clientKey), "cache.example"},
	} {
		t.Run(name, func(t *testing.T) {
			file := redisTLSConfig(t, r, c.block)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			srv, err := server.New(ctx, server.Options{
				Load:       func() (*config.Document, config.Diagnostics) { return config.Load(file) },
				ConfigFile: file, Logger: slog.New(slog.DiscardHandler), DataDir: t.TempDir(),
			})
			if err == nil {
				srv.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// The CA bundle and the client certificate are read again when they
// change: after Redis comes back with certificates of a new CA, requiring
// client certificates of that CA alone, the gateway's new connections
// verify it with the new bundle and present the new certificate, with no
// restart. A bundle that does not load meanwhile leaves the one in use.
func TestRedisTLS_RotatedFilesReachNewConnections(t *testing.T) {
	dir := t.TempDir()
	r := startTLSRedis(t)
	// The gateway's own copies, which the test rotates.
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	copyFile(t, r.caFile, caFile)
	copyFile(t, r.clientCert, certFile)
	copyFile(t, r.clientKey, keyFile)
	file := redisTLSConfig(t, r, fmt.Sprintf("    tls:\n      ca_file: %q\n      client_cert_file: %q\n      client_key_file: %q", caFile, certFile, keyFile))
	var logs lockedBuffer
	g := serve(t, file, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
	if codes := statuses(t, g.url+"/x", 4); codes != "[200 200 200 429]" {
		t.Fatalf("through the TLS Redis: %s, want the limit of 3 then 429", codes)
	}

	// A half-written bundle: refused, the one in use stays.
	if err := os.WriteFile(caFile, []byte("-----BEGIN CERT"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.stop()
	ca2 := testpki.NewCA(t, "redis test CA, rotated")
	dir2 := t.TempDir()
	writeAtomically(t, certFile, keyFile, ca2.Client(t, "gatehouse"))
	r.clientCert, r.clientKey = certFile, keyFile
	r.start(t, ca2, dir2)
	// Still the old bundle: the new server is not trusted.
	for range 3 {
		if code := status(t, g.url+"/x"); code != 503 {
			t.Fatalf("with a bundle that does not load and a server of another CA: %d, want 503", code)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "storage.redis.tls.ca_file changed but does not load") {
		t.Fatalf("the bundle that does not load was not logged:\n%s", logs.String())
	}
	if err := os.WriteFile(caFile+".new", ca2.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(caFile+".new", caFile); err != nil {
		t.Fatal(err)
	}
	// The next probe (within a second) dials with the new files; the new
	// server's bucket is fresh.
	eventually(t, 15*time.Second, "the gateway to reach the rotated Redis", func() bool { return status(t, g.url+"/x") == 200 })
	if codes := statuses(t, g.url+"/x", 3); codes != "[200 200 429]" {
		t.Fatalf("through the rotated Redis: %s, want the limit's 2 left then 429", codes)
	}
	for _, want := range []string{"storage.redis.tls.ca_file read again", "client certificate read again"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatal("key material in the log")
	}
}

func statuses(t *testing.T, url string, n int) string {
	t.Helper()
	var codes []int
	for range n {
		codes = append(codes, status(t, url))
	}
	return fmt.Sprint(codes)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeAtomically replaces a certificate and its key, each by a rename.
func writeAtomically(t *testing.T, certFile, keyFile string, l *testpki.Leaf) {
	t.Helper()
	for name, b := range map[string][]byte{certFile: l.CertPEM, keyFile: l.KeyPEM} {
		if err := os.WriteFile(name+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".new", name); err != nil {
			t.Fatal(err)
		}
	}
}
