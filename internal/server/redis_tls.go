package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// redisTLSFiles dials Redis over TLS with storage.redis.tls's files as
// they are now: before each new connection it looks at the CA bundle and
// the client certificate and key, and reads again those that changed (a
// rotation, or a Kubernetes secret's symlink swap), so that new
// connections use them without a restart. A file that does not load (half
// written, a certificate without its new key yet) leaves the previous one
// in use, logged once for that version of the files. Connections already
// open keep what they were opened with.
type redisTLSFiles struct {
	base        *tls.Config // ServerName, MinVersion; RootCAs and the certificate come from the files
	tls         *config.RedisTLS
	logger      *slog.Logger
	dialTimeout time.Duration

	mu       sync.Mutex
	caSeen   string // the stamp of the CA file last read (or tried)
	certSeen string // of the certificate and key files
	roots    *x509.CertPool
	cert     *tls.Certificate
}

// newRedisTLSFiles reads t's files once, and returns the error of the
// first that does not load: at start a bad file refuses the start.
func newRedisTLSFiles(base *tls.Config, t *config.RedisTLS, dialTimeout time.Duration, logger *slog.Logger) (*redisTLSFiles, error) {
	f := &redisTLSFiles{base: base, tls: t, logger: logger, dialTimeout: dialTimeout}
	if t.CAFile != "" {
		f.caSeen = fileStamp(t.CAFile)
		pool, err := readRedisCA(t.CAFile)
		if err != nil {
			return nil, err
		}
		f.roots = pool
	}
	if t.ClientCertFile != "" {
		f.certSeen = fileStamp(t.ClientCertFile) + "|" + fileStamp(t.ClientKeyFile)
		cert, err := readRedisClientCert(t)
		if err != nil {
			return nil, err
		}
		f.cert = cert
	}
	return f, nil
}

func readRedisCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("storage.redis.tls.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("storage.redis.tls.ca_file: %s holds no PEM certificate", file)
	}
	return pool, nil
}

func readRedisClientCert(t *config.RedisTLS) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
	if err != nil {
		// The tls package's messages name the problem, never key bytes.
		return nil, fmt.Errorf("storage.redis.tls: the client certificate: %w", err)
	}
	return &cert, nil
}

// fileStamp tells one version of a file from another by its contents
// ("" when it cannot be read). Dials are rare (a pool's connections are
// kept), so reading the small files each time costs nothing that matters,
// and no rotation is missed for keeping a size and a modification time.
func fileStamp(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// current returns the CA pool and client certificate to dial with,
// reading again the files that changed since they were last read.
func (f *redisTLSFiles) current() (*x509.CertPool, *tls.Certificate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tls; t.CAFile != "" {
		if s := fileStamp(t.CAFile); s != f.caSeen {
			f.caSeen = s
			if pool, err := readRedisCA(t.CAFile); err != nil {
				f.logger.Error("storage.redis.tls.ca_file changed but does not load; the previous CA bundle stays in use", "error", err)
			} else {
				f.roots = pool
				f.logger.Info("storage.redis.tls.ca_file read again; new connections to Redis verify with it", "ca_file", t.CAFile)
			}
		}
	}
	if t := f.tls; t.ClientCertFile != "" {
		if s := fileStamp(t.ClientCertFile) + "|" + fileStamp(t.ClientKeyFile); s != f.certSeen {
			f.certSeen = s
			if cert, err := readRedisClientCert(t); err != nil {
				f.logger.Error("storage.redis.tls's client certificate changed but does not load; the previous one stays in use", "error", err)
			} else {
				f.cert = cert
				f.logger.Info("storage.redis.tls's client certificate read again; new connections to Redis present it", "client_cert_file", t.ClientCertFile)
			}
		}
	}
	return f.roots, f.cert
}

// dial is a go-redis Dialer: TCP, then a TLS handshake verified with the
// files as they are now. Without a server name set, each address is
// verified against its own host, as tls.Dial does.
func (f *redisTLSFiles) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: f.dialTimeout, KeepAlive: 5 * time.Minute}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := f.base.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	roots, cert := f.current()
	if roots != nil {
		c.RootCAs = roots
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	if f.dialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.dialTimeout)
		defer cancel()
	}
	conn := tls.Client(raw, c)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// secureRedisTLS sets up the TLS of a rediss:// URL (c nil: redis://) and
// returns the Dialer that reads storage.redis.tls's files as they change
// (nil when the block names no file: go-redis dials with c). With
// several servers (a cluster's nodes, Sentinels and the primaries they
// name) each is verified against its own host, not the URL's first,
// unless tls.server_name names one for all.
func secureRedisTLS(c *tls.Config, t *config.RedisTLS, several bool, dialTimeout time.Duration, logger *slog.Logger) (func(context.Context, string, string) (net.Conn, error), error) {
	if c == nil {
		return nil, nil // validation refuses tls with redis://
	}
	c.MinVersion = tls.VersionTLS12
	c.InsecureSkipVerify = false // validation refuses skip_verify; never off
	if several {
		c.ServerName = "" // each address's host
	}
	if t == nil {
		return nil, nil
	}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile == "" && t.ClientCertFile == "" {
		return nil, nil
	}
	f, err := newRedisTLSFiles(c, t, dialTimeout, logger)
	if err != nil {
		return nil, err
	}
	return f.dial, nil
}
