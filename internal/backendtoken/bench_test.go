package backendtoken_test

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/backendtoken"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func decodeSegment(t testing.TB, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkMint measures the per-request cost of a backend token: a cache
// hit (the common case: the same caller within a token's life), against a
// miss that signs (ES256, EdDSA).
func BenchmarkMint(b *testing.B) {
	c := &clock{t: time.Now()}
	k := openKeys(b, b.TempDir(), c, backendtoken.ES256, backendtoken.EdDSA)
	principal := func(i int) *identity.Principal {
		return &identity.Principal{Credential: identity.CredentialJWT, Subject: "user-" + strconv.Itoa(i), Issuer: "https://idp.example.com",
			Groups: []string{"engineering", "staff"}, Scopes: []string{"orders:read", "orders:write"}, Claims: map[string]any{"azp": "web"}}
	}
	opts := backendtoken.MintOptions{Issuer: "https://gw.example.com", Audience: "https://orders.internal", TTL: time.Minute,
		Claims: backendtoken.ClaimGroups | backendtoken.ClaimScope | backendtoken.ClaimRoles | backendtoken.ClaimConsumer, Bearer: true, Now: c.Now}
	b.Run("hit", func(b *testing.B) {
		o := opts
		o.Algorithm = backendtoken.ES256
		m := backendtoken.NewMinter(k, o)
		p := principal(0)
		m.HeaderValue(p)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.HeaderValue(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hit-equal-principal", func(b *testing.B) {
		// Another *Principal with the same content (a new token of the
		// same caller): found by hash and comparison.
		o := opts
		o.Algorithm = backendtoken.ES256
		m := backendtoken.NewMinter(k, o)
		m.HeaderValue(principal(0))
		p := principal(0)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.HeaderValue(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, alg := range []string{backendtoken.ES256, backendtoken.EdDSA} {
		b.Run("miss-"+alg, func(b *testing.B) {
			o := opts
			o.Algorithm = alg
			o.CacheSize = 1024
			m := backendtoken.NewMinter(k, o)
			ps := make([]*identity.Principal, 4096)
			for i := range ps {
				ps[i] = principal(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := m.HeaderValue(ps[i%len(ps)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
