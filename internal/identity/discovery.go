package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxDocumentSize bounds a discovery document or a JWKS (1 MiB).
const maxDocumentSize = 1 << 20

// Fetch outcomes reported to Hooks.OnFetch.
const (
	// FetchOK: a JWKS was fetched and its usable keys replaced the cached ones.
	FetchOK = "ok"
	// FetchNotModified: the IdP answered 304 to a conditional request; the
	// cached keys are current.
	FetchNotModified = "not_modified"
	// FetchError: discovery or the JWKS fetch failed, or the JWKS had no
	// usable key; the cached keys (if any) are kept.
	FetchError = "error"
)

// newHTTPClient builds the private HTTP client of one key set. It has its
// own transport (http.DefaultTransport is never used or changed), trusts
// roots (the system roots when nil), and honours HTTPS_PROXY/NO_PROXY from
// the environment, since IdPs are often reached through an egress proxy.
// Per-request deadlines come from the context (KeySetOptions.Timeout).
// Redirects are followed at most 3 times and never from https to http.
func newHTTPClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("refusing a redirect from https to " + req.URL.Scheme)
			}
			return nil
		},
	}
}

// fetchOnce fetches the JWKS, discovering its URL first when it is not
// configured and not yet known, and once more when a JWKS fetch with a
// cached discovered URL fails (the IdP may have moved it). It returns the
// outcome for the hook and, for FetchOK, the new keys. The caller holds
// s.fetchMu, which guards s.jwksURL and s.etag.
func (s *KeySet) fetchOnce(ctx context.Context) (outcome string, keys *keyMap, err error) {
	client := s.client.Load()
	timeout := s.tuning.Load().timeout
	discovered := false
	if s.jwksURL == "" {
		u, err := s.discover(ctx, client, timeout)
		if err != nil {
			return FetchError, nil, err
		}
		s.jwksURL, s.etag = u, ""
		discovered = true
	}
	keys, notModified, err := s.fetchKeys(ctx, client, timeout)
	if err != nil && !discovered && s.configuredJWKS == "" && ctx.Err() == nil {
		u, derr := s.discover(ctx, client, timeout)
		if derr != nil {
			return FetchError, nil, fmt.Errorf("%w; rediscovery failed too: %v", err, derr)
		}
		if u != s.jwksURL {
			s.jwksURL, s.etag = u, ""
			keys, notModified, err = s.fetchKeys(ctx, client, timeout)
		}
	}
	switch {
	case err != nil:
		return FetchError, nil, err
	case notModified:
		return FetchNotModified, nil, nil
	default:
		return FetchOK, keys, nil
	}
}

// fetchKeys GETs s.jwksURL, conditionally when keys are cached and the
// IdP gave an ETag, and parses it. A JWKS with no usable key is an error,
// so that a broken IdP response never empties a working cache.
func (s *KeySet) fetchKeys(ctx context.Context, client *http.Client, timeout time.Duration) (*keyMap, bool, error) {
	etag := ""
	if s.keys.Load() != nil {
		etag = s.etag
	}
	body, newETag, notModified, err := get(ctx, client, timeout, s.jwksURL, etag,
		"application/jwk-set+json, application/json")
	if err != nil || notModified {
		return nil, notModified, err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, false, fmt.Errorf("JWKS from %s: %w", redact(s.jwksURL), err)
	}
	for _, why := range skipped {
		s.label.Load().logger.Warn("identity: ignoring a JWKS key", "why", why)
	}
	if len(keys.all) == 0 {
		return nil, false, fmt.Errorf("JWKS from %s has no usable signing key", redact(s.jwksURL))
	}
	s.etag = newETag
	return keys, false, nil
}

// discover reads the issuer's OpenID Provider Configuration (OIDC
// Discovery 1.0 §4) and returns its jwks_uri. The document's issuer must
// equal the configured issuer exactly (§4.3), or a document served for
// another issuer could make the gateway trust that issuer's keys.
func (s *KeySet) discover(ctx context.Context, client *http.Client, timeout time.Duration) (string, error) {
	wellKnown := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	body, _, _, err := get(ctx, client, timeout, wellKnown, "", "application/json")
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery document from %s is not a JSON object: %w", redact(wellKnown), err)
	}
	var issuer, jwksURI string
	if err := json.Unmarshal(doc["issuer"], &issuer); err != nil || doc["issuer"] == nil {
		return "", fmt.Errorf("discovery document from %s has no issuer string", redact(wellKnown))
	}
	if issuer != s.issuer {
		return "", fmt.Errorf("discovery document from %s names issuer %q, not %q (OIDC Discovery §4.3)",
			redact(wellKnown), truncate(issuer, 200), s.issuer)
	}
	if err := json.Unmarshal(doc["jwks_uri"], &jwksURI); err != nil || doc["jwks_uri"] == nil {
		return "", fmt.Errorf("discovery document from %s has no jwks_uri string", redact(wellKnown))
	}
	u, err := url.Parse(jwksURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("discovery document from %s has an invalid jwks_uri", redact(wellKnown))
	}
	if u.Scheme == "http" && strings.HasPrefix(s.issuer, "https:") {
		return "", fmt.Errorf("discovery document from %s has a plain-http jwks_uri for an https issuer", redact(wellKnown))
	}
	return jwksURI, nil
}

// get fetches one document: status 200 (or 304 for a conditional request),
// at most maxDocumentSize bytes, within timeout.
func get(ctx context.Context, client *http.Client, timeout time.Duration, rawURL, etag, accept string) (body []byte, newETag string, notModified bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: %w", redact(rawURL), err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "gatehouse")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", false, err // *url.Error: names the method and the redacted URL
	}
	defer resp.Body.Close()
	if etag != "" && resp.StatusCode == http.StatusNotModified {
		return nil, "", true, nil
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, "", false, fmt.Errorf("GET %s: status %s", redact(rawURL), resp.Status)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: reading the body: %w", redact(rawURL), err)
	}
	if len(body) > maxDocumentSize {
		return nil, "", false, fmt.Errorf("GET %s: response larger than %d bytes", redact(rawURL), maxDocumentSize)
	}
	return body, resp.Header.Get("ETag"), false, nil
}

// redact drops any password from a URL for a log line.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}
