package config

import (
	"fmt"
	"net/url"
	"strings"
)

// ParseVaultRef splits the reference of a ${vault:...} secret into the KV
// v2 API path (mount/data/path, as read at /v1/<path>) and the field of
// the secret's data. The path must name the data segment explicitly, so
// that the mount is never guessed: secret/data/gatehouse#api_key reads
// field api_key of the secret that `vault kv get secret/gatehouse` shows.
func ParseVaultRef(ref string) (path, field string, err error) {
	path, field, ok := strings.Cut(ref, "#")
	if !ok || field == "" {
		return "", "", fmt.Errorf("vault reference %q needs a field: ${vault:mount/data/path#field}", ref)
	}
	if strings.Contains(field, "#") {
		return "", "", fmt.Errorf("vault reference %q has more than one '#'", ref)
	}
	segs := strings.Split(path, "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", "", fmt.Errorf("vault reference %q: the path must be mount/data/path, without empty, '.' or '..' segments or a leading '/'", ref)
		}
	}
	data := -1
	for i, s := range segs {
		if s == "data" && i > 0 {
			data = i
			break
		}
	}
	if data < 0 || data == len(segs)-1 {
		return "", "", fmt.Errorf("vault reference %q: a KV v2 path names its data segment, e.g. secret/data/gatehouse#field for the secret gatehouse in mount secret", ref)
	}
	return path, field, nil
}

// hopByHop are request headers a backend token may not be carried in.
var reservedTokenHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Authenticate", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Content-Type", "Cookie", "Traceparent"}

// backendIdentity validates backend_identity, backends[].identity,
// backends[].tls client certificates and secrets.vault.
func (v *validator) backendIdentity() {
	bi := v.c.BackendIdentity
	usesJWT := false
	tokenHeader := map[string]string{} // backend name → canonical header
	for i, b := range v.c.Backends {
		p := Index("backends", i)
		if b.TLS != nil {
			tp := Field(p, "tls")
			switch {
			case b.TLS.ClientCertFile != "" && b.TLS.ClientKeyFile == "":
				v.r.Errorf(Field(tp, "client_cert_file"), "client_cert_file needs client_key_file")
			case b.TLS.ClientCertFile == "" && b.TLS.ClientKeyFile != "":
				v.r.Errorf(Field(tp, "client_key_file"), "client_key_file needs client_cert_file")
			}
		}
		if b.Identity == nil || b.Identity.JWT == nil {
			continue
		}
		usesJWT = true
		jp := Field(p, "identity.jwt")
		j := b.Identity.JWT
		if bi == nil || bi.Issuer == "" {
			v.r.Errorf(jp, "minting tokens needs backend_identity.issuer (the iss of the gateway's tokens)")
		}
		if _, written := v.r.doc.positions[Field(jp, "audience")]; written && strings.TrimSpace(j.Audience) == "" {
			v.r.Errorf(Field(jp, "audience"), "audience must not be empty")
		}
		if j.Algorithm != "" && !contains(BackendTokenAlgorithms, j.Algorithm) {
			why := ""
			switch {
			case strings.HasPrefix(j.Algorithm, "HS"):
				why = ": HMAC would make every backend hold the gateway's signing secret"
			case strings.EqualFold(j.Algorithm, "none"):
				why = ": tokens must be signed"
			}
			v.r.Errorf(Field(jp, "algorithm"), "algorithm %q is not allowed%s (allowed: %s)", j.Algorithm, why, strings.Join(BackendTokenAlgorithms, ", "))
		}
		if j.TTL.Set && (j.TTL.Duration < MinBackendTokenTTL || j.TTL.Duration > MaxBackendTokenTTL) {
			v.r.Errorf(Field(jp, "ttl"), "must be between 10s and 1h")
		}
		seen := map[string]bool{}
		for k, c := range j.Claims {
			cp := Index(Field(jp, "claims"), k)
			switch {
			case c == "sub" || c == "client_id" || c == "iss" || c == "aud" || c == "exp" || c == "iat" || c == "nbf" || c == "jti":
				v.r.Errorf(cp, "%q is always set; list only caller attributes (%s)", c, strings.Join(BackendTokenClaims, ", "))
			case !contains(BackendTokenClaims, c):
				msg := fmt.Sprintf("unknown claim %q (known: %s)", c, strings.Join(BackendTokenClaims, ", "))
				if s := suggest(c, BackendTokenClaims); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				v.r.Errorf(cp, "%s", msg)
			case seen[c]:
				v.r.Errorf(cp, "claim %q is listed twice", c)
			}
			seen[c] = true
		}
		h := j.Header
		if h == "" {
			h = DefaultBackendTokenHeader
		}
		switch {
		case !headerNameRE.MatchString(h):
			v.r.Errorf(Field(jp, "header"), "%q is not a valid header name", h)
		case containsFold(reservedTokenHeaders, h):
			v.r.Errorf(Field(jp, "header"), "%q cannot carry a token (it is hop-by-hop or has a meaning of its own)", h)
		}
		tokenHeader[b.Name] = strings.ToLower(h)
	}
	for i, a := range v.c.APIs {
		if h, ok := tokenHeader[a.Backend]; ok && a.PassCredential && (h == "authorization" || h == strings.ToLower(v.c.APIKeys.Header) || (v.c.APIKeys.Header == "" && h == strings.ToLower(DefaultAPIKeyHeader))) {
			v.r.Errorf(Field(Index("apis", i), "pass_credential"), "backend %q receives a minted token in %s, which would replace the caller's credential; set the backend's identity.jwt.header to another header", a.Backend, h)
		}
	}
	if bi != nil {
		v.backendIdentitySection(bi, usesJWT)
	}
	v.vault()
}

func (v *validator) backendIdentitySection(bi *BackendIdentity, used bool) {
	const p = "backend_identity"
	if bi.Issuer != "" {
		v.httpURL(Field(p, "issuer"), bi.Issuer)
		if u, err := url.Parse(bi.Issuer); err == nil && (u.RawQuery != "" || strings.HasSuffix(u.Path, "/")) {
			v.r.Errorf(Field(p, "issuer"), "%q must have no query and no trailing '/'", bi.Issuer)
		}
	} else if !used {
		if _, written := v.r.doc.positions[p]; written {
			v.r.Errorf(Field(p, "issuer"), "missing the issuer (the iss of the gateway's tokens)")
		}
	}
	if bi.JWKSURI != "" {
		v.httpURL(Field(p, "jwks_uri"), bi.JWKSURI)
	}
	if bi.ClockSkew.Duration > MaxClockSkew {
		v.r.Errorf(Field(p, "clock_skew"), "must be at most %s", MaxClockSkew)
	}
	iv := bi.Rotation.Interval.Or(DefaultKeyRotationInterval)
	if bi.Rotation.Interval.Set && (iv < MinKeyRotationInterval || iv > MaxKeyRotationInterval) {
		v.r.Errorf(Field(p, "rotation.interval"), "must be between 1h and 90d")
	}
	pp := bi.Rotation.Prepublish.Or(DefaultKeyPrepublish)
	if bi.Rotation.Prepublish.Set && pp < MinKeyPrepublish {
		v.r.Errorf(Field(p, "rotation.prepublish"), "must be at least %s, so that backends see a new key before it signs", MinKeyPrepublish)
	} else if pp >= iv {
		v.r.Errorf(Field(p, "rotation.prepublish"), "must be shorter than rotation.interval (%s)", iv)
	}
	if bi.CacheSize < 0 || bi.CacheSize > 1_000_000 {
		v.r.Errorf(Field(p, "cache_size"), "must be between 0 (default) and 1000000")
	}
}

func (v *validator) vault() {
	vc := v.c.Secrets.Vault
	if vc == nil {
		return
	}
	const p = "secrets.vault"
	if vc.Address != "" {
		v.httpURL(Field(p, "address"), vc.Address)
	}
	if vc.Timeout.Set && (vc.Timeout.Duration <= 0 || vc.Timeout.Duration > MaxVaultTimeout) {
		v.r.Errorf(Field(p, "timeout"), "must be greater than zero and at most %s", MaxVaultTimeout)
	}
	if vc.RefreshInterval.Duration != 0 && vc.RefreshInterval.Duration < MinVaultRefresh {
		v.r.Errorf(Field(p, "refresh_interval"), "must be 0 (off) or at least %s", MinVaultRefresh)
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
