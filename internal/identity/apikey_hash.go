package identity

import (
	"crypto/subtle"
	"encoding/binary"
)

// MaxAPIKeyLen is the longest API key looked up; longer values are
// refused without hashing.
const MaxAPIKeyLen = maxAPIKeyLen

// LookupHash is Lookup for a key already hashed, so that a caller that
// consults several tables hashes the key once.
func (t *KeyTable) LookupHash(h KeyHash) (*Principal, bool) {
	var found *Principal
	for _, e := range t.byPrefix[binary.BigEndian.Uint64(h[:8])] {
		if subtle.ConstantTimeCompare(e.hash[:], h[:]) == 1 {
			found = e.principal
		}
	}
	return found, found != nil
}
