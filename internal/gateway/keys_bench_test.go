package gateway

import (
	"fmt"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// BenchmarkKeyLookup compares the request path's API key lookup over the
// configuration's table alone (the baseline) with the lookup that also
// consults the store's in-memory table (a store key, found second).
func BenchmarkKeyLookup(b *testing.B) {
	static, dynamic := identity.NewKeyTable(), identity.NewKeyTable()
	var staticKey, storeKey string
	for i := range 1000 {
		k1, _ := identity.GenerateKey()
		k2, _ := identity.GenerateKey()
		static.Add(identity.HashKey(k1), identity.NewStaticPrincipal(identity.CredentialAPIKey, fmt.Sprint("c", i), "", nil, nil, nil))
		dynamic.Add(identity.HashKey(k2), identity.NewStaticPrincipal(identity.CredentialAPIKey, fmt.Sprint("s", i), "", nil, nil, nil))
		staticKey, storeKey = k1, k2
	}
	combined := &combinedKeys{static: static, dynamic: dynamic}
	b.Run("baseline_config_table", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := static.Lookup(staticKey); !ok {
				b.Fatal("not found")
			}
		}
	})
	b.Run("combined_store_key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := combined.Lookup(storeKey); !ok {
				b.Fatal("not found")
			}
		}
	})
	b.Run("combined_unknown_key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := combined.Lookup("ghk_unknown-key-unknown-key-unknown-key-unknown"); ok {
				b.Fatal("found")
			}
		}
	})
}
