package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// maxKeysPerSet bounds the usable keys kept from one JWKS. A token
	// without kid is tried against every key that fits its alg, so this
	// also bounds the signature checks one forged token can cost.
	maxKeysPerSet = 100
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3 says
	// 2048 bits or larger MUST be used).
	minRSABits = 2048
)

// keyIdent names one key exactly: its kid and its RFC 7638 SHA-256
// thumbprint. The token cache keeps it so that a cached token stops being
// accepted as soon as its key leaves the JWKS.
type keyIdent struct {
	kid   string
	thumb [32]byte
}

// keyEntry is one usable verification key.
type keyEntry struct {
	jwk   *jose.JSONWebKey
	ident keyIdent
}

// keyMap is an immutable snapshot of the usable keys of one JWKS. It is
// replaced whole, never modified, so readers need no lock.
type keyMap struct {
	all    []*keyEntry
	byKid  map[string][]*keyEntry
	idents map[keyIdent]struct{}
	// gen numbers the set of idents, from 1 (0: not numbered): a map
	// fetched with the same idents as the one before keeps its number.
	gen uint64
}

// candidates returns the keys a token with this kid and alg may have been
// signed with: those with the kid (every key when kid is empty) whose type
// and alg fit the token's alg. The slice is new; the entries are shared.
func (m *keyMap) candidates(kid, alg string) []*keyEntry {
	from := m.all
	if kid != "" {
		from = m.byKid[kid]
	}
	var out []*keyEntry
	for _, e := range from {
		if keyFits(e.jwk, alg) {
			out = append(out, e)
		}
	}
	return out
}

func (m *keyMap) hasKid(kid string) bool {
	_, ok := m.byKid[kid]
	return ok
}

// kids lists the key ids in the map, for logs.
func (m *keyMap) kids() []string {
	out := make([]string, 0, len(m.byKid))
	for k := range m.byKid {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// keyFits reports whether jwk may verify a signature made with alg: the
// JWK's own alg, if it has one, must equal alg, and the key type must be
// the one alg is defined for (RSA for RS*/PS*, EC on the matching curve
// for ES*, Ed25519 for EdDSA).
func keyFits(jwk *jose.JSONWebKey, alg string) bool {
	if jwk.Algorithm != "" && jwk.Algorithm != alg {
		return false
	}
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		name := ""
		if k.Curve != nil && k.Curve.Params() != nil {
			name = k.Curve.Params().Name
		}
		switch alg {
		case "ES256":
			return name == "P-256"
		case "ES384":
			return name == "P-384"
		case "ES512":
			return name == "P-521"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// privateMembers are JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037). A JWKS served by an
// IdP never has them; a key that does is ignored before it is parsed.
var privateMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// parseJWKS reads a JWK Set document (RFC 7517 §5) and keeps the keys
// usable to verify signatures. Keys that are not (use other than "sig",
// symmetric or private, unsupported type or curve, RSA under 2048 bits, an
// alg the gateway does not verify, an x5c that does not parse or does not
// match) are left out; skipped says why, one line per key, for the log.
// Only a document that is not a JSON object with a "keys" array is an
// error.
func parseJWKS(data []byte) (m *keyMap, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not a JSON object with a keys array: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`JWKS has no "keys" array`)
	}
	m = &keyMap{byKid: map[string][]*keyEntry{}, idents: map[keyIdent]struct{}{}}
	for i, raw := range doc.Keys {
		e, why := parseJWK(raw)
		if why != "" {
			skipped = append(skipped, fmt.Sprintf("key %d: %s", i, why))
			continue
		}
		if len(m.all) == maxKeysPerSet {
			skipped = append(skipped, fmt.Sprintf("key %d: more than %d usable keys", i, maxKeysPerSet))
			continue
		}
		if _, dup := m.idents[e.ident]; dup {
			continue
		}
		m.all = append(m.all, e)
		m.byKid[e.ident.kid] = append(m.byKid[e.ident.kid], e)
		m.idents[e.ident] = struct{}{}
	}
	return m, skipped, nil
}

// parseJWK parses one member of a JWKS; why says why it is not usable.
func parseJWK(raw json.RawMessage) (e *keyEntry, why string) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, "not a JSON object"
	}
	for _, name := range privateMembers {
		if _, ok := members[name]; ok {
			return nil, "has private or symmetric key material (" + name + ")"
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		// The go-jose message says which part failed (kty, x5c, x5t…);
		// it holds no key material.
		return nil, "does not parse: " + err.Error()
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return nil, fmt.Sprintf("use is %q, not sig", truncate(jwk.Use, 16))
	}
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Sprintf("RSA key of %d bits (minimum %d)", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if !keyFits(&jose.JSONWebKey{Key: k}, "ES256") && !keyFits(&jose.JSONWebKey{Key: k}, "ES384") &&
			!keyFits(&jose.JSONWebKey{Key: k}, "ES512") {
			return nil, "unsupported elliptic curve"
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Sprintf("unsupported key type %T", jwk.Key)
	}
	if jwk.Algorithm != "" && ValidateAlgorithm(jwk.Algorithm) != nil {
		return nil, fmt.Sprintf("alg %q is not a supported signature algorithm", truncate(jwk.Algorithm, 16))
	}
	if jwk.Algorithm != "" && !keyFits(&jwk, jwk.Algorithm) {
		return nil, fmt.Sprintf("alg %q does not fit the key type", jwk.Algorithm)
	}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil || len(thumb) != 32 {
		return nil, "no thumbprint"
	}
	e = &keyEntry{jwk: &jwk, ident: keyIdent{kid: jwk.KeyID}}
	copy(e.ident.thumb[:], thumb)
	return e, ""
}

// truncate shortens s for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
