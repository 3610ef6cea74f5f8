package identity_test

import (
	"context"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func benchToken(b *testing.B, cacheSize int) (*env, string) {
	b.Helper()
	e := newEnv(b, envOptions{alg: "RS256", verOpts: identity.VerifierOptions{CacheSize: cacheSize}})
	tok := e.mint(map[string]any{
		"groups": []any{"admins", "ops"}, "roles": []any{"reader"}, "scope": "orders:read orders:write",
		"client_id": "svc", "jti": "0123456789abcdef",
	})
	if _, err := e.verify(tok); err != nil {
		b.Fatal(err)
	}
	return e, tok
}

// BenchmarkVerifyCached measures a token seen before: hash, lookup, exp
// and key checks.
func BenchmarkVerifyCached(b *testing.B) {
	e, tok := benchToken(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel is BenchmarkVerifyCached from all cores.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	e, tok := benchToken(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyFirstSight measures a full RS256 verification (cache off).
func BenchmarkVerifyFirstSight(b *testing.B) {
	e, tok := benchToken(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
