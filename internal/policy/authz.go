package policy

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// SetMatch is a compiled any-of / all-of condition on a set of values.
type SetMatch struct {
	AnyOf []string
	AllOf []string
}

// check reports whether has satisfies m, and which value is missing if not.
func (m SetMatch) check(has func(string) bool) (ok bool, missing string) {
	for _, v := range m.AllOf {
		if !has(v) {
			return false, v
		}
	}
	if len(m.AnyOf) == 0 {
		return true, ""
	}
	for _, v := range m.AnyOf {
		if has(v) {
			return true, ""
		}
	}
	return false, "one of " + strings.Join(m.AnyOf, ", ")
}

// ClaimMatch is a condition on the values of one claim.
type ClaimMatch struct {
	Path string
	SetMatch
}

// Requirement is what an operation requires of its caller. Every non-empty
// condition must hold.
type Requirement struct {
	Groups SetMatch
	Roles  SetMatch
	Scopes SetMatch
	Claims []ClaimMatch
}

// Decision is the outcome of checking a requirement, with its reason.
type Decision struct {
	Allowed bool
	// Reason is a stable label: allowed, missing_group, missing_role,
	// missing_scope, claim_mismatch, no_principal.
	Reason string
	// Missing names what the caller lacks (for logs; scopes also for the
	// client, as RFC 6750 expects).
	Missing string
}

// Decide checks p against r.
func (r *Requirement) Decide(p *identity.Principal) Decision {
	if p == nil {
		return Decision{Reason: "no_principal"}
	}
	if ok, m := r.Scopes.check(p.HasScope); !ok {
		return Decision{Reason: "missing_scope", Missing: m}
	}
	if ok, m := r.Groups.check(p.HasGroup); !ok {
		return Decision{Reason: "missing_group", Missing: m}
	}
	if ok, m := r.Roles.check(p.HasRole); !ok {
		return Decision{Reason: "missing_role", Missing: m}
	}
	for _, c := range r.Claims {
		values := claimValues(p, c.Path)
		if ok, m := c.check(func(v string) bool { return slices.Contains(values, v) }); !ok {
			return Decision{Reason: "claim_mismatch", Missing: c.Path + ": " + m}
		}
	}
	return Decision{Allowed: true, Reason: "allowed"}
}

// claimValues are the values a claim condition compares: a string claim
// whole, except the standard scope claims (scope, and Entra ID's scp),
// whose string is a space-separated list (RFC 9068).
func claimValues(p *identity.Principal, path string) []string {
	if p.Claims == nil {
		return nil
	}
	if path == "scope" || path == "scp" {
		return identity.ScopeValues(p.Claims, path)
	}
	return identity.ClaimValues(p.Claims, path)
}

// AuthzOptions configure the authorization step of one operation.
type AuthzOptions struct {
	Require Requirement
	Realm   string
	Observe func(reason string)
}

// Authorize returns the step that checks the caller against the
// operation's requirement. A denial is a 403; for bearer tokens it carries
// an RFC 6750 insufficient_scope challenge, naming the missing scope when
// a scope is what is missing. Which group or role was missing goes to the
// log only.
//
// A principal found to meet the requirement is recorded as meeting it
// (identity.Finding), and its next requests pass on that record: a
// cached token's principal serves every request the token makes.
func Authorize(o AuthzOptions) Step {
	met := identity.NewFinding() // o.Require, which never changes
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			p := PrincipalFrom(r.Context())
			if p != nil && p.Meets(met) {
				return next.ServeHTTP(w, r)
			}
			d := o.Require.Decide(p)
			if d.Allowed {
				if p != nil {
					p.RecordMeets(met)
				}
				return next.ServeHTTP(w, r)
			}
			if o.Observe != nil {
				o.Observe(d.Reason)
			}
			return forbidden(o.Realm, p, d)
		})
	}
}

func forbidden(realm string, p *identity.Principal, d Decision) *Error {
	e := &Error{Status: http.StatusForbidden, Type: "forbidden", Title: "Forbidden",
		Reason: "forbidden:" + d.Reason,
		Cause:  &denial{d}}
	scope := ""
	switch d.Reason {
	case "missing_scope":
		e.Detail = "The token lacks a required scope: " + d.Missing + "."
		if !strings.HasPrefix(d.Missing, "one of ") {
			scope = d.Missing
		}
	default:
		e.Detail = "The caller is not allowed to call this operation."
	}
	if p != nil && p.Credential == identity.CredentialJWT {
		e.Header = http.Header{"Www-Authenticate": {BearerChallenge(realm, "insufficient_scope", e.Detail, scope)}}
	}
	return e
}

// denial carries a decision as an error cause, so that the log line says
// what was missing.
type denial struct{ d Decision }

func (d *denial) Error() string { return d.d.Reason + ": " + d.d.Missing }
