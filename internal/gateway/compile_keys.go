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
// runtime has them). The key is hashed once. The file owns its consumers'
// names: a store consumer of the same name (made before the file named
// it) authenticates no one, or two identities would share one name, and
// its rate-limit and quota keys.
func (c *compiler) keyLookup(static *identity.KeyTable) policy.KeyLookup {
	if c.rt.ConsumerKeys == nil {
		return static
	}
	if c.fileConsumers == nil {
		c.fileConsumers = map[string]bool{}
		for _, cons := range c.cfg.Consumers {
			c.fileConsumers[cons.Name] = true
		}
	}
	return &combinedKeys{static: static, dynamic: c.rt.ConsumerKeys, fileNames: c.fileConsumers}
}

type combinedKeys struct {
	static    *identity.KeyTable
	dynamic   HashLookup
	fileNames map[string]bool // the configuration's consumers
}

func (k *combinedKeys) Lookup(key string) (*identity.Principal, bool) {
	if key == "" || len(key) > identity.MaxAPIKeyLen {
		return nil, false
	}
	h := identity.HashKey(key)
	if p, ok := k.static.LookupHash(h); ok {
		return p, true
	}
	p, ok := k.dynamic.LookupHash(h)
	if ok && k.fileNames[p.Consumer] {
		return nil, false // a name the file owns
	}
	return p, ok
}
