package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// APIKeyPrefix starts every generated API key, so that leaked keys are easy
// to recognise (secret scanners) and to tell from JWTs.
const APIKeyPrefix = "ghk_"

// maxAPIKeyLen is the longest API key looked up; longer values are refused
// without hashing.
const maxAPIKeyLen = 512

// KeyHash is the SHA-256 digest of an API key; only hashes are stored.
type KeyHash [32]byte

// HashKey returns the SHA-256 of key. A fast hash is right here, unlike
// for passwords: generated keys carry 256 random bits, so no dictionary
// or brute-force search over the input space is possible and a slow KDF
// such as bcrypt would only add latency to every request (and bcrypt
// would also rule out lookup by hash).
func HashKey(key string) KeyHash {
	return sha256.Sum256([]byte(key))
}

// ParseKeyHash parses a hash written as 64 hexadecimal characters, in
// either case.
func ParseKeyHash(hexstr string) (KeyHash, error) {
	var h KeyHash
	if len(hexstr) != 2*len(h) {
		return h, fmt.Errorf("an API key hash is %d hexadecimal characters, got %d characters", 2*len(h), len(hexstr))
	}
	for i := 0; i < len(hexstr); i++ {
		if !isHex(hexstr[i]) {
			return h, fmt.Errorf("an API key hash is hexadecimal: character %d is not 0-9, a-f or A-F", i+1)
		}
	}
	if _, err := hex.Decode(h[:], []byte(hexstr)); err != nil {
		return KeyHash{}, fmt.Errorf("an API key hash is hexadecimal: %w", err)
	}
	return h, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// String returns the hash in lowercase hexadecimal.
func (h KeyHash) String() string { return hex.EncodeToString(h[:]) }

// GenerateKey returns a new API key: "ghk_" and 32 random bytes in
// unpadded base64url (47 characters in all).
func GenerateKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating an API key: %w", err)
	}
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// KeyTable finds the principal of an API key by the key's hash. Build it
// with NewKeyTable and Add, then share it: Lookup is safe for concurrent
// use, Add is not and must not be called once the table is in use.
type KeyTable struct {
	byPrefix map[uint64][]keyTableEntry
}

type keyTableEntry struct {
	hash      KeyHash
	principal *Principal
}

// NewKeyTable returns an empty table.
func NewKeyTable() *KeyTable {
	return &KeyTable{byPrefix: map[uint64][]keyTableEntry{}}
}

// Add maps a key hash to a principal; a hash added twice is an error (two
// consumers with one key could not be told apart).
func (t *KeyTable) Add(h KeyHash, p *Principal) error {
	if p == nil {
		return fmt.Errorf("API key %s...: nil principal", h.String()[:12])
	}
	idx := binary.BigEndian.Uint64(h[:8])
	for _, e := range t.byPrefix[idx] {
		if e.hash == h {
			return fmt.Errorf("API key %s... is given to more than one consumer", h.String()[:12])
		}
	}
	t.byPrefix[idx] = append(t.byPrefix[idx], keyTableEntry{hash: h, principal: p})
	return nil
}

// Len returns the number of keys in the table.
func (t *KeyTable) Len() int {
	n := 0
	for _, es := range t.byPrefix {
		n += len(es)
	}
	return n
}

// Lookup returns the principal of key. The key is hashed, the hash's first
// 8 bytes select the candidates, and each is compared in full in constant
// time. The map lookup's timing can only reveal whether some stored hash
// shares 64 bits with the hash of the presented key, which tells an
// attacker nothing about any key. Empty keys and keys longer than 512
// bytes are refused without hashing.
func (t *KeyTable) Lookup(key string) (*Principal, bool) {
	if key == "" || len(key) > maxAPIKeyLen {
		return nil, false
	}
	h := HashKey(key)
	var found *Principal
	for _, e := range t.byPrefix[binary.BigEndian.Uint64(h[:8])] {
		if subtle.ConstantTimeCompare(e.hash[:], h[:]) == 1 {
			found = e.principal
		}
	}
	return found, found != nil
}
