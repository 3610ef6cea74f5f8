package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/backendtoken"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// BackendIdentity is the run-time state of the credentials the gateway
// presents to backends: signing keys (by key directory), token minters (by
// backend and settings, so that their caches survive a reload) and client
// certificates (by files, watched for changes). It outlives snapshots;
// Close stops its background work.
type BackendIdentity struct {
	logger *slog.Logger
	certs  *upstream.ClientCerts

	// share and shareEvery: where keys opened from now on publish their
	// public halves for the other gateways (nil: no other gateway).
	share      store.PublishedKeys
	shareEvery time.Duration

	mu        sync.Mutex
	keys      map[string]*backendtoken.Keys
	minters   map[string]*backendtoken.Minter
	inService string // the key directory of the snapshot in service
}

// NewBackendIdentity returns empty backend identity state.
func NewBackendIdentity(logger *slog.Logger) *BackendIdentity {
	return &BackendIdentity{
		logger:  logger,
		certs:   upstream.NewClientCerts(logger),
		keys:    map[string]*backendtoken.Keys{},
		minters: map[string]*backendtoken.Minter{},
	}
}

// Share makes signing keys opened from now on publish their public halves
// to s, which other gateways share, every interval, and serve the other
// gateways' keys in their JWKS. Call it before the first compile.
func (b *BackendIdentity) Share(s store.PublishedKeys, interval time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.share, b.shareEvery = s, interval
}

// Keys returns the signing keys kept in dir, if they are open.
func (b *BackendIdentity) Keys(dir string) *backendtoken.Keys {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys[dir]
}

// Close stops key rotation and certificate watches.
func (b *BackendIdentity) Close() {
	b.mu.Lock()
	keys := b.keys
	b.keys, b.minters = map[string]*backendtoken.Keys{}, map[string]*backendtoken.Minter{}
	b.mu.Unlock()
	for _, k := range keys {
		k.Close()
	}
	b.certs.Close()
}

// openKeys returns the keys of dir, opening them on first use. The new
// rotation settings of keys already open are returned as apply, for the
// compile to apply once its snapshot is in place (nil for new keys).
func (b *BackendIdentity) openKeys(opts backendtoken.KeysOptions) (k *backendtoken.Keys, apply func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.keys[opts.Dir]; ok {
		return k, func() { k.SetTuning(opts.Interval, opts.Prepublish, opts.ClockSkew) }, nil
	}
	opts.Share, opts.SyncInterval = b.share, b.shareEvery
	k, err = backendtoken.OpenKeys(opts)
	if err != nil {
		return nil, nil, err
	}
	b.keys[opts.Dir] = k
	return k, nil, nil
}

func (b *BackendIdentity) minter(id string, keys *backendtoken.Keys, o backendtoken.MintOptions) *backendtoken.Minter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.minters[id]; ok {
		return m
	}
	m := backendtoken.NewMinter(keys, o)
	b.minters[id] = m
	return m
}

// retain drops what keep does not use: minters, certificate watches, and
// key directories (whose rotation stops); the algorithms keep signs with
// are the only ones that get new keys.
func (b *BackendIdentity) retain(keep *Snapshot) {
	u := &keep.backendIdentity
	b.mu.Lock()
	b.inService = u.dir
	var closeKeys []*backendtoken.Keys
	for dir, k := range b.keys {
		if k != u.keys {
			delete(b.keys, dir)
			closeKeys = append(closeKeys, k)
		}
	}
	for id := range b.minters {
		if !u.minterIDs[id] {
			delete(b.minters, id)
		}
	}
	b.mu.Unlock()
	for _, k := range closeKeys {
		k.Close()
	}
	if u.keys != nil {
		u.keys.Retain(u.algs...)
	}
	b.certs.Retain(u.certs)
}

// backendIdentityState is what a snapshot uses of BackendIdentity.
type backendIdentityState struct {
	keys *backendtoken.Keys
	dir  string // the keys' directory
	// wantDir is the key directory the configuration asks for when it is
	// not dir, the one in service (a restart applies it).
	wantDir   string
	algs      []string
	minterIDs map[string]bool
	certs     map[*upstream.ClientCert]bool
	// wellKnown maps a normalized path to the document served there.
	wellKnown map[string]http.HandlerFunc
}

// backendCredential sets the token of one backend on outgoing requests.
type backendCredential struct {
	header string // canonical
	minter *backendtoken.Minter
	logger *slog.Logger
}

// set replaces whatever the caller sent in the token header with the
// token for p (nil: anonymous), or removes it when no token is sent. If
// signing fails the header is removed (the backend then refuses the
// request) and the error is logged.
func (bc *backendCredential) set(h http.Header, fs *h1.Fields, p *identity.Principal) {
	v, err := bc.minter.HeaderValue(p)
	if err != nil {
		bc.logger.Error("minting a backend token failed; the request goes without one", "audience", bc.minter.Options().Audience, "error", err)
	}
	if v == nil {
		if fs != nil {
			// h is the client's header (see directFields): leave its copy out.
			*fs = append(*fs, h1.Field{Name: bc.header, Omit: true})
			return
		}
		delete(h, bc.header)
		return
	}
	setFieldValues(h, fs, bc.header, v)
}

// serveWellKnown serves a gateway document (JWKS, discovery) at path, if
// there is one there. It is called before routing.
func (s *Snapshot) serveWellKnown(w http.ResponseWriter, r *http.Request, path string) (bool, error) {
	h := s.backendIdentity.wellKnown[path]
	if h == nil {
		return false, nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return true, policy.MethodNotAllowed("GET, HEAD")
	}
	h(w, r)
	return true, nil
}

// keyDir is backend_identity.key_dir, or <data directory>/backend-identity,
// where the data directory is the one the process opened at start
// (dataDir; storage.data_dir only takes effect at a restart), or, before
// any, storage.data_dir.
func keyDir(cfg *config.Config, dataDir string) string {
	if d := cfg.BackendIdentity.KeyDir; d != "" {
		return filepath.Clean(d)
	}
	data := dataDir
	if data == "" {
		data = cfg.Storage.DataDir
	}
	if data == "" {
		data = config.DefaultDataDir
	}
	return filepath.Join(data, config.DefaultBackendKeyDirName)
}

// keyDirFor returns the key directory a compile uses: while keys are in
// service, theirs (the keys are state outside the configuration: a reload
// does not change them, a restart applies a new directory), else want.
func (b *BackendIdentity) keyDirFor(want string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inService != "" {
		return b.inService
	}
	return want
}

// BackendKeyDirPending returns the key directory the configuration asks
// for when it is not the one of the keys in service ("" when it is):
// backend_identity.key_dir or storage.data_dir changed, which a restart
// applies.
func (s *Snapshot) BackendKeyDirPending() string { return s.backendIdentity.wantDir }

// compileBackendIdentity prepares the signing keys, the well-known
// documents and each backend's token minter. Offline (validate), nothing
// is created on disk.
func (c *compiler) compileBackendIdentity() {
	bi := c.cfg.BackendIdentity
	st := &c.snap.backendIdentity
	st.minterIDs = map[string]bool{}
	var algs []string
	for _, b := range c.cfg.Backends {
		if b.Identity != nil && b.Identity.JWT != nil {
			alg := or(b.Identity.JWT.Algorithm, config.DefaultBackendTokenAlgorithm)
			if !slices.Contains(algs, alg) {
				algs = append(algs, alg)
			}
		}
	}
	slices.Sort(algs)
	if bi == nil || bi.Issuer == "" {
		return // nothing to do, or reported by validation
	}
	if c.rt.BackendIdentity == nil {
		if c.rt.KeySets != nil && len(algs) > 0 {
			// Fail closed: never serve a backend without its tokens.
			c.r.Errorf("backend_identity", "this gateway runtime has no backend identity state; tokens cannot be minted")
		}
		return // offline (validate): nothing is created on disk
	}
	const p = "backend_identity"
	skew := bi.ClockSkew.Or(config.DefaultClockSkew)
	want := keyDir(c.cfg, c.rt.DataDir)
	dir := c.rt.BackendIdentity.keyDirFor(want)
	if dir != want {
		st.wantDir = want
	}
	keys, apply, err := c.rt.BackendIdentity.openKeys(backendtoken.KeysOptions{
		Dir:        dir,
		Interval:   bi.Rotation.Interval.Or(config.DefaultKeyRotationInterval),
		Prepublish: bi.Rotation.Prepublish.Or(config.DefaultKeyPrepublish),
		ClockSkew:  skew,
		Now:        c.now,
		Logger:     c.rt.Logger,
	})
	if err != nil {
		c.r.Errorf(config.Field(p, "key_dir"), "%v", err)
		return
	}
	c.onCommit(apply)
	if err := keys.Use(c.ctx, algs...); err != nil {
		c.r.Errorf(config.Field(p, "key_dir"), "preparing signing keys: %v", err)
		return
	}
	st.keys, st.algs, st.dir = keys, algs, dir
	st.wellKnown = map[string]http.HandlerFunc{"/.well-known/jwks.json": keys.ServeJWKS}
	if bi.Discovery == nil || *bi.Discovery {
		iu, err := url.Parse(bi.Issuer)
		if err != nil {
			c.r.Errorf(config.Field(p, "issuer"), "%v", err)
			return
		}
		jwksURI := bi.JWKSURI
		if jwksURI == "" {
			jwksURI = iu.Scheme + "://" + iu.Host + "/.well-known/jwks.json"
		}
		d := backendtoken.NewDiscovery(keys, bi.Issuer, jwksURI, algs)
		st.wellKnown[strings.TrimSuffix(iu.Path, "/")+"/.well-known/openid-configuration"] = d.ServeHTTP
	}
	for i, b := range c.cfg.Backends {
		if b.Identity == nil || b.Identity.JWT == nil || c.backends[b.Name] == nil {
			continue
		}
		jp := config.Field(config.Index("backends", i), "identity.jwt")
		j := b.Identity.JWT
		names := j.Claims
		if names == nil {
			names = config.DefaultBackendTokenClaims
		}
		claims, err := backendtoken.ParseClaims(names)
		if err != nil {
			c.r.Errorf(config.Field(jp, "claims"), "%v", err)
			continue
		}
		header := http.CanonicalHeaderKey(or(j.Header, config.DefaultBackendTokenHeader))
		o := backendtoken.MintOptions{
			Issuer:           bi.Issuer,
			Audience:         j.Audience,
			Algorithm:        or(j.Algorithm, config.DefaultBackendTokenAlgorithm),
			TTL:              j.TTL.Or(config.DefaultBackendTokenTTL),
			Claims:           claims,
			AnonymousSubject: j.AnonymousSubject,
			Bearer:           header == "Authorization",
			CacheSize:        bi.CacheSize,
			Now:              c.rt.Now,
		}
		if o.CacheSize == 0 {
			o.CacheSize = config.DefaultBackendTokenCacheSize
		}
		id := minterID(b.Name, keys.Dir(), o)
		st.minterIDs[id] = true
		c.backends[b.Name].credential = &backendCredential{
			header: header,
			minter: c.rt.BackendIdentity.minter(id, keys, o),
			logger: c.rt.Logger.With("backend", b.Name),
		}
	}
}

// minterID identifies a minter by everything that shapes its tokens, so
// that a reload changing none of it keeps the minter and its cache.
func minterID(backend, dir string, o backendtoken.MintOptions) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%d\x00%s\x00%t\x00%d",
		backend, dir, o.Issuer, o.Audience, o.Algorithm, o.TTL, o.Claims, o.AnonymousSubject, o.Bearer, o.CacheSize)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// clientCertificate sets the client certificate of a backend's transport
// (backends[].tls.client_cert_file and client_key_file). Offline, the
// files are only checked.
func (c *compiler) clientCertificate(path string, b *config.Backend, opts *upstream.TransportOptions) {
	if b.TLS == nil || b.TLS.ClientCertFile == "" || b.TLS.ClientKeyFile == "" {
		return
	}
	p := config.Field(path, "tls.client_cert_file")
	if c.rt.BackendIdentity == nil && c.rt.KeySets != nil {
		c.r.Errorf(p, "this gateway runtime has no backend identity state; the client certificate cannot be used")
		return
	}
	if c.rt.BackendIdentity == nil {
		if _, err := upstream.LoadClientCert(b.TLS.ClientCertFile, b.TLS.ClientKeyFile); err != nil {
			c.r.Errorf(p, "%v", err)
		}
		return
	}
	cc, err := c.rt.BackendIdentity.certs.Get(b.TLS.ClientCertFile, b.TLS.ClientKeyFile)
	if err != nil {
		c.r.Errorf(p, "%v", err)
		if cc == nil {
			return
		}
	}
	if c.snap.backendIdentity.certs == nil {
		c.snap.backendIdentity.certs = map[*upstream.ClientCert]bool{}
	}
	c.snap.backendIdentity.certs[cc] = true
	opts.ClientCert = cc
}
