// Package identity establishes who is calling: it verifies bearer JWTs against
// the keys of the issuer they claim (discovered over OIDC, cached, refreshed on
// rotation), looks up API keys by their hash, and turns either into a
// Principal. It knows nothing about routes or HTTP handlers.
package identity

import (
	"slices"
	"sync/atomic"
	"time"
)

// Credential is the kind of credential a principal was established with.
type Credential uint8

// Credential types.
const (
	CredentialNone Credential = iota
	CredentialJWT
	CredentialAPIKey
	CredentialMTLS
)

var credentialNames = [...]string{"none", "jwt", "api_key", "mtls"}

func (c Credential) String() string {
	if int(c) < len(credentialNames) {
		return credentialNames[c]
	}
	return "unknown"
}

// ParseCredential maps a configuration name (jwt, api_key, mtls) to a Credential.
func ParseCredential(s string) (Credential, bool) {
	for i, n := range credentialNames {
		if i > 0 && n == s {
			return Credential(i), true
		}
	}
	return CredentialNone, false
}

// Principal is a verified caller. It is immutable once built: steps share it
// across goroutines and the token cache hands the same value to many requests.
type Principal struct {
	Credential Credential
	Subject    string
	// Provider is the configured name of the identity provider (JWT only).
	Provider string
	// Issuer is the iss claim (JWT) or the certificate issuer (mTLS).
	Issuer string
	// Consumer is the consumer name (API key only).
	Consumer string
	// Groups, Roles and Scopes are sorted and free of duplicates.
	Groups []string
	Roles  []string
	Scopes []string
	// Claims are the token's claims as decoded JSON (JWT only).
	Claims map[string]any
	// KeyID is the kid of the key that signed the token (JWT only).
	KeyID string
	// Expires is when the credential stops being valid (zero if never).
	Expires time.Time

	headers atomic.Pointer[HeaderValues]
	// meets holds the findings the principal was found to meet, each in
	// its slot (Meets).
	meets [findingSlots]atomic.Pointer[Finding]
}

// A Finding stands for one fixed condition on principals (the policy's
// compiled requirement of an operation), so that a principal found to
// meet it is not checked again on its next request: a principal does not
// change, so neither does the answer. Only meeting is recorded; a
// principal that fails a condition is checked each time.
type Finding struct{ slot uint8 }

// findingSlots is how many findings a principal holds at once. A finding
// keeps a slot of its own, taken in turn, so that a caller of up to that
// many operations does not have one finding push out another.
const findingSlots = 4

var findings atomic.Uint32

// NewFinding returns a Finding distinct from every other.
func NewFinding() *Finding {
	return &Finding{slot: uint8(findings.Add(1) % findingSlots)}
}

// Meets reports whether p was recorded as meeting f (RecordMeets).
func (p *Principal) Meets(f *Finding) bool { return p.meets[f.slot].Load() == f }

// RecordMeets records that p meets f. It writes only when the slot holds
// another finding: a principal is shared by many requests at once, and a
// store would take its cache line from the other cores on every request.
func (p *Principal) RecordMeets(f *Finding) {
	if s := &p.meets[f.slot]; s.Load() != f {
		s.Store(f)
	}
}

// HeaderValues are a principal's identity as the values of the fields
// forwarded to backends, one single-element slice each (nil when
// absent). They are built once per principal: a verified token's
// principal is cached and serves every request the token makes. The
// slices are shared by those requests and must not be modified.
type HeaderValues struct {
	Credential, Subject, Issuer, Consumer, Groups, Roles, Scopes []string
	// Lines are the same fields as field lines ("Name: value" and its
	// CRLF each), named with the prefix LinesPrefix, when the builder
	// made them: a forwarder sends them in one piece.
	Lines, LinesPrefix string
}

// HeaderValues returns the principal's forwarded values, built by build
// the first time. A principal must not change once it is in use.
func (p *Principal) HeaderValues(build func(*Principal) *HeaderValues) *HeaderValues {
	if v := p.headers.Load(); v != nil {
		return v
	}
	p.headers.CompareAndSwap(nil, build(p))
	return p.headers.Load()
}

// HasGroup reports whether p is in group g.
func (p *Principal) HasGroup(g string) bool { return has(p.Groups, g) }

// HasRole reports whether p has role r.
func (p *Principal) HasRole(r string) bool { return has(p.Roles, r) }

// HasScope reports whether p was granted scope s.
func (p *Principal) HasScope(s string) bool { return has(p.Scopes, s) }

func has(sorted []string, v string) bool {
	_, ok := slices.BinarySearch(sorted, v)
	return ok
}

// normalizeSet sorts vs and removes duplicates and empty strings, in place.
func normalizeSet(vs []string) []string {
	vs = slices.DeleteFunc(vs, func(s string) bool { return s == "" })
	slices.Sort(vs)
	return slices.Compact(vs)
}

// NewStaticPrincipal builds a principal from fixed attributes, e.g. for an API
// key consumer. The slices are copied and normalized.
func NewStaticPrincipal(cred Credential, subject, consumer string, groups, roles, scopes []string) *Principal {
	return &Principal{
		Credential: cred,
		Subject:    subject,
		Consumer:   consumer,
		Groups:     normalizeSet(slices.Clone(groups)),
		Roles:      normalizeSet(slices.Clone(roles)),
		Scopes:     normalizeSet(slices.Clone(scopes)),
	}
}
