package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// signWith signs claims with any key, the way an attacker would.
func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, hdr map[string]any, embedJWK bool, claims map[string]any) string {
	t.Helper()
	extra := map[jose.HeaderKey]any{}
	for k, v := range hdr {
		extra[jose.HeaderKey(k)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{ExtraHeaders: extra, EmbedJWK: embedJWK})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func attackerRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publishedKey returns the issuer's current public key as the key set has it.
func publishedKey(t testing.TB, e *env) any {
	t.Helper()
	for _, alg := range []string{"RS256", "ES256"} {
		if keys, err := e.provs[0].KeySet().Key(context.Background(), e.idp().KeyID(), alg); err == nil {
			return keys[0].Key
		}
	}
	t.Fatal("no published key")
	return nil
}

func TestVerify_AcceptsValidToken(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, envOptions{alg: alg})
			tok := e.mint(map[string]any{
				"groups": []any{"b", "a", "b"},
				"roles":  []any{"writer", "reader"},
				"scope":  "orders:read orders:write",
			})
			p, err := e.verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if p.Credential != identity.CredentialJWT || p.Subject != "alice" || p.Provider != "idpA" ||
				p.Issuer != e.idp().URL() || p.KeyID != e.idp().KeyID() {
				t.Errorf("principal %+v", p)
			}
			if !slices.Equal(p.Groups, []string{"a", "b"}) || !slices.Equal(p.Roles, []string{"reader", "writer"}) ||
				!p.HasScope("orders:write") {
				t.Errorf("groups %v roles %v scopes %v", p.Groups, p.Roles, p.Scopes)
			}
			if !p.Expires.Equal(e.clk.Now().Add(time.Hour)) {
				t.Errorf("expires %v", p.Expires)
			}
			if p.Claims["sub"] != "alice" {
				t.Errorf("claims %v", p.Claims)
			}
			e.noTokenInLogs(tok)
		})
	}
}

func TestVerify_RejectsExpired(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.mint(map[string]any{"exp": e.clk.Now().Add(-time.Hour).Unix()})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonExpired, tok)
}

func TestVerify_RejectsMissingExp(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.mint(map[string]any{"exp": nil})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonMissingClaim, tok)
}

func TestVerify_RejectsNotYetValid(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.mint(map[string]any{"nbf": e.clk.Now().Add(10 * time.Minute).Unix()})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonNotYetValid, tok)
	// Within the skew it is accepted.
	tok = e.mint(map[string]any{"nbf": e.clk.Now().Add(20 * time.Second).Unix()})
	if _, err := e.verify(tok); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_RejectsIssuedInFuture(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.mint(map[string]any{"iat": e.clk.Now().Add(time.Hour).Unix()})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonIssuedInFuture, tok)
}

func TestVerify_AcceptsFractionalNumericDates(t *testing.T) {
	e := newEnv(t, envOptions{})
	now := float64(e.clk.Now().Unix())
	tok := e.mint(map[string]any{"exp": now + 3600.5, "iat": now - 0.25, "nbf": now - 1.5})
	p, err := e.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clk.Now().Add(time.Hour + 500*time.Millisecond); !p.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", p.Expires, want)
	}
	tok = e.mint(map[string]any{"exp": "tomorrow"})
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonMalformed, tok)
}

func TestVerify_ExpAtSkewBoundary(t *testing.T) {
	e := newEnv(t, envOptions{verOpts: identity.VerifierOptions{CacheSize: -1}})
	exp := e.clk.Now().Add(time.Minute)
	tok := e.mint(map[string]any{"exp": exp.Unix()})
	e.clk.Advance(time.Minute + identity.DefaultClockSkew) // now == exp + skew
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("at exp+skew: %v", err)
	}
	e.clk.Advance(time.Second)
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonExpired, tok)
}

func TestVerify_ExpAtSkewBoundaryCached(t *testing.T) {
	e := newEnv(t, envOptions{})
	exp := e.clk.Now().Add(time.Minute)
	tok := e.mint(map[string]any{"exp": exp.Unix()})
	if _, err := e.verify(tok); err != nil { // now cached
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute + identity.DefaultClockSkew)
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("at exp+skew: %v", err)
	}
	e.clk.Advance(time.Second)
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonExpired, tok)
}

func TestVerify_RejectsWrongIssuer(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, iss := range []string{"https://evil.example", e.idp().URL() + "/", strings.ToUpper(e.idp().URL())} {
		tok := e.mint(map[string]any{"iss": iss})
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonUnknownIssuer, tok)
	}
	tok := e.mint(map[string]any{"iss": nil})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonMissingClaim, tok)
	tok = e.mint(map[string]any{"iss": 42})
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonMalformed, tok)
}

func TestVerify_RejectsIssuerNotConfigured(t *testing.T) {
	e := newEnv(t, envOptions{})
	other := newIDP(t, e.clk, "")
	tok := e.mintWith(other, nil, nil)
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonUnknownIssuer, tok)
	if n := other.Requests("/.well-known/openid-configuration") + other.Requests("/jwks"); n != 0 {
		t.Fatalf("the unconfigured issuer got %d requests", n)
	}
}

func TestVerify_RejectsWrongAudience(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, aud := range []any{"api://other", []any{"api://other", "x"}, nil, []any{42}, 7} {
		tok := e.mint(map[string]any{"aud": aud})
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonWrongAudience, tok)
	}
	tok := e.mint(map[string]any{"aud": []any{"api://other", audience}})
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("aud array containing ours: %v", err)
	}
}

func TestVerify_RejectsAlgNone(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, alg := range []string{"none", "None", "NONE", ""} {
		tok := rawToken(t, map[string]any{"alg": alg, "kid": e.idp().KeyID(), "typ": "at+jwt"}, validClaims(e.idp(), e.clk), nil)
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonAlgNotAllowed, tok)
	}
}

func TestVerify_RejectsHS256SignedWithRSAPublicKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	pub := publishedKey(t, e).(*rsa.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for name, secret := range map[string][]byte{"PEM": pemBytes, "DER": der, "PKCS1": pkcs1} {
		for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512} {
			tok := signWith(t, alg, secret, map[string]any{"kid": e.idp().KeyID()}, false, validClaims(e.idp(), e.clk))
			_, err := e.verify(tok)
			wantReason(t, err, identity.ReasonAlgNotAllowed, tok)
			_ = name
		}
	}
	// The key set never hands an RSA key out for an HMAC algorithm either.
	if keys, err := e.provs[0].KeySet().Key(context.Background(), e.idp().KeyID(), "HS256"); err == nil {
		t.Fatalf("Key(HS256) returned %d keys", len(keys))
	}
}

func TestVerify_RejectsHS256WithECPublicKey(t *testing.T) {
	e := newEnv(t, envOptions{alg: "ES256"})
	pub := publishedKey(t, e).(*ecdsa.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, secret := range [][]byte{pemBytes, der, raw} {
		tok := signWith(t, jose.HS256, secret, map[string]any{"kid": e.idp().KeyID()}, false, validClaims(e.idp(), e.clk))
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonAlgNotAllowed, tok)
	}
}

func TestVerify_RejectsAlgNotConfigured(t *testing.T) {
	// An ES256 issuer's provider accepts only ES256: an RS256 token with
	// a valid-looking structure is refused before any key is looked up.
	e := newEnv(t, envOptions{alg: "ES256"})
	tok := signWith(t, jose.RS256, attackerRSAKey(t), map[string]any{"kid": e.idp().KeyID()}, false, validClaims(e.idp(), e.clk))
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonAlgNotAllowed, tok)
}

func TestVerify_UnknownKidRefetchesOnceThenRejects(t *testing.T) {
	e := newEnv(t, envOptions{})
	before := e.idp().Requests("/jwks")
	tok := e.mintWith(e.idp(), map[string]any{"kid": "no-such-kid"}, nil)
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonUnknownKey, tok)
	if n := e.idp().Requests("/jwks") - before; n != 1 {
		t.Fatalf("first unknown kid: %d JWKS fetches, want 1", n)
	}
	for i := 0; i < 5; i++ {
		_, err = e.verify(e.mintWith(e.idp(), map[string]any{"kid": "other-" + string(rune('a'+i))}, nil))
		wantReason(t, err, identity.ReasonUnknownKey, "")
	}
	if n := e.idp().Requests("/jwks") - before; n != 1 {
		t.Fatalf("unknown kids within the cooldown: %d JWKS fetches, want 1", n)
	}
	// The good kid still works without a fetch.
	if _, err := e.verify(e.mint(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_IgnoresEmbeddedJWK(t *testing.T) {
	e := newEnv(t, envOptions{})
	key := attackerRSAKey(t)
	before := e.idp().Requests("/jwks")
	// jwk header only (go-jose then sets no kid): tried against the
	// issuer's own keys, which do not verify it.
	tok := signWith(t, jose.RS256, key, nil, true, validClaims(e.idp(), e.clk))
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonBadSignature, tok)
	// jwk header plus the issuer's kid.
	tok = signWith(t, jose.RS256, key, map[string]any{"kid": e.idp().KeyID()}, true, validClaims(e.idp(), e.clk))
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonBadSignature, tok)
	// A signature no cached key verifies asks for fresh keys once per
	// cooldown (an issuer may have rotated without a kid), never more.
	if n := e.idp().Requests("/jwks") - before; n > 1 {
		t.Fatalf("%d JWKS fetches, want at most one in the cooldown", n)
	}
}

// An issuer that rotates its key without a kid (or under a kid it used
// before) is followed: a signature no cached key verifies refetches the
// keys, once per cooldown, and verifies against the new ones.
func TestVerify_RotationWithoutKidRefetches(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.verify(e.mintWith(e.idp(), map[string]any{"kid": nil}, nil)); err != nil {
		t.Fatalf("a token without kid, by the cached key: %v", err)
	}
	if err := e.idp().RotateKey(); err != nil {
		t.Fatal(err)
	}
	e.idp().RetireOldKeys()
	e.clk.Advance(time.Minute) // past any cooldown of the first fetch
	before := e.idp().Requests("/jwks")
	if _, err := e.verify(e.mintWith(e.idp(), map[string]any{"kid": nil}, nil)); err != nil {
		t.Fatalf("a token without kid, by the rotated key: %v", err)
	}
	if n := e.idp().Requests("/jwks") - before; n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
	// Forged signatures within the cooldown fetch nothing more.
	for range 3 {
		tok := e.mintWith(e.idp(), map[string]any{"kid": nil}, nil)
		_, err := e.verify(tok[:len(tok)-4] + "AAAA")
		wantReason(t, err, identity.ReasonBadSignature, "")
	}
	if n := e.idp().Requests("/jwks") - before; n != 1 {
		t.Fatalf("%d JWKS fetches after forged signatures, want still 1", n)
	}
}

func TestVerify_IgnoresJKU(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	tok := signWith(t, jose.RS256, attackerRSAKey(t),
		map[string]any{"kid": "attacker", "jku": d.srv.URL + "/attacker/jwks"}, false, validClaims(d, e.clk))
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonUnknownKey, tok)
	if n := d.Requests("/attacker/jwks"); n != 0 {
		t.Fatalf("the jku URL was fetched %d times", n)
	}
}

func TestVerify_IgnoresX5U(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	tok := signWith(t, jose.RS256, attackerRSAKey(t),
		map[string]any{"kid": d.KeyID(), "x5u": d.srv.URL + "/attacker/cert.pem"}, false, validClaims(d, e.clk))
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonBadSignature, tok)
	if n := d.Requests("/attacker/cert.pem"); n != 0 {
		t.Fatalf("the x5u URL was fetched %d times", n)
	}
}

func TestVerify_IgnoresX5C(t *testing.T) {
	e := newEnv(t, envOptions{})
	key := attackerRSAKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	tok := signWith(t, jose.RS256, key, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(der)}},
		false, validClaims(e.idp(), e.clk))
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonBadSignature, tok)
}

func TestVerify_RejectsTokenFromOtherIssuerKeyClaimingThisIssuer(t *testing.T) {
	e := newEnv(t, envOptions{providers: 2})
	a, b := e.idps[0], e.idps[1]
	bBefore := b.Requests("/jwks")
	// Signed by B (B's kid), iss = A: A's key set does not have B's kid.
	tok := e.mintWith(b, nil, map[string]any{"iss": a.URL()})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonUnknownKey, tok)
	// Signed by B claiming A's kid: A's key does not verify it.
	tok = e.mintWith(b, map[string]any{"kid": a.KeyID()}, map[string]any{"iss": a.URL()})
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonBadSignature, tok)
	// Signed by B without kid: only A's keys are tried.
	tok = e.mintWith(b, map[string]any{"kid": nil}, map[string]any{"iss": a.URL()})
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonBadSignature, tok)
	if n := b.Requests("/jwks") - bBefore; n != 0 {
		t.Fatalf("B's JWKS was fetched %d times for tokens claiming A", n)
	}
	// Both issuers' own tokens verify.
	for _, d := range e.idps {
		if _, err := e.verify(e.mintWith(d, nil, nil)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerify_RejectsOversizedToken(t *testing.T) {
	e := newEnv(t, envOptions{provOpts: func(o *identity.ProviderOptions) { o.MaxTokenSize = 2048 }})
	tok := e.mint(map[string]any{"pad": strings.Repeat("x", 2048)})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonTooLarge, tok)
	// Larger than any provider accepts: refused before parsing.
	_, err = e.verify(strings.Repeat("a", 1<<20))
	wantReason(t, err, identity.ReasonTooLarge, "")
}

func TestVerify_RejectsManyDots(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := e.mint(nil)
	parts := strings.Split(good, ".")
	cases := map[string]identity.Reason{
		"":                                 identity.ReasonMissing,
		"abc":                              identity.ReasonMalformed,
		"a.b":                              identity.ReasonMalformed,
		"a.b.c.d":                          identity.ReasonMalformed,
		good + ".":                         identity.ReasonMalformed,
		good + "." + parts[2]:              identity.ReasonMalformed,
		parts[0] + "..." + parts[1]:        identity.ReasonMalformed,
		"....":                             identity.ReasonMalformed,
		parts[0] + ".!!!." + parts[2]:      identity.ReasonMalformed,
		"eyJhbGciOiJSUzI1NiJ9.e30.AAAA":    identity.ReasonMissingClaim, // {} has no iss
		"eyJhbGciOiJSUzI1NiJ9.W10.AAAA":    identity.ReasonMalformed,    // [] is not an object
		"eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d": identity.ReasonMalformed,    // JWE shape
	}
	for tok, r := range cases {
		_, err := e.verify(tok)
		wantReason(t, err, r, "")
	}
}

func TestVerify_RejectsJSONSerialization(t *testing.T) {
	e := newEnv(t, envOptions{})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: attackerRSAKey(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(validClaims(e.idp(), e.clk))
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.verify(jws.FullSerialize())
	wantReason(t, err, identity.ReasonMalformed, "")
}

func TestVerify_RejectsUnknownCrit(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, hdr := range []map[string]any{
		{"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": true},
		{"crit": []string{"exp"}, "exp": 1},
		{"crit": []string{}},
		{"crit": "b64"},
	} {
		tok := e.mintWith(e.idp(), hdr, nil)
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonMalformed, tok)
	}
}

func TestVerify_RejectsIDTokenWhenAtJWTRequired(t *testing.T) {
	e := newEnv(t, envOptions{provOpts: func(o *identity.ProviderOptions) { o.RequireType = "at+jwt" }})
	for _, typ := range []any{"JWT", nil, "jwt", "application/jwt", "at+jwt2", 7} {
		tok := e.mintWith(e.idp(), map[string]any{"typ": typ}, nil)
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonWrongType, tok)
	}
	for _, typ := range []string{"at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"} {
		if _, err := e.verify(e.mintWith(e.idp(), map[string]any{"typ": typ}, nil)); err != nil {
			t.Errorf("typ %q: %v", typ, err)
		}
	}
}

func TestVerify_KidInjection(t *testing.T) {
	e := newEnv(t, envOptions{provOpts: func(o *identity.ProviderOptions) { o.MaxTokenSize = 64 << 10 }})
	d := e.idp()
	before := d.Requests("/jwks")
	for _, kid := range []string{"../../etc/passwd", strings.Repeat("k", 10<<10), "a\nlevel=ERROR msg=forged", "' OR 1=1 --"} {
		tok := e.mintWith(d, map[string]any{"kid": kid}, nil)
		_, err := e.verify(tok)
		ie := wantReason(t, err, identity.ReasonUnknownKey, tok)
		if strings.Contains(ie.Error(), kid) {
			t.Errorf("the error echoes the kid")
		}
		if strings.Contains(e.logs.String(), kid) {
			t.Errorf("the logs contain the kid")
		}
	}
	if n := d.Requests("/jwks") - before; n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
	if n := d.Requests("/etc/passwd"); n != 0 {
		t.Fatal("the kid was used as a path")
	}
	// With the default size limit a 10 KB kid is refused unparsed.
	e2 := newEnv(t, envOptions{})
	tok := e2.mintWith(e2.idp(), map[string]any{"kid": strings.Repeat("k", 10<<10)}, nil)
	_, err := e2.verify(tok)
	wantReason(t, err, identity.ReasonTooLarge, tok)
}

func TestVerify_RejectsMissingSubject(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, sub := range []any{nil, "", []any{"x"}, map[string]any{}} {
		tok := e.mint(map[string]any{"sub": sub})
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonMissingClaim, tok)
	}
}

func TestVerify_ClaimMapping(t *testing.T) {
	e := newEnv(t, envOptions{provOpts: func(o *identity.ProviderOptions) {
		o.SubjectClaim = "oid"
		o.GroupsClaim = "https://example.com/groups"
		o.RolesClaim = "realm_access.roles"
	}})
	tok := e.mint(map[string]any{
		"oid":                        "0000-1111",
		"https://example.com/groups": []any{"g2", "g1", 3, true, map[string]any{"x": 1}, "g1"},
		"realm_access":               map[string]any{"roles": []any{"admin", "user"}},
		"scp":                        "a b",
	})
	p, err := e.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "0000-1111" || !slices.Equal(p.Groups, []string{"3", "g1", "g2", "true"}) ||
		!slices.Equal(p.Roles, []string{"admin", "user"}) || !slices.Equal(p.Scopes, []string{"a", "b"}) {
		t.Fatalf("principal %+v", p)
	}
	// scope wins over scp when both are present.
	p, err = e.verify(e.mint(map[string]any{"oid": "x", "scope": "c", "scp": []any{"d"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Scopes, []string{"c"}) {
		t.Fatalf("scopes %v", p.Scopes)
	}
}

func TestNewVerifier_RejectsDuplicateIssuer(t *testing.T) {
	e := newEnv(t, envOptions{})
	p2, err := identity.NewProvider(identity.ProviderOptions{Name: "again", Issuer: e.idp().URL(), Audiences: []string{"x"}},
		e.provs[0].KeySet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewVerifier([]*identity.Provider{e.provs[0], p2}, identity.VerifierOptions{}); err == nil {
		t.Fatal("two providers with one issuer accepted")
	}
}

func TestNewProvider_Validates(t *testing.T) {
	e := newEnv(t, envOptions{})
	set := e.provs[0].KeySet()
	good := identity.ProviderOptions{Name: "p", Issuer: e.idp().URL(), Audiences: []string{"a"}}
	bad := map[string]func(o *identity.ProviderOptions){
		"no audience":     func(o *identity.ProviderOptions) { o.Audiences = nil },
		"HS256":           func(o *identity.ProviderOptions) { o.Algorithms = []string{"RS256", "HS256"} },
		"none":            func(o *identity.ProviderOptions) { o.Algorithms = []string{"none"} },
		"other issuer":    func(o *identity.ProviderOptions) { o.Issuer = "https://other.example" },
		"no name":         func(o *identity.ProviderOptions) { o.Name = "" },
		"negative skew":   func(o *identity.ProviderOptions) { o.ClockSkew = -time.Second },
		"lowercase rs256": func(o *identity.ProviderOptions) { o.Algorithms = []string{"rs256"} },
	}
	for name, mod := range bad {
		o := good
		mod(&o)
		if _, err := identity.NewProvider(o, set); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := identity.NewProvider(good, set); err != nil {
		t.Fatal(err)
	}
}

func TestValidateAlgorithm(t *testing.T) {
	for _, a := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		if err := identity.ValidateAlgorithm(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"none", "NONE", "HS256", "HS384", "HS512", "hs256", "RSA-OAEP", "", "ES256K", "Ed25519"} {
		if err := identity.ValidateAlgorithm(a); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
}
