// Package devissuer is an in-process OpenID Connect issuer for development
// and tests. `gatehouse dev` runs one so that a newcomer can call the demo
// gateway with real tokens, and tests across the repository use it to
// mint tokens (including deliberately bad ones), rotate keys and take the
// IdP down.
//
// It is NOT for production: keys live in memory and are lost on restart,
// every login is auto-approved, users have no passwords, and there are no
// rate limits, no consent, no refresh tokens and no revocation.
//
// It serves OpenID Connect Discovery 1.0, a JWKS, the OAuth 2.0 token
// endpoint for client_credentials (RFC 6749 §4.4) and authorization_code
// with PKCE S256 (RFC 7636), and /authorize for the latter.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultAudience is the aud of access tokens when neither the client nor
// Options say otherwise.
const DefaultAudience = "gatehouse"

// DefaultTokenTTL is the lifetime of minted tokens.
const DefaultTokenTTL = time.Hour

// Client is an OAuth client of the issuer.
type Client struct {
	// ID and Secret authenticate the client. A client with no Secret is a
	// public client: it may only use authorization_code with PKCE.
	ID, Secret string
	// Subject is the sub of its client_credentials tokens (default ID).
	Subject string
	// Groups, Roles and Scopes go into its client_credentials tokens;
	// Scopes also bound the scopes it may request.
	Groups, Roles, Scopes []string
	// Audience is the aud of its access tokens (default Options.Audience).
	Audience string
	// RedirectURIs are the exact redirect URIs allowed for /authorize.
	// When empty, any http or https URI on a loopback host (127.0.0.1,
	// [::1], localhost) is allowed, as for native apps (RFC 8252 §7.3).
	RedirectURIs []string
}

// User is a demo user who can "log in" through /authorize.
type User struct {
	Subject, Name, Email string
	Groups, Roles        []string
}

// Options configure an Issuer.
type Options struct {
	Clients []Client
	// Users enable /authorize; without users it answers 404.
	Users []User
	// TokenTTL is the lifetime of tokens (default 1h).
	TokenTTL time.Duration
	// Algorithm is "RS256" (default, 2048-bit keys) or "ES256" (P-256).
	Algorithm string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Audience is the default aud of access tokens (default "gatehouse").
	Audience string
}

// Issuer is a running development OpenID Provider. It is safe for
// concurrent use.
type Issuer struct {
	clients  map[string]*Client
	users    []User
	ttl      time.Duration
	alg      jose.SignatureAlgorithm
	now      func() time.Time
	audience string
	page     *template.Template
	down     atomic.Bool

	mu       sync.Mutex
	url      string
	keys     []*signingKey // the last one is current
	codes    map[string]*authCode
	requests map[string]int
}

type signingKey struct {
	kid  string
	priv crypto.Signer
	pub  jose.JSONWebKey
}

// maxCountedPaths bounds the request counter against random paths.
const maxCountedPaths = 10000

// New returns an issuer with one signing key.
func New(opts Options) (*Issuer, error) {
	i := &Issuer{
		clients:  map[string]*Client{},
		users:    slices.Clone(opts.Users),
		ttl:      opts.TokenTTL,
		now:      opts.Now,
		audience: opts.Audience,
		codes:    map[string]*authCode{},
		requests: map[string]int{},
	}
	switch opts.Algorithm {
	case "", "RS256":
		i.alg = jose.RS256
	case "ES256":
		i.alg = jose.ES256
	default:
		return nil, fmt.Errorf("devissuer: algorithm %q is not supported (RS256 or ES256)", opts.Algorithm)
	}
	if i.ttl <= 0 {
		i.ttl = DefaultTokenTTL
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.audience == "" {
		i.audience = DefaultAudience
	}
	for n := range opts.Clients {
		c := opts.Clients[n]
		if c.ID == "" {
			return nil, fmt.Errorf("devissuer: client %d has no ID", n)
		}
		if _, dup := i.clients[c.ID]; dup {
			return nil, fmt.Errorf("devissuer: client %q is defined twice", c.ID)
		}
		i.clients[c.ID] = &c
	}
	for n, u := range i.users {
		if u.Subject == "" {
			return nil, fmt.Errorf("devissuer: user %d has no subject", n)
		}
	}
	tmpl, err := template.New("page").Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("devissuer: page template: %w", err)
	}
	i.page = tmpl
	k, err := newSigningKey(i.alg)
	if err != nil {
		return nil, err
	}
	i.keys = []*signingKey{k}
	return i, nil
}

func newSigningKey(alg jose.SignatureAlgorithm) (*signingKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	if alg == jose.ES256 {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return nil, fmt.Errorf("devissuer: generating a key: %w", err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: string(alg), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)[:16]
	return &signingKey{kid: pub.KeyID, priv: priv, pub: pub}, nil
}

// SetURL sets the externally visible base URL (e.g. an httptest server's
// URL, without a trailing slash). It is the iss of every token and the
// base of every endpoint in the discovery document.
func (i *Issuer) SetURL(u string) {
	i.mu.Lock()
	i.url = u
	i.mu.Unlock()
}

// URL returns the issuer URL set with SetURL.
func (i *Issuer) URL() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.url
}

// KeyID returns the kid of the current signing key.
func (i *Issuer) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1].kid
}

// RotateKey makes a new current signing key. The old keys stay published
// in the JWKS until RetireOldKeys.
func (i *Issuer) RotateKey() error {
	k, err := newSigningKey(i.alg)
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.keys = append(i.keys, k)
	i.mu.Unlock()
	return nil
}

// RetireOldKeys unpublishes every key but the current one.
func (i *Issuer) RetireOldKeys() {
	i.mu.Lock()
	i.keys = i.keys[len(i.keys)-1:]
	i.mu.Unlock()
}

// SetDown makes every endpoint answer 503 while down is true.
func (i *Issuer) SetDown(down bool) { i.down.Store(down) }

// Requests returns how many requests path has received, including those
// answered 503 while down and those to paths that are not endpoints.
func (i *Issuer) Requests(path string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.requests[path]
}

// Mint signs claims with the current key, for tests. It adds iss (the
// URL), iat (now) and exp (now + TTL) unless claims set them, and the
// header fields kid (current key) and typ "at+jwt". A claim whose value is
// nil is left out (Mint(map[string]any{"exp": nil}) has no exp).
func (i *Issuer) Mint(claims map[string]any) (string, error) {
	return i.MintWithHeader(nil, claims)
}

// MintWithHeader is Mint with extra or overridden JOSE header fields, for
// attack tests: "kid" replaces the key id, "typ" the type, and any other
// field (jku, x5u, jwk, crit, even alg) is added as given. A header field
// whose value is nil is left out (kid: nil gives a token without kid). The
// signature is always made with the current key and the issuer's
// algorithm.
func (i *Issuer) MintWithHeader(hdr map[string]any, claims map[string]any) (string, error) {
	i.mu.Lock()
	key, iss := i.keys[len(i.keys)-1], i.url
	i.mu.Unlock()
	if iss == "" {
		return "", errors.New("devissuer: SetURL has not been called")
	}
	now := i.now()
	c := map[string]any{"iss": iss, "iat": now.Unix(), "exp": now.Add(i.ttl).Unix()}
	merge(c, claims)
	h := map[string]any{"kid": key.kid, "typ": "at+jwt"}
	merge(h, hdr)
	return i.sign(key, h, c)
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

func (i *Issuer) sign(key *signingKey, hdr, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devissuer: encoding claims: %w", err)
	}
	extra := make(map[jose.HeaderKey]any, len(hdr))
	for k, v := range hdr {
		extra[jose.HeaderKey(k)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: i.alg, Key: key.priv},
		&jose.SignerOptions{ExtraHeaders: extra})
	if err != nil {
		return "", fmt.Errorf("devissuer: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devissuer: signing: %w", err)
	}
	return jws.CompactSerialize()
}

// Handler serves the issuer's endpoints: /.well-known/openid-configuration,
// /jwks, /token and /authorize.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	mux.HandleFunc("POST /token", i.serveToken)
	mux.HandleFunc("GET /authorize", i.serveAuthorize)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.count(r.URL.Path)
		if i.down.Load() {
			http.Error(w, "the development issuer is down", http.StatusServiceUnavailable)
			return
		}
		if i.URL() == "" {
			http.Error(w, "the development issuer has no URL (SetURL)", http.StatusInternalServerError)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (i *Issuer) count(path string) {
	i.mu.Lock()
	if _, ok := i.requests[path]; ok || len(i.requests) < maxCountedPaths {
		i.requests[path]++
	}
	i.mu.Unlock()
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	base := i.URL()
	scopes := []string{"openid", "profile", "email"}
	for _, c := range i.clients {
		scopes = append(scopes, c.Scopes...)
	}
	slices.Sort(scopes)
	doc := map[string]any{
		"issuer":                                base,
		"jwks_uri":                              base + "/jwks",
		"token_endpoint":                        base + "/token",
		"authorization_endpoint":                base + "/authorize",
		"grant_types_supported":                 []string{"authorization_code", "client_credentials"},
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(i.alg)},
		"scopes_supported":                      slices.Compact(scopes),
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "name", "email", "groups", "roles", "nonce"},
	}
	writeJSON(w, http.StatusOK, doc)
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, k.pub)
	}
	i.mu.Unlock()
	body, err := json.Marshal(set)
	if err != nil {
		http.Error(w, "encoding the JWKS failed", http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// randomString returns n random bytes in unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
