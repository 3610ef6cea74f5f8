package gateway

import (
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// HashLookup finds the consumer of a hashed API key; the store's key
// ring implements it. It must answer from memory.
type HashLookup interface {
	LookupHash(h identity.KeyHash) (*identity.Principal, bool)
}

// keyLookup returns the API key lookup of the snapshot's operations: the
// configuration's consumers first, then those of the store (when the
// runtime has them). The key is hashed once.
func (c *compiler) keyLookup(static *identity.KeyTable) policy.KeyLookup {
	if c.rt.ConsumerKeys == nil {
		return static
	}
	return &combinedKeys{static: static, dynamic: c.rt.ConsumerKeys}
}

type combinedKeys struct {
	static  *identity.KeyTable
	dynamic HashLookup
}

func (k *combinedKeys) Lookup(key string) (*identity.Principal, bool) {
	if key == "" || len(key) > identity.MaxAPIKeyLen {
		return nil, false
	}
	h := identity.HashKey(key)
	if p, ok := k.static.LookupHash(h); ok {
		return p, true
	}
	return k.dynamic.LookupHash(h)
}
