package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// FuzzVerify: any string is either refused with a reason or accepted as
// a principal of the configured issuer. Committed seeds
// (testdata/fuzz/FuzzVerify) hold the JOSE corpus of seeds_test.go; the
// issuer is fixed so that they reach past the issuer check.
func FuzzVerify(f *testing.F) {
	e := newEnv(f, envOptions{issuer: fuzzIssuer})
	good := e.mint(map[string]any{"groups": []any{"a"}, "scope": "x y"})
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(rawToken(f, map[string]any{"alg": "none"}, validClaims(e.idp(), e.clk), nil))
	f.Add(rawToken(f, map[string]any{"alg": "RS256", "kid": 7, "crit": []any{"x"}}, validClaims(e.idp(), e.clk), []byte("x")))
	f.Add(rawToken(f, map[string]any{"alg": "RS256", "jwk": map[string]any{"kty": "oct", "k": "AAAA"}}, validClaims(e.idp(), e.clk), []byte("x")))
	f.Add("a.b.c.d.e")
	f.Add("....")
	f.Add(`{"payload":"e30","signatures":[]}`)
	f.Fuzz(func(t *testing.T, token string) {
		p, err := e.v.Verify(context.Background(), token)
		if err != nil {
			var ie *identity.Error
			if !errors.As(err, &ie) || ie.Reason == "" || p != nil {
				t.Fatalf("Verify returned %v, %v", p, err)
			}
			return
		}
		if p == nil || p.Subject == "" || p.Issuer != fuzzIssuer {
			t.Fatalf("accepted %q as %+v", token, p)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k","use":"sig","alg":"RS256","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","x5c":["bm90"],"n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		usable, skipped, err := identity.ParseJWKS(data)
		if err != nil && (usable != 0 || skipped != 0) {
			t.Fatalf("error %v with %d usable, %d skipped", err, usable, skipped)
		}
	})
}

func FuzzParseKeyHash(f *testing.F) {
	f.Add(identity.HashKey("k").String())
	f.Add(strings.ToUpper(identity.HashKey("k").String()))
	f.Add("zz")
	f.Add(strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		h, err := identity.ParseKeyHash(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(h.String(), s) {
			t.Fatalf("ParseKeyHash(%q) = %s", s, h)
		}
	})
}
