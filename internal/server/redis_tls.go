package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
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
	if err := f.load(true); err != nil {
		return nil, err
	}
	return f, nil
}

// current returns the CA pool and client certificate to dial with,
// reading again the files that changed since they were last read.
func (f *redisTLSFiles) current() (*x509.CertPool, *tls.Certificate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.load(false)
	return f.roots, f.cert
}

// load reads the files, each once, and takes the versions not seen
// before (told apart by the SHA-256 of their contents: dials are rare, a
// pool's connections being kept, so reading the small files each time
// costs nothing that matters, and no rotation is missed for keeping a
// size and a modification time). At start (first) a version that does
// not load is the error; later it is logged, once for that version, and
// the previous one stays in use.
func (f *redisTLSFiles) load(first bool) error {
	t := f.tls
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if s := stamp(err, pem); s != f.caSeen {
			f.caSeen = s
			pool := x509.NewCertPool()
			switch {
			case err != nil:
				err = fmt.Errorf("storage.redis.tls.ca_file: %w", err)
			case !pool.AppendCertsFromPEM(pem):
				err = fmt.Errorf("storage.redis.tls.ca_file: %s holds no PEM certificate", t.CAFile)
			}
			switch {
			case err != nil && first:
				return err
			case err != nil:
				f.logger.Error("storage.redis.tls.ca_file changed but does not load; the previous CA bundle stays in use", "error", err)
			default:
				f.roots = pool
				if !first {
					f.logger.Info("storage.redis.tls.ca_file read again; new connections to Redis verify with it", "ca_file", t.CAFile)
				}
			}
		}
	}
	if t.ClientCertFile != "" {
		certPEM, err1 := os.ReadFile(t.ClientCertFile)
		keyPEM, err2 := os.ReadFile(t.ClientKeyFile)
		if s := stamp(err1, certPEM) + stamp(err2, keyPEM); s != f.certSeen {
			f.certSeen = s
			err := errors.Join(err1, err2)
			var cert tls.Certificate
			if err == nil {
				// The tls package's messages name the problem, never key bytes.
				cert, err = tls.X509KeyPair(certPEM, keyPEM)
			}
			if err != nil {
				err = fmt.Errorf("storage.redis.tls: the client certificate: %w", err)
			}
			switch {
			case err != nil && first:
				return err
			case err != nil:
				f.logger.Error("storage.redis.tls's client certificate changed but does not load; the previous one stays in use", "error", err)
			default:
				f.cert = &cert
				if !first {
					f.logger.Info("storage.redis.tls's client certificate read again; new connections to Redis present it", "client_cert_file", t.ClientCertFile)
				}
			}
		}
	}
	return nil
}

// stamp tells one version of a file's contents from another ("" when it
// could not be read).
func stamp(err error, b []byte) string {
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
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
