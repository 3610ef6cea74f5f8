package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

// fixedClock is the gateway's clock in these tests (Runtime.Now).
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// clockedHarness is a harness whose gateway runs on clk (the snapshot is
// recompiled so that the verifier takes it).
func clockedHarness(t *testing.T, cfg string, vars map[string]any) (*harness, *fixedClock) {
	t.Helper()
	h := newHarness(t, cfg, vars)
	clk := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	h.rt.Now = clk.Now
	if diags := h.load(cfg); diags != nil {
		t.Fatal(diags)
	}
	return h, clk
}

// refused sends tok to an operation that accepts JWTs and checks that
// the gateway answered 401 (or 400 for a malformed header) without
// reaching the backend. It returns the access-log denial reason.
func refused(t *testing.T, h *harness, tok string) {
	t.Helper()
	before := h.backend.count()
	res := h.do("GET", "/orders/1", bearer(tok), nil)
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 401 && res.StatusCode != 400 {
		t.Errorf("status %d, want 401", res.StatusCode)
	}
	if h.backend.count() != before {
		t.Errorf("the backend was reached")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// attackerSign signs claims with an attacker's key and header.
func attackerSign(t *testing.T, alg jose.SignatureAlgorithm, key any, hdr map[string]any, embed bool, claims map[string]any) string {
	t.Helper()
	extra := map[jose.HeaderKey]any{}
	for k, v := range hdr {
		extra[jose.HeaderKey(k)] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{ExtraHeaders: extra, EmbedJWK: embed})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// validClaimsAt are the claims of a token the gateway would accept at now.
func validClaimsAt(h *harness, now time.Time) map[string]any {
	return map[string]any{"iss": h.issSrv.URL, "sub": "mallory", "aud": "gatehouse", "scope": "orders:read",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// issuerPublicKey fetches the issuer's published key, as an attacker can.
func issuerPublicKey(t *testing.T, url string) any {
	t.Helper()
	res, err := http.Get(url + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v", err)
	}
	return set.Keys[0].Key
}

// Threat: alg "none" in any spelling, with or without a signature: an
// unsigned token is accepted by libraries that trust the header.
func TestJWTAttack_AlgNoneAnySpellingRefused(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	claims, _ := json.Marshal(validClaimsAt(h, clk.Now()))
	for _, alg := range []string{"none", "None", "NONE", "nOnE", ""} {
		for _, sig := range []string{"", "c2ln"} {
			refused(t, h, b64(`{"alg":"`+alg+`","typ":"at+jwt"}`)+"."+b64(string(claims))+"."+sig)
		}
	}
}

// Threat: HS/RS confusion. The attacker signs with HMAC using the
// issuer's RSA public key (PEM, DER, PKCS#1 or the JWK) as the secret; a
// verifier that picks the algorithm from the header accepts it.
func TestJWTAttack_HMACWithRSAPublicKeyRefused(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	pub := issuerPublicKey(t, h.issSrv.URL).(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: h.issuer.KeyID()})
	secrets := map[string][]byte{
		"pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "der": der,
		"pkcs1": x509.MarshalPKCS1PublicKey(pub), "jwk": jwk, "n": pub.N.Bytes(),
	}
	for name, secret := range secrets {
		for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512} {
			t.Run(name+"_"+string(alg), func(t *testing.T) {
				refused(t, h, attackerSign(t, alg, secret, map[string]any{"kid": h.issuer.KeyID(), "typ": "at+jwt"}, false, validClaimsAt(h, clk.Now())))
			})
		}
	}
}

// Threat: HS/ES confusion: HMAC keyed with the issuer's EC public key,
// against a provider that accepts ES256.
func TestJWTAttack_HMACWithECPublicKeyRefused(t *testing.T) {
	es, err := devissuer.New(devissuer.Options{Algorithm: "ES256", Audience: "gatehouse"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(es.Handler())
	defer srv.Close()
	es.SetURL(srv.URL)
	cfg := strings.Replace(baseConfig, "    audiences: [gatehouse]\n", "    audiences: [gatehouse]\n    algorithms: [ES256]\n", 1)
	h, clk := clockedHarness(t, cfg, map[string]any{"Issuer": srv.URL})
	pub := issuerPublicKey(t, srv.URL).(*ecdsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	raw, _ := pub.Bytes()
	claims := validClaimsAt(h, clk.Now())
	claims["iss"] = srv.URL
	// Sanity: a real ES256 token of this issuer passes.
	good, _ := es.Mint(map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()})
	if res := h.do("GET", "/orders/1", bearer(good), nil); res.StatusCode != 200 {
		t.Fatalf("a valid ES256 token: %d", res.StatusCode)
	}
	for _, secret := range [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), der, raw} {
		refused(t, h, attackerSign(t, jose.HS256, secret, map[string]any{"kid": es.KeyID(), "typ": "at+jwt"}, false, claims))
	}
}

// Threat: the token names its own key: an embedded jwk, or a jku or x5u
// URL the verifier would fetch. The gateway uses only the issuer's JWKS:
// the attacker's server is never contacted.
func TestJWTAttack_EmbeddedKeyAndKeyURLsIgnored(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	var fetched atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched.Add(1) }))
	defer evil.Close()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	claims := validClaimsAt(h, clk.Now())
	refused(t, h, attackerSign(t, jose.RS256, key, map[string]any{"typ": "at+jwt"}, true, claims))
	for _, hdr := range []map[string]any{
		{"jku": evil.URL + "/jwks", "kid": "evil"},
		{"x5u": evil.URL + "/cert.pem"},
		{"jku": evil.URL + "/jwks"},
		{"x5c": []string{base64.StdEncoding.EncodeToString([]byte("not a certificate"))}},
	} {
		hdr["typ"] = "at+jwt"
		refused(t, h, attackerSign(t, jose.RS256, key, hdr, false, claims))
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("the attacker's key server was contacted %d times", n)
	}
}

// Threat: kid injection: a kid used as a file path, a 10 KB kid, a kid
// that looks like SQL or forges a log line. Refused, never used as a
// path or URL, and never echoed in the response.
func TestJWTAttack_KidInjectionRefused(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	before := h.issuer.Requests("/jwks")
	for _, kid := range []string{"../../../../etc/passwd", "/dev/zero", "' OR '1'='1' --", "k\r\nX-Gatehouse-Subject: admin", strings.Repeat("k", 10<<10)} {
		tok := attackerSign(t, jose.RS256, key, map[string]any{"kid": kid, "typ": "at+jwt"}, false, validClaimsAt(h, clk.Now()))
		res := h.do("GET", "/orders/1", bearer(tok), nil)
		body := readBody(t, res)
		if res.StatusCode != 401 || strings.Contains(body, kid) || strings.Contains(res.Header.Get("WWW-Authenticate"), kid) {
			t.Errorf("kid %.20q: status %d, echoed %v", kid, res.StatusCode, strings.Contains(body, kid))
		}
	}
	if n := h.issuer.Requests("/jwks") - before; n > 1 {
		t.Errorf("%d JWKS fetches for unknown kids within one cooldown", n)
	}
	if h.issuer.Requests("/etc/passwd") != 0 {
		t.Error("the kid was used as a path")
	}
}

// Threat: a critical header extension the gateway does not understand
// (RFC 7515 §4.1.11) must make the token invalid, even when signed by the
// issuer.
func TestJWTAttack_UnknownCritRefused(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	for _, hdr := range []map[string]any{
		{"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": true},
		{"crit": []string{"exp"}},
		{"crit": []string{"b64"}, "b64": false},
	} {
		tok, err := h.issuer.MintWithHeader(hdr, map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read",
			"iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		refused(t, h, tok)
	}
}

// Threat: clock-skew abuse. exp, nbf and iat exactly at the 30s skew are
// accepted; one second beyond, refused, with the gateway's clock injected.
func TestJWTAttack_TimeClaimsAtAndBeyondTheSkew(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	now := clk.Now()
	const skew = 30 * time.Second
	cases := []struct {
		name   string
		claims map[string]any
		status int
		reason string
	}{
		{"exp_at_skew", map[string]any{"exp": now.Add(-skew).Unix(), "iat": now.Add(-time.Hour).Unix()}, 200, ""},
		{"exp_beyond_skew", map[string]any{"exp": now.Add(-skew - time.Second).Unix(), "iat": now.Add(-time.Hour).Unix()}, 401, "expired"},
		{"nbf_at_skew", map[string]any{"nbf": now.Add(skew).Unix()}, 200, ""},
		{"nbf_beyond_skew", map[string]any{"nbf": now.Add(skew + time.Second).Unix()}, 401, "not_yet_valid"},
		{"iat_at_skew", map[string]any{"iat": now.Add(skew).Unix()}, 200, ""},
		{"iat_beyond_skew", map[string]any{"iat": now.Add(skew + time.Second).Unix()}, 401, "issued_in_future"},
		{"exp_missing", map[string]any{"exp": nil}, 401, "missing_claim"},
		{"exp_string", map[string]any{"exp": "1800003600"}, 401, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
			for k, v := range tc.claims {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
			if _, ok := tc.claims["exp"]; ok && tc.claims["exp"] == nil {
				c["exp"] = nil
			}
			tok, err := h.issuer.Mint(c)
			if err != nil {
				t.Fatal(err)
			}
			before := h.backend.count()
			res := h.do("GET", "/orders/1", bearer(tok), nil)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 && h.backend.count() != before {
				t.Fatal("the backend was reached")
			}
			if tc.reason != "" && !strings.Contains(h.logs.String(), `"denial":"invalid_token:`+tc.reason+`"`) {
				t.Errorf("access log lacks invalid_token:%s", tc.reason)
			}
		})
	}
}

// Threat: an ID token (typ JWT, or no typ) used as an access token where
// the provider requires typ at+jwt (RFC 9068 §4).
func TestJWTAttack_IDTokenWhereAccessTokenRequired(t *testing.T) {
	cfg := strings.Replace(baseConfig, "    audiences: [gatehouse]\n", "    audiences: [gatehouse]\n    require_type: at+jwt\n", 1)
	h, clk := clockedHarness(t, cfg, nil)
	claims := map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read", "iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix()}
	for _, typ := range []any{"JWT", "jwt", nil, "application/jwt", "at+jwt2"} {
		tok, err := h.issuer.MintWithHeader(map[string]any{"typ": typ}, claims)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, h, tok)
	}
	if !strings.Contains(h.logs.String(), `"denial":"invalid_token:wrong_type"`) {
		t.Error("access log lacks invalid_token:wrong_type")
	}
	tok, _ := h.issuer.Mint(claims) // typ at+jwt
	if res := h.do("GET", "/orders/1", bearer(tok), nil); res.StatusCode != 200 {
		t.Fatalf("an access token: %d", res.StatusCode)
	}
}

// Threat: a token over the size limit costs parsing; a token of many dots
// confuses splitting. Both are refused before the backend.
func TestJWTAttack_OversizedAndManyDotsRefused(t *testing.T) {
	h, _ := clockedHarness(t, baseConfig, nil)
	for _, tok := range []string{
		strings.Repeat("a", 9<<10) + "." + "b" + "." + "c", // over the default 8 KiB
		strings.Repeat("a", 60<<10),                        // near the header limit
		strings.Repeat(".", 4000), "a.b.c.d.e.f.g", "a..b", ".a.b", "a.b.",
	} {
		refused(t, h, tok)
	}
}

// Threat: an attacker's key from another curve or size, an ES token from
// an RSA issuer: algorithms the provider does not list are refused.
func TestJWTAttack_AlgorithmNotConfiguredRefused(t *testing.T) {
	h, clk := clockedHarness(t, baseConfig, nil)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	refused(t, h, attackerSign(t, jose.ES256, ec, map[string]any{"kid": h.issuer.KeyID(), "typ": "at+jwt"}, false, validClaimsAt(h, clk.Now())))
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	refused(t, h, attackerSign(t, jose.PS256, rsaKey, map[string]any{"kid": h.issuer.KeyID(), "typ": "at+jwt"}, false, validClaimsAt(h, clk.Now())))
	refused(t, h, attackerSign(t, jose.RS256, rsaKey, map[string]any{"kid": h.issuer.KeyID(), "typ": "at+jwt"}, false, validClaimsAt(h, clk.Now())))
}
