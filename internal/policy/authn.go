package policy

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// TokenVerifier verifies a bearer token.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*identity.Principal, error)
}

// CachedTokens is a TokenVerifier that can also answer from its cache of
// verified tokens alone (identity.Verifier): a token found there was
// verified before, so the bearer step skips its syntax checks for it.
type CachedTokens interface {
	// Cached answers for a request that arrived at arrived (zero: not
	// known), which a verifier on the system clock may check the token's
	// expiry against.
	Cached(token string, arrived time.Time) (*identity.Principal, bool)
}

// KeyLookup finds the consumer of an API key.
type KeyLookup interface {
	Lookup(key string) (*identity.Principal, bool)
}

// AuthnOptions configure the authentication step of one operation.
type AuthnOptions struct {
	// Accept lists the accepted credential types, in the order they are
	// tried: jwt, then api_key, then mtls.
	Accept []identity.Credential
	// Providers restricts JWTs to these identity providers; empty means any
	// configured provider.
	Providers []string
	Tokens    TokenVerifier
	Keys      KeyLookup
	// APIKeyHeader is the canonical name of the API key header;
	// APIKeyHeaderName is the name as configured, for the challenge.
	APIKeyHeader     string
	APIKeyHeaderName string
	Realm            string
	// Observe, when set, is told the reason of every failure.
	Observe func(reason string)
}

// Authenticate returns the step that establishes the caller. The first
// accepted credential the request presents decides: a present but invalid
// credential is a 401, never a fall-through to the next type. A request
// with no accepted credential is a 401 with the challenges of every
// accepted type.
func Authenticate(o AuthnOptions) Step {
	var challenges []string
	for _, c := range o.Accept {
		switch c {
		case identity.CredentialJWT:
			challenges = append(challenges, BearerChallenge(o.Realm, "", "", ""))
		case identity.CredentialAPIKey:
			challenges = append(challenges, `ApiKey realm="`+quoteEscape(o.Realm)+`", header="`+o.APIKeyHeaderName+`"`)
		}
	}
	a := &authenticator{o: o, challenges: challenges}
	a.cached, _ = o.Tokens.(CachedTokens)
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			x := ExchangeFrom(r.Context())
			p, err := a.authenticate(r, x)
			if err != nil {
				pe := AsError(err)
				if o.Observe != nil {
					o.Observe(pe.Reason)
				}
				return pe
			}
			if x != nil && x.Record != nil {
				// PrincipalFrom finds it there: no context value and
				// request copy per request.
				x.Record.Principal = p
				return next.ServeHTTP(w, r)
			}
			return next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

type authenticator struct {
	o          AuthnOptions
	challenges []string
	cached     CachedTokens // o.Tokens, when it is one
}

// authenticate establishes the caller of r, whose exchange is x (nil
// when it has none).
func (a *authenticator) authenticate(r *http.Request, x *Exchange) (*identity.Principal, error) {
	for _, c := range a.o.Accept {
		var (
			p       *identity.Principal
			present bool
			err     error
		)
		switch c {
		case identity.CredentialJWT:
			p, present, err = a.bearer(r, x)
		case identity.CredentialAPIKey:
			p, present, err = a.apiKey(r)
		case identity.CredentialMTLS:
			p, present = clientCertificate(r)
		}
		if present {
			return p, err
		}
	}
	return nil, a.unauthorized("missing_credentials", "", "No credentials were presented.")
}

func (a *authenticator) unauthorized(reason, bearerError, detail string) *Error {
	h := http.Header{}
	for _, c := range a.challenges {
		if bearerError != "" && strings.HasPrefix(c, "Bearer") {
			c = BearerChallenge(a.o.Realm, bearerError, detail, "")
		}
		h.Add("WWW-Authenticate", c)
	}
	return &Error{Status: http.StatusUnauthorized, Type: "unauthorized", Title: "Unauthorized",
		Detail: detail, Reason: reason, Header: h}
}

// bearer reads an RFC 6750 bearer token from the Authorization header.
// Other schemes (Basic, say) count as no bearer credential.
func (a *authenticator) bearer(r *http.Request, x *Exchange) (*identity.Principal, bool, error) {
	values := r.Header["Authorization"] // canonical: no canonicalization per request
	if len(values) == 0 {
		return nil, false, nil
	}
	if len(values) > 1 {
		return nil, true, BadRequest("invalid_request:duplicate_authorization", "The request has more than one Authorization header.")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if scheme != "Bearer" && !strings.EqualFold(scheme, "Bearer") { // the usual spelling first: no folding
		return nil, false, nil
	}
	token = strings.TrimSpace(token)
	if a.cached != nil {
		// A token verified before passed the checks below then (a token
		// with white space in it does not verify): two scans of a
		// kilobyte-long token fewer per request.
		var arrived time.Time
		if x != nil {
			arrived = x.Start
		}
		if p, ok := a.cached.Cached(token, arrived); ok {
			return a.accepted(p)
		}
	}
	// Two vectorized byte searches: strings.ContainsAny scans a token of
	// a kilobyte one byte at a time (about 0.5 µs).
	if token == "" || strings.IndexByte(token, ' ') >= 0 || strings.IndexByte(token, '\t') >= 0 {
		e := BadRequest("invalid_request:malformed_bearer", "The Authorization header is not 'Bearer <token>'.")
		e.Header = http.Header{"Www-Authenticate": {BearerChallenge(a.o.Realm, "invalid_request", "", "")}}
		return nil, true, e
	}
	p, err := a.o.Tokens.Verify(r.Context(), token)
	if err != nil {
		var ie *identity.Error
		if errors.As(err, &ie) {
			if ie.Reason == identity.ReasonIssuerUnavailable {
				e := Unavailable("issuer_unavailable", "The identity provider's keys are not available yet; try again shortly.", err)
				e.Header = http.Header{"Retry-After": {"5"}}
				return nil, true, e
			}
			e := a.unauthorized("invalid_token:"+string(ie.Reason), "invalid_token", ie.Detail)
			e.Cause = err
			return nil, true, e
		}
		e := a.unauthorized("invalid_token", "invalid_token", "The access token is not valid.")
		e.Cause = err
		return nil, true, e
	}
	return a.accepted(p)
}

// accepted returns the caller of a valid token, unless the token's issuer
// is not one the operation accepts.
func (a *authenticator) accepted(p *identity.Principal) (*identity.Principal, bool, error) {
	if len(a.o.Providers) > 0 && !containsString(a.o.Providers, p.Provider) {
		return nil, true, a.unauthorized("invalid_token:issuer_not_accepted", "invalid_token", "Tokens from this issuer are not accepted by this API.")
	}
	return p, true, nil
}

func (a *authenticator) apiKey(r *http.Request) (*identity.Principal, bool, error) {
	values := r.Header[a.o.APIKeyHeader]
	if len(values) == 0 {
		return nil, false, nil
	}
	if len(values) > 1 {
		return nil, true, BadRequest("invalid_request:duplicate_api_key", "The request has more than one API key header.")
	}
	if a.o.Keys != nil {
		if p, ok := a.o.Keys.Lookup(values[0]); ok {
			return p, true, nil
		}
	}
	return nil, true, a.unauthorized("invalid_api_key", "", "The API key is not valid.")
}

// clientCertificate returns the principal of a verified TLS client
// certificate. Only chains verified against the listener's client CA
// count; a presented but unverified certificate is no credential.
func clientCertificate(r *http.Request) (*identity.Principal, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, false
	}
	cert := r.TLS.VerifiedChains[0][0]
	p := identity.NewStaticPrincipal(identity.CredentialMTLS, certSubject(cert), "", nil, nil, nil)
	p.Issuer = cert.Issuer.String()
	p.Expires = cert.NotAfter
	return p, true
}

// certSubject names a client certificate: its first URI SAN (SPIFFE IDs),
// else its first DNS SAN, else its common name.
func certSubject(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	default:
		return c.Subject.CommonName
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
