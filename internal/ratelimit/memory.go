package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// shardCount splits a limiter's keys so that requests for different keys
// rarely wait for each other.
const shardCount = 64

// sweepEvery is the least time between two routine sweeps of one shard
// for idle keys; sweepFullEvery between two sweeps of a full shard, so
// that a flood of new keys does not sweep it on every request.
const (
	sweepEvery     = 10 * time.Second
	sweepFullEvery = time.Second
)

// Memory is an in-memory GCRA limiter with bounded memory.
//
// Keys are stored as 64-bit hashes (maphash, with a random seed per
// limiter), so a key costs the same few bytes whatever its length; two
// keys that collide (about one chance in 10^7 with a million keys) share
// a bucket. A key's state is dropped once its bucket is full again, at
// the next sweep of its shard (on a request to the shard, at most every
// 10 s; every 1 s when the shard is full). At most maxKeys keys are kept:
// a new key arriving when its shard is full, after a sweep, shares the shard's one
// overflow bucket with the other keys in the same situation, so it is
// limited together with them, never unlimited.
type Memory struct {
	params   atomic.Pointer[Params]
	seed     maphash.Seed
	perShard int
	overflow atomic.Int64 // decisions made with an overflow bucket
	shards   [shardCount]shard
}

type shard struct {
	mu        sync.Mutex
	tats      map[uint64]int64
	overflow  int64 // tat of the shard's overflow bucket
	lastSweep int64
	_         [32]byte // keep shards on separate cache lines
}

// NewMemory returns a limiter with parameters p that keeps at most
// maxKeys keys (rounded up to a multiple of 64).
func NewMemory(p Params, maxKeys int) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), perShard: max(1, (maxKeys+shardCount-1)/shardCount)}
	m.SetParams(p)
	for i := range m.shards {
		m.shards[i].tats = map[uint64]int64{}
	}
	return m
}

// SetParams changes the limit; the stored state is kept and read with the
// new parameters from the next request on.
func (m *Memory) SetParams(p Params) { m.params.Store(&p) }

// Params returns the current parameters.
func (m *Memory) Params() Params { return *m.params.Load() }

// Allow counts one request under key at now if the limit allows it.
func (m *Memory) Allow(_ context.Context, key []byte, now time.Time) (Decision, error) {
	return m.allowHash(maphash.Bytes(m.seed, key), now.UnixNano()), nil
}

func (m *Memory) allowHash(h uint64, now int64) Decision {
	p := m.params.Load()
	s := &m.shards[h%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tats[h]
	if !ok && len(s.tats) >= m.perShard {
		if now-s.lastSweep >= int64(sweepFullEvery) {
			s.sweep(now)
		}
		if len(s.tats) >= m.perShard {
			m.overflow.Add(1)
			d, next := decide(p, s.overflow, now)
			if d.Allowed {
				s.overflow = next
			}
			return d
		}
	}
	if now-s.lastSweep >= int64(sweepEvery) {
		s.sweep(now)
	}
	d, next := decide(p, tat, now)
	if d.Allowed {
		s.tats[h] = next
	}
	return d
}

// sweep drops the keys whose bucket is full again: their state equals a
// new key's.
func (s *shard) sweep(now int64) {
	s.lastSweep = now
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
		}
	}
}

// Sweep drops idle keys in every shard.
func (m *Memory) Sweep(now time.Time) {
	n := now.UnixNano()
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.sweep(n)
		s.mu.Unlock()
	}
}

// Len returns the number of keys held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}

// Overflowed returns how many decisions used an overflow bucket.
func (m *Memory) Overflowed() int64 { return m.overflow.Load() }

// MaxKeys returns the most keys the limiter keeps.
func (m *Memory) MaxKeys() int { return m.perShard * shardCount }

func hashBytes(m *Memory, b []byte) uint64 { return maphash.Bytes(m.seed, b) }
