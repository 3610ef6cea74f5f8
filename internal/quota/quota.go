package quota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Params are the parameters of one quota.
type Params struct {
	Limit    int64
	Period   Period
	Location *time.Location
	MaxKeys  int
}

// Decision is the outcome of one request against one quota.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests the period allows.
	Remaining int64
	// Renews is when the next period starts.
	Renews time.Time
}

// overflowKey holds the shared counter of keys that arrive when the quota
// already keeps MaxKeys keys. It cannot collide with a real key, which
// never starts with a NUL byte.
const overflowKey = "\x00overflow"

// Counter counts the requests of one quota, per key and period.
type Counter struct {
	mu      sync.Mutex
	params  Params
	entries map[string]*entry
	dirty   bool
	// swept is the start of the period whose expired entries were last
	// dropped: a full table is scanned once per period (and after a
	// restore), not for every new key.
	swept int64
	// shared: the registry syncs the counter with a SharedStore, whose
	// period may run ahead of this gateway's clock (see allow).
	shared bool
}

// maxKeyLen bounds a key as kept and saved: a longer one (a header value
// can be 64 KB) is kept as its SHA-256.
const maxKeyLen = 256

func keyOf(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type entry struct {
	start int64 // unix seconds of the period's start
	count int64
	// synced is, in shared mode, the part of count that the shared store
	// has acknowledged: the total it returned at the last sync. count -
	// synced is what this gateway counted since and has yet to add to
	// the store. Outside shared mode it stays 0.
	synced int64
}

func newCounter(p Params) *Counter {
	return &Counter{params: p, entries: map[string]*entry{}}
}

// Params returns the quota's parameters.
func (c *Counter) Params() Params {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.params
}

func (c *Counter) setParams(p Params) {
	c.mu.Lock()
	c.params = p
	c.mu.Unlock()
}

// Allow counts one request under key at now if the quota allows it. It
// never fails; the error is for stores that can.
func (c *Counter) Allow(_ context.Context, key string, now time.Time) (Decision, error) {
	return c.allow(key, now), nil
}

func (c *Counter) allow(key string, now time.Time) Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &c.params
	start, end := p.Period.Bounds(now, p.Location)
	s := start.Unix()
	key = keyOf(key)
	e := c.entries[key]
	if e == nil {
		if len(c.entries) >= p.MaxKeys && c.swept != s {
			c.dropExpired(s)
			c.swept = s
		}
		if len(c.entries) >= p.MaxKeys {
			key = overflowKey
			e = c.entries[key]
		}
		if e == nil {
			e = &entry{start: s}
			c.entries[key] = e
		}
	}
	if e.start != s {
		if !c.shared || e.start != end.Unix() {
			e.start, e.count, e.synced = s, 0, 0
		} else {
			// The shared store is already in the next period (another
			// gateway's clock is a little ahead, see settle): count in
			// it rather than restart the one the others have left,
			// whose counts the store would no longer take.
			_, end = p.Period.Bounds(end, p.Location)
		}
	}
	if e.count >= p.Limit {
		return Decision{Allowed: false, Remaining: 0, Renews: end}
	}
	e.count++
	c.dirty = true
	return Decision{Allowed: true, Remaining: p.Limit - e.count, Renews: end}
}

// dropExpired removes the counters of periods before the current one.
func (c *Counter) dropExpired(current int64) {
	for k, e := range c.entries {
		if e.start < current {
			delete(c.entries, k)
		}
	}
}

// Len returns the number of keys held.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
