package identity

import (
	"hash/maphash"
	"sync"
	"time"
)

// tokenCache remembers successfully verified tokens so that a token seen
// again costs a hash and a map lookup instead of a signature check.
//
// It is bounded and sharded: a fixed number of shards, each a map with
// its own mutex and at most ceil(size/shards) entries. Entries are found
// by a 64-bit maphash (seeded randomly per cache) of the token's length
// and its last hashedTail bytes, which hold a JWT's signature (a token of
// a kilobyte hashed whole took about 600 instructions per request), and
// then confirmed by comparing the whole token string, so a hash collision
// is a miss, never another token's principal. Tokens that end alike (a
// forger's, built on a cached token's signature) share a map slot; only
// a verified token is stored, so they cannot push out the one there. The
// cache keeps references to the token strings, at most size × the
// largest accepted token size bytes.
//
// When a shard is full, a few entries are sampled (Go map iteration
// starts at a random place) and the one that expires first is evicted; an
// expired entry is thus evicted first when one is sampled.
//
// A hit is only a hit if the token has not expired (exp plus skew,
// checked against the verifier's clock on every hit) and its key is still
// in the issuer's key set, so a key removed from the JWKS stops being
// accepted at the next refresh.
type tokenCache struct {
	seed     maphash.Seed
	mask     uint64
	perShard int
	shards   []cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[uint64]*cacheEntry
	_  [48]byte // pad to 64 bytes: shards on separate cache lines
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	token     string
	principal *Principal
	expires   time.Time // exp + clock skew
	keys      *KeySet
	key       keyIdent
	keysGen   uint64 // a generation of keys' keys that held key (KeySet.hasKey), or 0
}

type cacheStatus uint8

const (
	cacheMiss cacheStatus = iota
	cacheHit
	cacheExpired
)

// evictionSample is how many entries are looked at to choose a victim.
const evictionSample = 4

func newTokenCache(size int) *tokenCache {
	shards := 1 // a power of two, up to 64, with at least 16 entries each
	for shards < 64 && size/(shards*2) >= 16 {
		shards *= 2
	}
	c := &tokenCache{
		seed:     maphash.MakeSeed(),
		mask:     uint64(shards - 1),
		perShard: (size + shards - 1) / shards,
		shards:   make([]cacheShard, shards),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c
}

// hashedTail is how many of a token's last bytes its hash covers: the
// end of a JWT's signature, 288 random bits (for an HMAC-SHA256 one, 43
// bytes in all; RSA and ECDSA ones are longer).
const hashedTail = 48

// hash is the token's key: its length and its last hashedTail bytes.
func (c *tokenCache) hash(token string) uint64 {
	n := uint64(len(token))
	if len(token) > hashedTail {
		token = token[len(token)-hashedTail:]
	}
	return maphash.String(c.seed, token) ^ n*0x9e3779b97f4a7c15
}

// get looks token up. A hit returns the principal; an expired entry is
// dropped and reported; an entry whose key left the key set is dropped
// and reported as a miss, so the token is verified afresh.
func (c *tokenCache) get(token string, now time.Time) (*Principal, cacheStatus) {
	h := c.hash(token)
	sh := &c.shards[h&c.mask]
	sh.mu.Lock()
	e := sh.m[h]
	sh.mu.Unlock()
	if e == nil || e.token != token {
		return nil, cacheMiss
	}
	if now.After(e.expires) {
		sh.remove(h, e)
		return nil, cacheExpired
	}
	if !e.keys.hasKey(e.key, e.keysGen) {
		sh.remove(h, e)
		return nil, cacheMiss
	}
	return e.principal, cacheHit
}

// put stores a verified token, evicting one entry if the shard is full.
func (c *tokenCache) put(e *cacheEntry) {
	h := c.hash(e.token)
	sh := &c.shards[h&c.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[h]; !ok && len(sh.m) >= c.perShard {
		var (
			victim uint64
			oldest *cacheEntry
			n      int
		)
		for k, v := range sh.m {
			if oldest == nil || v.expires.Before(oldest.expires) {
				victim, oldest = k, v
			}
			if n++; n == evictionSample {
				break
			}
		}
		delete(sh.m, victim)
	}
	sh.m[h] = e
}

// remove deletes the entry for h if it is still e.
func (sh *cacheShard) remove(h uint64, e *cacheEntry) {
	sh.mu.Lock()
	if sh.m[h] == e {
		delete(sh.m, h)
	}
	sh.mu.Unlock()
}
