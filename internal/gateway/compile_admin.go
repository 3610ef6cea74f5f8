package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"slices"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// AdminGrant is one admin role a credential holds. Services scopes the
// registrar role ("*" is every service); it is empty for the others.
type AdminGrant struct {
	Role     string   `json:"role"`
	Services []string `json:"services,omitempty"`
}

// AdminAccess is the compiled access section of server.admin: who may use
// the admin API. The admin package decides with it; it is part of the
// snapshot so that a reload changes it atomically with everything else.
type AdminAccess struct {
	// InsecureLocal serves loopback callers without credentials as admin.
	InsecureLocal bool
	// ClientCertRequired: /v1 requests must present a verified client
	// certificate.
	ClientCertRequired bool
	// Certificate and ClientCAs are the admin listener's TLS (nil: HTTP).
	Certificate *tls.Certificate
	ClientCAs   *x509.CertPool
	// Tokens verifies bearer JWTs (nil when the admin API takes none).
	Tokens policy.TokenVerifier

	issuers   []string
	audiences []string // server.admin.auth.jwt.audiences; none: any
	bindings  []adminBinding
	keys      *identity.KeyTable
	keyGrant  map[string]AdminGrant // by key name
}

type adminBinding struct {
	grant   AdminGrant
	require policy.Requirement
}

// Admin returns the snapshot's admin access rules.
func (s *Snapshot) Admin() *AdminAccess { return s.admin }

// LookupKey returns the name and grant of an admin API key.
func (a *AdminAccess) LookupKey(key string) (string, AdminGrant, bool) {
	if a.keys == nil {
		return "", AdminGrant{}, false
	}
	p, ok := a.keys.Lookup(key)
	if !ok {
		return "", AdminGrant{}, false
	}
	return p.Subject, a.keyGrant[p.Subject], true
}

// AcceptsIssuer reports whether JWTs of the named identity provider are
// accepted by the admin API.
func (a *AdminAccess) AcceptsIssuer(provider string) bool {
	return slices.Contains(a.issuers, provider)
}

// AcceptsAudience reports whether a verified token is meant for the admin
// API: its aud holds one of server.admin.auth.jwt.audiences (any aud the
// issuer accepts when none is set).
func (a *AdminAccess) AcceptsAudience(p *identity.Principal) bool {
	return len(a.audiences) == 0 || identity.AudienceMatches(p.Claims["aud"], a.audiences)
}

// Grants returns the roles a verified token's principal holds: one per
// role binding whose conditions it meets.
func (a *AdminAccess) Grants(p *identity.Principal) []AdminGrant {
	var out []AdminGrant
	for i := range a.bindings {
		if b := &a.bindings[i]; b.require.Decide(p).Allowed {
			out = append(out, b.grant)
		}
	}
	return out
}

func (c *compiler) adminAccess() {
	a := &c.cfg.Server.Admin
	acc := &AdminAccess{InsecureLocal: a.InsecureLocal, keyGrant: map[string]AdminGrant{}}
	c.snap.admin = acc
	if t := a.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			c.r.Errorf("server.admin.tls", "loading certificate %s and key %s: %v", t.CertFile, t.KeyFile, cleanFileError(err))
		} else {
			acc.Certificate = &cert
		}
		if t.ClientCAFile != "" {
			pool, _, err := loadCAFile(t.ClientCAFile)
			if err != nil {
				c.r.Errorf("server.admin.tls.client_ca_file", "%v", err)
			}
			acc.ClientCAs, acc.ClientCertRequired = pool, true
		}
	}
	if a.Auth == nil {
		return
	}
	if j := a.Auth.JWT; j != nil {
		acc.issuers, acc.audiences = j.Issuers, j.Audiences
		if c.snap.verifier != nil {
			acc.Tokens = c.snap.verifier
		}
		for _, b := range j.Roles {
			req := compileRequire(b.When)
			if req == nil {
				continue // reported by validation
			}
			acc.bindings = append(acc.bindings, adminBinding{grant: AdminGrant{Role: b.Role, Services: b.Services}, require: *req})
		}
	}
	if len(a.Auth.APIKeys) > 0 {
		acc.keys = identity.NewKeyTable()
	}
	for i, k := range a.Auth.APIKeys {
		p := config.Index("server.admin.auth.api_keys", i)
		var h identity.KeyHash
		if k.SHA256 != "" {
			var err error
			if h, err = identity.ParseKeyHash(k.SHA256); err != nil {
				c.r.Errorf(config.Field(p, "sha256"), "%v", err)
				continue
			}
		} else {
			v, err := c.secrets.Resolve(c.ctx, k.Value) // ${vault:...} too, and a file is watched
			if err != nil {
				c.r.Errorf(config.Field(p, "value"), "%v", err)
				continue
			}
			h = identity.HashKey(v.Reveal())
		}
		if err := acc.keys.Add(h, identity.NewStaticPrincipal(identity.CredentialAPIKey, k.Name, "", nil, nil, nil)); err != nil {
			c.r.Errorf(p, "%v", err)
			continue
		}
		acc.keyGrant[k.Name] = AdminGrant{Role: k.Role, Services: k.Services}
	}
}
