package upstream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ClientCert is a client certificate for mTLS to backends, read from a
// certificate file and a key file and read again whenever either changes,
// without a restart. A file that does not load (half written, wrong key)
// leaves the previous certificate in use; the failure is logged.
// Connections already open keep the certificate they were opened with.
type ClientCert struct {
	certFile, keyFile string
	logger            *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
	reloads           atomic.Uint64

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// LoadClientCert reads and checks a certificate and key pair.
func LoadClientCert(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: %v", pe.Path, pe.Err)
		}
		// The tls package's messages name the problem, never key bytes.
		return nil, fmt.Errorf("loading certificate %s and key %s: %v", certFile, keyFile, err)
	}
	return &cert, nil
}

// ID identifies the certificate's files, e.g. as part of a transport key.
func (c *ClientCert) ID() string { return c.certFile + "\x00" + c.keyFile }

// Certificate returns the certificate in use.
func (c *ClientCert) Certificate() *tls.Certificate { return c.cert.Load() }

// Reloads returns how many times the files were loaded successfully.
func (c *ClientCert) Reloads() uint64 { return c.reloads.Load() }

// GetClientCertificate is a tls.Config.GetClientCertificate returning the
// current certificate.
func (c *ClientCert) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// Reload reads the files again. On failure the previous certificate stays
// in use and the error says why.
func (c *ClientCert) Reload() error {
	cert, err := LoadClientCert(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	if old := c.cert.Load(); old != nil && sameChain(old, cert) {
		return nil
	}
	c.cert.Store(cert)
	c.reloads.Add(1)
	if cert.Leaf != nil {
		c.logger.Info("backend client certificate loaded", "cert_file", c.certFile,
			"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func sameChain(a, b *tls.Certificate) bool {
	if len(a.Certificate) != len(b.Certificate) {
		return false
	}
	for i := range a.Certificate {
		if string(a.Certificate[i]) != string(b.Certificate[i]) {
			return false
		}
	}
	return true
}

// certDebounce gathers the events of one file replacement (write, chmod,
// rename, a Kubernetes ..data symlink swap) into one reload.
const certDebounce = 100 * time.Millisecond

// watch reloads the certificate when a file changes, until close.
func (c *ClientCert) watch(w *fsnotify.Watcher) {
	defer c.wg.Done()
	defer w.Close()
	names := map[string]bool{filepath.Base(c.certFile): true, filepath.Base(c.keyFile): true, "..data": true}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-c.done:
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if names[filepath.Base(ev.Name)] {
				timer.Reset(certDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			c.logger.Warn("watching the backend client certificate", "cert_file", c.certFile, "error", err)
		case <-timer.C:
			if err := c.Reload(); err != nil {
				c.logger.Error("backend client certificate not reloaded; the previous one stays in use", "cert_file", c.certFile, "error", err)
			}
		}
	}
}

func (c *ClientCert) close() {
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
}

// ClientCerts is the registry of watched client certificates, keyed by
// their files, so that a configuration reload keeps them (and their
// watches) instead of starting again.
type ClientCerts struct {
	logger *slog.Logger
	mu     sync.Mutex
	m      map[string]*ClientCert
}

// NewClientCerts returns an empty registry. A nil logger discards.
func NewClientCerts(logger *slog.Logger) *ClientCerts {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ClientCerts{logger: logger, m: map[string]*ClientCert{}}
}

// Get returns the watched certificate of certFile and keyFile, loading it
// and starting its watch if it is new. For a known pair the files are read
// again (a reload re-reads them even if a change was missed); if that
// fails the error is returned and the certificate in use is kept.
func (r *ClientCerts) Get(certFile, keyFile string) (*ClientCert, error) {
	id := certFile + "\x00" + keyFile
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.m[id]; ok {
		return c, c.Reload()
	}
	c := &ClientCert{certFile: certFile, keyFile: keyFile, logger: r.logger, done: make(chan struct{})}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", certFile, err)
	}
	for _, dir := range []string{filepath.Dir(certFile), filepath.Dir(keyFile)} {
		if err := w.Add(dir); err != nil {
			w.Close()
			return nil, fmt.Errorf("watching %s: %w", dir, err)
		}
	}
	c.wg.Add(1)
	go c.watch(w)
	r.m[id] = c
	return c, nil
}

// Retain stops watching, and forgets, every certificate not in keep.
func (r *ClientCerts) Retain(keep map[*ClientCert]bool) {
	r.mu.Lock()
	var drop []*ClientCert
	for id, c := range r.m {
		if !keep[c] {
			delete(r.m, id)
			drop = append(drop, c)
		}
	}
	r.mu.Unlock()
	for _, c := range drop {
		c.close()
	}
}

// Close stops every watch.
func (r *ClientCerts) Close() { r.Retain(nil) }
