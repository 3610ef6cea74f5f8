package devissuer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// oauthError is an error response of the token endpoint (RFC 6749 §5.2).
type oauthError struct {
	status      int
	code        string
	description string
	// basic says the client tried HTTP Basic authentication: a 401 then
	// carries a Basic challenge.
	basic bool
}

func (e *oauthError) write(w http.ResponseWriter) {
	if e.status == http.StatusUnauthorized && e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="devissuer"`)
	}
	w.Header().Set("Pragma", "no-cache")
	body := map[string]string{"error": e.code}
	if e.description != "" {
		body["error_description"] = e.description
	}
	writeJSON(w, e.status, body)
}

func invalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: desc}
}

func invalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: desc}
}

// serveToken is the token endpoint (RFC 6749 §3.2).
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		invalidRequest("the body is not a form").write(w)
		return
	}
	var (
		resp map[string]any
		oerr *oauthError
	)
	switch grant := r.PostForm.Get("grant_type"); grant {
	case "client_credentials":
		resp, oerr = i.clientCredentials(r)
	case "authorization_code":
		resp, oerr = i.authorizationCode(r)
	case "":
		oerr = invalidRequest("grant_type is missing")
	default:
		oerr = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type"}
	}
	if oerr != nil {
		oerr.write(w)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// authenticateClient authenticates the client by HTTP Basic (RFC 6749
// §2.3.1, with form-encoded id and secret) or by client_id and
// client_secret form fields, never both. A client without a secret is a
// public client: it is identified by client_id alone, and public reports
// so. Secrets are compared in constant time, over their SHA-256 so that
// their lengths do not show either.
func (i *Issuer) authenticateClient(r *http.Request) (c *Client, public bool, oerr *oauthError) {
	id, secret, basic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if basic {
		if formSecret != "" {
			return nil, false, invalidRequest("use one client authentication method, not two")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, false, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", basic: true}
		}
		if formID != "" && formID != id {
			return nil, false, invalidRequest("client_id does not match the authenticated client")
		}
	} else {
		id, secret = formID, formSecret
	}
	unauthorized := &oauthError{status: http.StatusUnauthorized, code: "invalid_client", basic: basic}
	c = i.clients[id]
	want := "\x00no client\x00"
	if c != nil {
		want = c.Secret
	}
	got, exp := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(want))
	match := subtle.ConstantTimeCompare(got[:], exp[:]) == 1
	switch {
	case c == nil:
		return nil, false, unauthorized
	case c.Secret == "" && secret == "" && !basic:
		return c, true, nil
	case c.Secret == "" || !match:
		return nil, false, unauthorized
	}
	return c, false, nil
}

// clientCredentials issues an access token to the client itself (RFC 6749
// §4.4).
func (i *Issuer) clientCredentials(r *http.Request) (map[string]any, *oauthError) {
	c, public, oerr := i.authenticateClient(r)
	if oerr != nil {
		return nil, oerr
	}
	if public {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client",
			description: "a public client cannot use client_credentials"}
	}
	scopes := c.Scopes
	if requested := strings.Fields(r.PostForm.Get("scope")); len(requested) > 0 {
		for _, s := range requested {
			if !slices.Contains(c.Scopes, s) {
				return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope",
					description: "a requested scope is not granted to this client"}
			}
		}
		scopes = requested
	}
	sub := c.Subject
	if sub == "" {
		sub = c.ID
	}
	claims := i.accessClaims(c, sub, c.Groups, c.Roles, scopes)
	token, err := i.Mint(claims)
	if err != nil {
		return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error"}
	}
	return tokenResponse(token, i.ttl, scopes), nil
}

// accessClaims are the claims of an RFC 9068 access token.
func (i *Issuer) accessClaims(c *Client, sub string, groups, roles, scopes []string) map[string]any {
	aud := c.Audience
	if aud == "" {
		aud = i.audience
	}
	claims := map[string]any{
		"sub":       sub,
		"aud":       aud,
		"client_id": c.ID,
		"jti":       randomString(16),
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if len(groups) > 0 {
		claims["groups"] = groups
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	return claims
}

func tokenResponse(token string, ttl time.Duration, scopes []string) map[string]any {
	resp := map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int(ttl / time.Second),
	}
	if len(scopes) > 0 {
		resp["scope"] = strings.Join(scopes, " ")
	}
	return resp
}

// authorizationCode exchanges a code from /authorize (RFC 6749 §4.1.3),
// checking its PKCE verifier (RFC 7636 §4.6). A code is single-use: it is
// consumed by the first exchange attempt, successful or not.
func (i *Issuer) authorizationCode(r *http.Request) (map[string]any, *oauthError) {
	c, _, oerr := i.authenticateClient(r)
	if oerr != nil {
		return nil, oerr
	}
	code := r.PostForm.Get("code")
	if code == "" {
		return nil, invalidRequest("code is missing")
	}
	i.mu.Lock()
	ac := i.codes[code]
	delete(i.codes, code)
	i.mu.Unlock()
	now := i.now()
	switch {
	case ac == nil || now.After(ac.expires):
		return nil, invalidGrant("the code is unknown, used or expired")
	case ac.clientID != c.ID:
		return nil, invalidGrant("the code was issued to another client")
	case r.PostForm.Get("redirect_uri") != ac.redirectURI:
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	}
	verifier := r.PostForm.Get("code_verifier")
	if !validVerifier(verifier) {
		return nil, invalidGrant("code_verifier is missing or malformed")
	}
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(challenge), []byte(ac.challenge)) != 1 {
		return nil, invalidGrant("code_verifier does not match the code_challenge")
	}

	u := ac.user
	access, err := i.Mint(i.accessClaims(c, u.Subject, u.Groups, u.Roles, ac.scopes))
	if err != nil {
		return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error"}
	}
	resp := tokenResponse(access, i.ttl, ac.scopes)
	if slices.Contains(ac.scopes, "openid") {
		idClaims := map[string]any{
			"sub":       u.Subject,
			"aud":       c.ID,
			"azp":       c.ID,
			"auth_time": ac.authTime.Unix(),
		}
		if ac.nonce != "" {
			idClaims["nonce"] = ac.nonce
		}
		if u.Name != "" {
			idClaims["name"] = u.Name
		}
		if u.Email != "" {
			idClaims["email"] = u.Email
		}
		if len(u.Groups) > 0 {
			idClaims["groups"] = u.Groups
		}
		if len(u.Roles) > 0 {
			idClaims["roles"] = u.Roles
		}
		idToken, err := i.MintWithHeader(map[string]any{"typ": "JWT"}, idClaims)
		if err != nil {
			return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error"}
		}
		resp["id_token"] = idToken
	}
	return resp, nil
}

// validVerifier checks RFC 7636 §4.1: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}
