package dashboard

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// OIDC sign-in: the authorization code flow with PKCE (RFC 6749 §4.1,
// RFC 7636 S256), endpoints from OpenID Connect Discovery, the ID token
// verified with the identity package's key sets and verifier (signature,
// iss, aud = client ID, exp), then nonce and azp checked here.

// OIDCOptions configure the sign-in.
type OIDCOptions struct {
	Issuer   string
	ClientID string
	// ClientSecret returns the client secret at each token exchange, so
	// that a new one takes effect without a restart; nil, or "", for a
	// public client.
	ClientSecret func() string
	RedirectURL  string
	Scopes       []string
	// RoleClaim is the claim path whose values map to roles.
	RoleClaim    string
	AdminValues  []string
	ViewerValues []string
	// RootCAs verify the provider's certificate (discovery, the token
	// exchange and the keys); nil: the system roots.
	RootCAs *x509.CertPool
	// HTTPClient, when set, serves discovery and the token exchange in
	// place of the dashboard's own client (tests).
	HTTPClient *http.Client
	// KeySets, when set, caches the provider's keys; without it the
	// dashboard makes its own, which Close closes. The dashboard closes
	// nothing it did not make.
	KeySets *identity.KeySets
}

type discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported"`
}

type oidcClient struct {
	o      OIDCOptions
	client *http.Client
	// transport is the client's when the dashboard made it for RootCAs.
	transport *http.Transport
	logger    *slog.Logger
	now       func() time.Time

	mu       sync.Mutex
	disc     *discovery
	verifier *identity.Verifier
	keySet   *identity.KeySet
}

func newOIDCClient(o OIDCOptions, logger *slog.Logger, now func() time.Time) *oidcClient {
	c := &oidcClient{o: o, client: o.HTTPClient, logger: logger, now: now}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
		if o.RootCAs != nil {
			c.transport = &http.Transport{
				Proxy:           http.ProxyFromEnvironment,
				TLSClientConfig: &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
				IdleConnTimeout: 90 * time.Second,
			}
			c.client.Transport = c.transport
		}
	}
	return c
}

// maxProviderBody bounds what is read from the provider.
const maxProviderBody = 1 << 20

// endpoints reads the discovery document once and builds the ID token
// verifier.
func (c *oidcClient) endpoints(ctx context.Context) (*discovery, *identity.Verifier, *identity.KeySet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disc != nil {
		return c.disc, c.verifier, c.keySet, nil
	}
	u := strings.TrimSuffix(c.o.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the provider's discovery document: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, nil, fmt.Errorf("the provider's discovery document answered %d", res.StatusCode)
	}
	var d discovery
	if err := json.NewDecoder(io.LimitReader(res.Body, maxProviderBody)).Decode(&d); err != nil {
		return nil, nil, nil, fmt.Errorf("decoding the provider's discovery document: %w", err)
	}
	if d.Issuer != c.o.Issuer {
		return nil, nil, nil, fmt.Errorf("the discovery document names issuer %q, not the configured %q", d.Issuer, c.o.Issuer)
	}
	if d.AuthorizationEndpoint == "" || d.TokenEndpoint == "" {
		return nil, nil, nil, errors.New("the discovery document lacks the authorization or token endpoint")
	}
	var algs []string
	for _, a := range d.IDTokenAlgs {
		if identity.ValidateAlgorithm(a) == nil {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	ks := c.o.KeySets.Get("dashboard", identity.KeySetOptions{Issuer: c.o.Issuer, JWKSURL: d.JWKSURI, RootCAs: c.o.RootCAs})
	p, err := identity.NewProvider(identity.ProviderOptions{
		Name: "dashboard", Issuer: c.o.Issuer, Audiences: []string{c.o.ClientID}, Algorithms: algs,
		SubjectClaim: "sub", GroupsClaim: c.o.RoleClaim,
	}, ks)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := identity.NewVerifier([]*identity.Provider{p}, identity.VerifierOptions{Now: c.now})
	if err != nil {
		return nil, nil, nil, err
	}
	c.disc, c.verifier, c.keySet = &d, v, ks
	return c.disc, c.verifier, c.keySet, nil
}

// authURL returns where to send the browser, with a fresh state, nonce
// and PKCE verifier recorded in l.
func (c *oidcClient) authURL(ctx context.Context, state string, l *pendingLogin) (string, error) {
	d, _, _, err := c.endpoints(ctx)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(l.verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.o.ClientID},
		"redirect_uri":          {c.o.RedirectURL},
		"scope":                 {strings.Join(c.o.Scopes, " ")},
		"state":                 {state},
		"nonce":                 {l.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(d.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return d.AuthorizationEndpoint + sep + q.Encode(), nil
}

// identityOf is who signed in.
type identityOf struct {
	user, name string
	role       Role
}

// errNoRole is a valid sign-in by someone with no dashboard role.
var errNoRole = errors.New("no dashboard role")

// exchange trades the code for tokens, verifies the ID token and maps the
// person to a role.
func (c *oidcClient) exchange(ctx context.Context, code string, l *pendingLogin) (*identityOf, error) {
	d, v, ks, err := c.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {c.o.RedirectURL},
		"code_verifier": {l.verifier},
	}
	var secret string
	if c.o.ClientSecret != nil {
		secret = c.o.ClientSecret()
	}
	if secret == "" {
		form.Set("client_id", c.o.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if secret != "" {
		// RFC 6749 §2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(c.o.ClientID), url.QueryEscape(secret))
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the token endpoint: %w", err)
	}
	defer res.Body.Close()
	var tr struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxProviderBody)).Decode(&tr); err != nil {
		return nil, fmt.Errorf("decoding the token response (status %d): %w", res.StatusCode, err)
	}
	if res.StatusCode != http.StatusOK || tr.IDToken == "" {
		return nil, fmt.Errorf("the token endpoint answered %d %s without an ID token", res.StatusCode, tr.Error)
	}
	if !ks.Ready() {
		if err := ks.Refresh(ctx); err != nil {
			return nil, fmt.Errorf("fetching the provider's keys: %w", err)
		}
	}
	p, err := v.Verify(ctx, tr.IDToken)
	if err != nil {
		return nil, fmt.Errorf("the ID token is not valid: %w", err)
	}
	if nonce, _ := p.Claims["nonce"].(string); nonce == "" || nonce != l.nonce {
		return nil, errors.New("the ID token's nonce does not match the sign-in request")
	}
	if azp, ok := p.Claims["azp"].(string); ok && azp != c.o.ClientID {
		return nil, errors.New("the ID token was issued to another client (azp)")
	}
	who := &identityOf{user: p.Subject, name: p.Subject}
	if email, _ := p.Claims["email"].(string); email != "" {
		who.user, who.name = email, email
	}
	if name, _ := p.Claims["name"].(string); name != "" {
		who.name = name
	}
	values := identity.ClaimValues(p.Claims, c.o.RoleClaim)
	switch {
	case slices.ContainsFunc(values, func(s string) bool { return slices.Contains(c.o.AdminValues, s) }):
		who.role = RoleAdmin
	case slices.ContainsFunc(values, func(s string) bool { return slices.Contains(c.o.ViewerValues, s) }):
		who.role = RoleViewer
	default:
		return who, errNoRole
	}
	return who, nil
}
