package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of ProviderOptions.
const (
	DefaultClockSkew    = 30 * time.Second
	DefaultMaxTokenSize = 8192
	DefaultAlgorithm    = "RS256"
)

// supportedAlgorithms are the JWS algorithms a provider may accept: the
// asymmetric ones of RFC 7518 and RFC 8037. HMAC algorithms are excluded
// because the gateway only ever holds public keys (RFC 8725 §2.1, §3.1).
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
}

// ValidateAlgorithm reports whether name may be listed in
// ProviderOptions.Algorithms. "none", the HMAC algorithms (HS256/384/512)
// and unknown names are refused with a message fit for a config error.
// Names are case-sensitive, as in RFC 7518.
func ValidateAlgorithm(name string) error {
	switch {
	case contains(supportedAlgorithms, name):
		return nil
	case strings.EqualFold(name, "none"):
		return errors.New(`algorithm "none" is never accepted: it means an unsigned token`)
	case strings.HasPrefix(strings.ToUpper(name), "HS"):
		return fmt.Errorf("algorithm %q is not accepted: HMAC tokens cannot be verified with an issuer's public keys (RFC 8725 §3.1)", name)
	}
	return fmt.Errorf("unknown algorithm %q; accepted: %s", name, strings.Join(supportedAlgorithms, ", "))
}

// ProviderOptions describe one trusted issuer of bearer JWTs.
type ProviderOptions struct {
	// Name is the configured name (Principal.Provider).
	Name string
	// Issuer is the exact iss value of its tokens.
	Issuer string
	// Audiences are the accepted aud values; a token must carry one. At
	// least one is required (RFC 8725 §3.9).
	Audiences []string
	// Algorithms are the accepted alg values (default [RS256]); each must
	// pass ValidateAlgorithm.
	Algorithms []string
	// ClockSkew is the leeway for exp, nbf and iat (default 30s).
	ClockSkew time.Duration
	// RequireType, when set, is the media type the typ header must have,
	// e.g. "at+jwt" (RFC 9068 §4). It is compared case-insensitively and
	// with or without the "application/" prefix (RFC 7515 §4.1.9).
	RequireType string
	// MaxTokenSize is the longest accepted token in bytes (default 8192).
	MaxTokenSize int
	// SubjectClaim, GroupsClaim, RolesClaim and ScopesClaim are dotted
	// claim paths (see ClaimValues). Defaults: "sub", "groups", "roles" and
	// "scope"; with the default scope claim, "scp" (Entra ID, Okta) is read
	// when "scope" is absent.
	SubjectClaim, GroupsClaim, RolesClaim, ScopesClaim string
}

// Provider is a compiled ProviderOptions bound to the key set of its
// issuer. It is immutable.
type Provider struct {
	name        string
	issuer      string
	audiences   []string
	algs        []jose.SignatureAlgorithm
	skew        time.Duration
	requireType string // normalized; "" = any
	maxSize     int
	subject     string
	groups      string
	roles       string
	scopes      string
	scpFallback bool
	keys        *KeySet
}

// NewProvider checks opts, applies the defaults and binds the provider to
// keys, which must be the key set of the same issuer.
func NewProvider(opts ProviderOptions, keys *KeySet) (*Provider, error) {
	var errs []error
	if opts.Name == "" {
		errs = append(errs, errors.New("provider name is empty"))
	}
	if opts.Issuer == "" {
		errs = append(errs, errors.New("issuer is empty"))
	}
	if len(opts.Audiences) == 0 {
		errs = append(errs, errors.New("at least one audience is required"))
	}
	for _, a := range opts.Audiences {
		if a == "" {
			errs = append(errs, errors.New("an audience is empty"))
		}
	}
	if opts.ClockSkew < 0 {
		errs = append(errs, errors.New("clock skew is negative"))
	}
	if opts.MaxTokenSize < 0 {
		errs = append(errs, errors.New("max token size is negative"))
	}
	if keys == nil {
		errs = append(errs, errors.New("no key set"))
	} else if keys.issuer != opts.Issuer {
		errs = append(errs, fmt.Errorf("key set is for issuer %q, not %q", keys.issuer, opts.Issuer))
	}
	algNames := opts.Algorithms
	if len(algNames) == 0 {
		algNames = []string{DefaultAlgorithm}
	}
	p := &Provider{
		name:        opts.Name,
		issuer:      opts.Issuer,
		audiences:   append([]string(nil), opts.Audiences...),
		skew:        opts.ClockSkew,
		requireType: normalizeType(opts.RequireType),
		maxSize:     opts.MaxTokenSize,
		subject:     opts.SubjectClaim,
		groups:      opts.GroupsClaim,
		roles:       opts.RolesClaim,
		scopes:      opts.ScopesClaim,
		keys:        keys,
	}
	for _, a := range algNames {
		if err := ValidateAlgorithm(a); err != nil {
			errs = append(errs, err)
			continue
		}
		if !contains(p.algNames(), a) {
			p.algs = append(p.algs, jose.SignatureAlgorithm(a))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("identity provider %q: %w", opts.Name, err)
	}
	if p.skew == 0 {
		p.skew = DefaultClockSkew
	}
	if p.maxSize == 0 {
		p.maxSize = DefaultMaxTokenSize
	}
	if p.subject == "" {
		p.subject = "sub"
	}
	if p.groups == "" {
		p.groups = "groups"
	}
	if p.roles == "" {
		p.roles = "roles"
	}
	if p.scopes == "" || p.scopes == "scope" {
		p.scopes, p.scpFallback = "scope", true
	}
	return p, nil
}

// Name returns the configured name of the provider.
func (p *Provider) Name() string { return p.name }

// KeySet returns the key set the provider verifies with.
func (p *Provider) KeySet() *KeySet { return p.keys }

func (p *Provider) algNames() []string {
	out := make([]string, len(p.algs))
	for i, a := range p.algs {
		out[i] = string(a)
	}
	return out
}

// normalizeType lowercases a typ value and drops an "application/" prefix
// (RFC 7515 §4.1.9: the prefix may be omitted, media types are
// case-insensitive).
func normalizeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

// VerifierOptions tune a Verifier.
type VerifierOptions struct {
	// CacheSize is the number of verified tokens kept: 0 means the default
	// (10000), a negative number disables the cache.
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultCacheSize is the default number of cached verified tokens.
const DefaultCacheSize = 10000

// Verifier verifies bearer JWTs against a fixed set of providers, one per
// issuer. It belongs to one configuration snapshot; its token cache goes
// with it. It is safe for concurrent use.
type Verifier struct {
	byIssuer map[string]*Provider
	maxSize  int
	now      func() time.Time
	system   bool // now is the system clock
	cache    *tokenCache
}

// NewVerifier returns a verifier for providers; two providers with the same
// issuer are an error, since the issuer alone picks the provider.
func NewVerifier(providers []*Provider, opts VerifierOptions) (*Verifier, error) {
	v := &Verifier{byIssuer: make(map[string]*Provider, len(providers)), now: opts.Now}
	if v.now == nil {
		v.now, v.system = time.Now, true
	}
	for _, p := range providers {
		if p == nil {
			return nil, errors.New("identity: nil provider")
		}
		if other, dup := v.byIssuer[p.issuer]; dup {
			return nil, fmt.Errorf("identity: providers %q and %q have the same issuer %q", other.name, p.name, p.issuer)
		}
		v.byIssuer[p.issuer] = p
		v.maxSize = max(v.maxSize, p.maxSize)
	}
	if v.maxSize == 0 {
		v.maxSize = DefaultMaxTokenSize
	}
	switch {
	case opts.CacheSize == 0:
		v.cache = newTokenCache(DefaultCacheSize)
	case opts.CacheSize > 0:
		v.cache = newTokenCache(opts.CacheSize)
	}
	return v, nil
}

// Verify checks a bearer JWT (RFC 7519, RFC 7515 compact serialization,
// RFC 8725, RFC 9068) and returns its principal. Every error is an *Error.
//
// The unverified iss claim only chooses the provider (an exact match);
// its key set is the only source of keys, and the header's alg must be one
// the provider accepts. Embedded jwk, jku, x5u and x5c headers are never
// used. After the signature: iss again, exp (required), nbf and iat (with
// the provider's clock skew), aud, and typ when required.
//
// The returned principal is shared (the cache hands it to every request
// with the same token): do not modify it or its Claims. Claims are decoded
// with json.Decoder.UseNumber, so numbers are json.Number.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, fail(ReasonMissing, "no token was presented", nil)
	}
	if len(token) > v.maxSize {
		return nil, fail(ReasonTooLarge, "the token is too large", nil)
	}
	now := v.now()
	if v.cache != nil {
		switch p, st := v.cache.get(token, now); st {
		case cacheHit:
			return p, nil
		case cacheExpired:
			return nil, fail(ReasonExpired, "the token has expired", nil)
		}
	}
	p, e, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(e)
	}
	return p, nil
}

// Cached returns the caller of token when the cache of verified tokens
// holds it and it has not expired: what Verify would return, without
// verifying anything. It reports false otherwise (no cache, a token not
// seen or evicted, an expired one); Verify then says why. arrived is when
// the request that carries the token came: on the system clock, the
// token's expiry is checked against it instead of a clock reading of its
// own (zero: against the clock).
func (v *Verifier) Cached(token string, arrived time.Time) (*Principal, bool) {
	if v == nil || v.cache == nil || token == "" || len(token) > v.maxSize {
		return nil, false
	}
	now := arrived
	if !v.system || now.IsZero() {
		now = v.now()
	}
	p, st := v.cache.get(token, now)
	return p, st == cacheHit
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Principal, *cacheEntry, *Error) {
	first := strings.IndexByte(token, '.')
	second := -1
	if first >= 0 {
		if i := strings.IndexByte(token[first+1:], '.'); i >= 0 {
			second = first + 1 + i
		}
	}
	if first < 0 || second < 0 || strings.IndexByte(token[second+1:], '.') >= 0 {
		return nil, nil, fail(ReasonMalformed, "the token is not a compact JWS of three dot-separated parts", nil)
	}
	iss, ferr := peekIssuer(token[first+1 : second])
	if ferr != nil {
		return nil, nil, ferr
	}
	p := v.byIssuer[iss]
	if p == nil {
		return nil, nil, fail(ReasonUnknownIssuer, "the token's issuer is not trusted", nil)
	}
	if len(token) > p.maxSize {
		return nil, nil, fail(ReasonTooLarge, "the token is too large", nil)
	}

	jws, err := jose.ParseSignedCompact(token, p.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, nil, fail(ReasonAlgNotAllowed, "the token's signing algorithm is not accepted", nil)
		}
		return nil, nil, fail(ReasonMalformed, "the token is not a valid JWS", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, fail(ReasonMalformed, "the token does not have exactly one signature", nil)
	}
	hdr := jws.Signatures[0].Protected
	if _, ok := hdr.ExtraHeaders["crit"]; ok {
		// RFC 7515 §4.1.11: extensions listed in crit must be understood;
		// the gateway understands none (b64=false is not for JWTs).
		return nil, nil, fail(ReasonMalformed, "the token has critical header parameters that are not supported", nil)
	}
	if _, ok := hdr.ExtraHeaders["b64"]; ok {
		return nil, nil, fail(ReasonMalformed, "the token has an unencoded payload", nil)
	}

	cands, gen, kerr := p.keys.candidates(ctx, hdr.KeyID, hdr.Algorithm)
	if kerr != nil {
		return nil, nil, kerr
	}
	payload, matched, kerr := verifyWith(jws, cands)
	if matched == nil && kerr == nil {
		// No cached key verifies it: the issuer may have rotated a key
		// without a kid, or under a kid it used before. Try once with
		// fresh keys (fetched at most once per cooldown).
		payload, matched, kerr = verifyWith(jws, p.keys.refetched(ctx, gen, hdr.KeyID, hdr.Algorithm))
	}
	if kerr != nil {
		return nil, nil, kerr
	}
	if matched == nil {
		return nil, nil, fail(ReasonBadSignature, "the token's signature is not valid", nil)
	}

	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, nil, fail(ReasonMalformed, "the token's claims are not a JSON object", nil)
	}
	if s, _ := claims["iss"].(string); s != p.issuer {
		return nil, nil, fail(ReasonUnknownIssuer, "the token's issuer is not trusted", nil)
	}
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, nil, fail(ReasonMalformed, "the token's exp claim is not a number", nil)
	case !ok:
		return nil, nil, fail(ReasonMissingClaim, "the token has no exp claim", nil)
	case now.After(exp.Add(p.skew)):
		return nil, nil, fail(ReasonExpired, "the token has expired", nil)
	}
	nbf, ok, err := numericDate(claims, "nbf")
	switch {
	case err != nil:
		return nil, nil, fail(ReasonMalformed, "the token's nbf claim is not a number", nil)
	case ok && now.Add(p.skew).Before(nbf):
		return nil, nil, fail(ReasonNotYetValid, "the token is not valid yet", nil)
	}
	iat, ok, err := numericDate(claims, "iat")
	switch {
	case err != nil:
		return nil, nil, fail(ReasonMalformed, "the token's iat claim is not a number", nil)
	case ok && iat.After(now.Add(p.skew)):
		return nil, nil, fail(ReasonIssuedInFuture, "the token was issued in the future", nil)
	}
	if !AudienceMatches(claims["aud"], p.audiences) {
		return nil, nil, fail(ReasonWrongAudience, "the token is not meant for this audience", nil)
	}
	if p.requireType != "" {
		typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
		if normalizeType(typ) != p.requireType {
			return nil, nil, fail(ReasonWrongType, "the token is not of the required type", nil)
		}
	}
	subject := claimString(claims, p.subject)
	if subject == "" {
		return nil, nil, fail(ReasonMissingClaim, "the token has no subject claim", nil)
	}
	scopes := ScopeValues(claims, p.scopes)
	if p.scpFallback {
		if _, present := claims["scope"]; !present {
			scopes = ScopeValues(claims, "scp")
		}
	}
	pr := &Principal{
		Credential: CredentialJWT,
		Subject:    subject,
		Provider:   p.name,
		Issuer:     p.issuer,
		Groups:     normalizeSet(ClaimValues(claims, p.groups)),
		Roles:      normalizeSet(ClaimValues(claims, p.roles)),
		Scopes:     normalizeSet(scopes),
		Claims:     claims,
		KeyID:      matched.ident.kid,
		Expires:    exp,
	}
	entry := &cacheEntry{token: token, principal: pr, expires: exp.Add(p.skew), keys: p.keys, key: matched.ident, keysGen: p.keys.holdingGen(matched.ident)}
	return pr, entry, nil
}

// peekIssuer reads iss from the unverified payload segment, only to choose
// the provider.
func peekIssuer(segment string) (string, *Error) {
	raw, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return "", fail(ReasonMalformed, "the token's payload is not base64url", nil)
	}
	var c struct {
		Iss *string `json:"iss"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fail(ReasonMalformed, "the token's claims are not a JSON object", nil)
	}
	if c.Iss == nil || *c.Iss == "" {
		return "", fail(ReasonMissingClaim, "the token has no iss claim", nil)
	}
	return *c.Iss, nil
}

// decodeClaims decodes a verified payload: one JSON object, numbers kept
// as json.Number, nothing after it.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("claims are null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the claims object")
	}
	return claims, nil
}

// verifyWith checks jws's signature against each candidate in turn and
// returns the payload and the key that verified it (nil when none did).
func verifyWith(jws *jose.JSONWebSignature, cands []*keyEntry) ([]byte, *keyEntry, *Error) {
	for _, c := range cands {
		pl, err := jws.Verify(c.jwk)
		if err == nil {
			return pl, c, nil
		}
		if errors.Is(err, jose.ErrUnsupportedCriticalHeader) {
			return nil, nil, fail(ReasonMalformed, "the token has critical header parameters that are not supported", nil)
		}
	}
	return nil, nil, nil
}
