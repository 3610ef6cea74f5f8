package backendtoken

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// TokenType is the typ header of every minted token. The tokens are
// bearer access tokens for the backend (RFC 9068 §2.1): the explicit type
// keeps a backend from accepting, say, an ID token in their place.
const TokenType = "at+jwt"

// DefaultClientID is the client_id of a token when the caller has none
// (an mTLS caller, or an anonymous request).
const DefaultClientID = "gatehouse"

// Claims selects the caller attributes a token carries besides sub and
// client_id.
type Claims uint8

// Caller attributes.
const (
	ClaimGroups     Claims = 1 << iota // groups: array of strings
	ClaimRoles                         // roles: array of strings
	ClaimScope                         // scope: space-separated string
	ClaimConsumer                      // consumer: API key consumer name
	ClaimIdP                           // idp: the issuer that authenticated the caller
	ClaimCredential                    // credential: jwt, api_key, mtls or none
)

var claimNames = map[string]Claims{
	"groups": ClaimGroups, "roles": ClaimRoles, "scope": ClaimScope,
	"consumer": ClaimConsumer, "idp": ClaimIdP, "credential": ClaimCredential,
}

// ParseClaims maps configuration names to Claims.
func ParseClaims(names []string) (Claims, error) {
	var c Claims
	for _, n := range names {
		v, ok := claimNames[n]
		if !ok {
			return 0, fmt.Errorf("unknown claim %q", n)
		}
		c |= v
	}
	return c, nil
}

// MintOptions configure the tokens minted for one backend.
type MintOptions struct {
	Issuer    string
	Audience  string
	Algorithm string // ES256 or EdDSA
	TTL       time.Duration
	Claims    Claims
	// AnonymousSubject, when set, is the sub of the token sent with
	// anonymous requests; when empty they carry no token.
	AnonymousSubject string
	// Bearer says the header value is "Bearer <token>" (Authorization);
	// otherwise it is the bare token.
	Bearer bool
	// CacheSize bounds the cache of minted tokens (default 10000).
	CacheSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ErrNoKey is returned when no signing key of the algorithm is active.
var ErrNoKey = errors.New("no active signing key")

// Minter mints the tokens of one backend and caches them: a caller seen
// again gets the same token until a quarter of its lifetime is left. It
// is safe for concurrent use.
type Minter struct {
	keys   *Keys
	opts   MintOptions
	now    func() time.Time
	prefix []byte // {"iss":"...","aud":"..."
	cache  *mintCache
	anon   atomic.Pointer[mintEntry]
}

// NewMinter returns a minter signing with keys.
func NewMinter(keys *Keys, o MintOptions) *Minter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10000
	}
	m := &Minter{keys: keys, opts: o, now: o.Now, cache: newMintCache(o.CacheSize)}
	m.prefix = append(m.prefix, `{"iss":`...)
	m.prefix = appendJSONString(m.prefix, o.Issuer)
	m.prefix = append(m.prefix, `,"aud":`...)
	m.prefix = appendJSONString(m.prefix, o.Audience)
	return m
}

// Options returns the options the minter was made with.
func (m *Minter) Options() MintOptions { return m.opts }

// HeaderValue returns the header value carrying a token for the caller p
// (nil for an anonymous request), or nil when nothing is to be sent. The
// returned slice is shared by every request that gets the same token: it
// may be stored in an http.Header but never modified.
func (m *Minter) HeaderValue(p *identity.Principal) ([]string, error) {
	now := m.now()
	if p == nil {
		if m.opts.AnonymousSubject == "" {
			return nil, nil
		}
		if e := m.anon.Load(); e != nil && now.Before(e.refreshAt) {
			return e.value, nil
		}
		e, err := m.mint(nil, now)
		if err != nil {
			return nil, err
		}
		m.anon.Store(e)
		return e.value, nil
	}
	h := m.hash(p)
	if e := m.cache.get(h); e != nil && now.Before(e.refreshAt) && m.same(e.principal, p) &&
		(p.Expires.IsZero() || !e.exp.After(p.Expires)) {
		return e.value, nil
	}
	e, err := m.mint(p, now)
	if err != nil {
		return nil, err
	}
	e.hash = h
	m.cache.put(e)
	return e.value, nil
}

// clientID is the client the caller used: the client_id (or azp) of its
// token, its API key consumer, or DefaultClientID.
func clientID(p *identity.Principal) string {
	if p == nil {
		return DefaultClientID
	}
	for _, c := range []string{"client_id", "azp"} {
		if s, ok := p.Claims[c].(string); ok && s != "" {
			return s
		}
	}
	if p.Consumer != "" {
		return p.Consumer
	}
	return DefaultClientID
}

// hash covers exactly what the token says about p.
func (m *Minter) hash(p *identity.Principal) uint64 {
	var h maphash.Hash
	h.SetSeed(m.cache.seed)
	c := m.opts.Claims
	h.WriteString(p.Subject)
	h.WriteByte(0)
	h.WriteString(clientID(p))
	h.WriteByte(0)
	if c&ClaimCredential != 0 {
		h.WriteByte(byte(p.Credential))
	}
	if c&ClaimIdP != 0 {
		h.WriteString(p.Issuer)
		h.WriteByte(0)
	}
	if c&ClaimConsumer != 0 {
		h.WriteString(p.Consumer)
		h.WriteByte(0)
	}
	for _, set := range []struct {
		on bool
		vs []string
	}{{c&ClaimGroups != 0, p.Groups}, {c&ClaimRoles != 0, p.Roles}, {c&ClaimScope != 0, p.Scopes}} {
		if !set.on {
			continue
		}
		for _, v := range set.vs {
			h.WriteString(v)
			h.WriteByte(0)
		}
		h.WriteByte(1)
	}
	return h.Sum64()
}

// same reports whether a token minted for a says what one for b would.
func (m *Minter) same(a, b *identity.Principal) bool {
	if a == b {
		return true
	}
	c := m.opts.Claims
	return a.Subject == b.Subject && clientID(a) == clientID(b) &&
		(c&ClaimCredential == 0 || a.Credential == b.Credential) &&
		(c&ClaimIdP == 0 || a.Issuer == b.Issuer) &&
		(c&ClaimConsumer == 0 || a.Consumer == b.Consumer) &&
		(c&ClaimGroups == 0 || slices.Equal(a.Groups, b.Groups)) &&
		(c&ClaimRoles == 0 || slices.Equal(a.Roles, b.Roles)) &&
		(c&ClaimScope == 0 || slices.Equal(a.Scopes, b.Scopes))
}

// mint signs a new token for p (nil: anonymous).
func (m *Minter) mint(p *identity.Principal, now time.Time) (*mintEntry, error) {
	key := m.keys.active(m.opts.Algorithm, now)
	if key == nil {
		return nil, fmt.Errorf("%w for %s", ErrNoKey, m.opts.Algorithm)
	}
	exp := now.Add(m.opts.TTL)
	if p != nil && !p.Expires.IsZero() && p.Expires.Before(exp) && p.Expires.After(now) {
		// Never vouch for a caller longer than its own credential.
		exp = p.Expires
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 512)
	b = append(b, m.prefix...)
	b = append(b, `,"sub":`...)
	if p == nil {
		b = appendJSONString(b, m.opts.AnonymousSubject)
	} else {
		b = appendJSONString(b, p.Subject)
	}
	b = append(b, `,"client_id":`...)
	b = appendJSONString(b, clientID(p))
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, exp.Unix(), 10)
	b = append(b, `,"jti":"`...)
	b = base64.RawURLEncoding.AppendEncode(b, jti[:])
	b = append(b, '"')
	c := m.opts.Claims
	if c&ClaimCredential != 0 {
		cred := "none"
		if p != nil {
			cred = p.Credential.String()
		}
		b = append(b, `,"credential":`...)
		b = appendJSONString(b, cred)
	}
	if p != nil {
		if c&ClaimIdP != 0 && p.Issuer != "" {
			b = append(b, `,"idp":`...)
			b = appendJSONString(b, p.Issuer)
		}
		if c&ClaimConsumer != 0 && p.Consumer != "" {
			b = append(b, `,"consumer":`...)
			b = appendJSONString(b, p.Consumer)
		}
		if c&ClaimGroups != 0 && len(p.Groups) > 0 {
			b = appendJSONArray(append(b, `,"groups":`...), p.Groups)
		}
		if c&ClaimRoles != 0 && len(p.Roles) > 0 {
			b = appendJSONArray(append(b, `,"roles":`...), p.Roles)
		}
		if c&ClaimScope != 0 && len(p.Scopes) > 0 {
			b = append(b, `,"scope":`...)
			b = appendJSONString(b, joinSpace(p.Scopes))
		}
	}
	b = append(b, '}')
	jws, err := key.signer.Sign(b)
	if err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", key.kid, err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	for { // remember the latest expiry the key vouched for
		last := key.lastExp.Load()
		if exp.Unix() <= last || key.lastExp.CompareAndSwap(last, exp.Unix()) {
			break
		}
	}
	v := tok
	if m.opts.Bearer {
		v = "Bearer " + tok
	}
	// Reused until a quarter of its lifetime is left, so that a backend
	// always gets a token with some time to run.
	refresh := exp.Add(-exp.Sub(now) / 4)
	return &mintEntry{principal: p, value: []string{v}, exp: exp, refreshAt: refresh}, nil
}

func joinSpace(vs []string) string {
	n := len(vs) - 1
	for _, v := range vs {
		n += len(v)
	}
	b := make([]byte, 0, n)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, v...)
	}
	return string(b)
}

func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil { // a string always encodes
		panic(err)
	}
	return append(b, q...)
}

func appendJSONArray(b []byte, vs []string) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// mintEntry is immutable once stored.
type mintEntry struct {
	hash      uint64
	principal *identity.Principal
	value     []string
	exp       time.Time
	refreshAt time.Time
}

// mintCache is a bounded, sharded map from a principal's hash to its
// token. A hash collision is caught by comparing the principals, and is a
// miss. When a shard is full, the entry to refresh soonest among a few
// sampled is evicted.
type mintCache struct {
	seed     maphash.Seed
	mask     uint64
	perShard int
	shards   []mintShard
}

type mintShard struct {
	mu sync.Mutex
	m  map[uint64]*mintEntry
	_  [48]byte
}

func newMintCache(size int) *mintCache {
	shards := 1
	for shards < 64 && size/(shards*2) >= 16 {
		shards *= 2
	}
	c := &mintCache{seed: maphash.MakeSeed(), mask: uint64(shards - 1), perShard: (size + shards - 1) / shards, shards: make([]mintShard, shards)}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*mintEntry{}
	}
	return c
}

func (c *mintCache) get(h uint64) *mintEntry {
	sh := &c.shards[h&c.mask]
	sh.mu.Lock()
	e := sh.m[h]
	sh.mu.Unlock()
	return e
}

func (c *mintCache) put(e *mintEntry) {
	sh := &c.shards[e.hash&c.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[e.hash]; !ok && len(sh.m) >= c.perShard {
		var victim uint64
		var oldest *mintEntry
		n := 0
		for k, v := range sh.m {
			if oldest == nil || v.refreshAt.Before(oldest.refreshAt) {
				victim, oldest = k, v
			}
			if n++; n == 4 {
				break
			}
		}
		delete(sh.m, victim)
	}
	sh.m[e.hash] = e
}

// Len returns the number of cached tokens.
func (m *Minter) Len() int {
	n := 0
	for i := range m.cache.shards {
		sh := &m.cache.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
