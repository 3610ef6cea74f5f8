package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
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
}

func startTLSRedis(t *testing.T) *tlsRedis {
	t.Helper()
	if os.Getenv("GATEHOUSE_TEST_REDIS_URL") == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the Redis tests run where a Redis is installed (this one starts a redis-server of its own, with TLS)")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: the TLS test starts one of its own")
	}
	dir := t.TempDir()
	ca := testpki.NewCA(t, "redis test CA")
	srvCert, srvKey := ca.Server(t, "127.0.0.1", "redis.test").WriteFiles(t, dir, "server")
	r := &tlsRedis{caFile: ca.WriteFile(t, dir, "ca")}
	r.clientCert, r.clientKey = ca.Client(t, "gatehouse").WriteFiles(t, dir, "client")
	port := freePort(t)
	r.addr = "127.0.0.1:" + port
	startProcess(t, bin, "--port", "0", "--bind", "127.0.0.1", "--tls-port", port,
		"--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-ca-cert-file", r.caFile,
		"--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", dir)
	// Ready when a TLS handshake with the client certificate completes.
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
	return r
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
