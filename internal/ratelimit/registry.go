package ratelimit

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Adjustable is a limiter whose parameters a reload can change while it
// is in use: Memory, or Redis.
type Adjustable interface {
	Limiter
	Params() Params
	SetParams(Params)
}

// ID names a limiter's state so that a reload finds it again: the API, the
// operation ("" for a limit shared by every operation of the API), the
// limit's name and its key specification.
type ID struct {
	API, Operation, Name, Key string
}

// Registry holds the limiters of every configured limit. It outlives
// configuration snapshots, so a reload keeps the counters.
type Registry struct {
	mu       sync.Mutex
	limiters map[ID]Adjustable
	// redis, when set, holds the buckets, shared with the other gateways
	// that use it; otherwise each limiter is a Memory.
	redis  redis.Scripter
	health *redisHealth
}

// NewRegistry returns an empty registry of in-memory limiters.
func NewRegistry() *Registry {
	return &Registry{limiters: map[ID]Adjustable{}}
}

// NewRedisRegistry returns an empty registry whose limiters keep their
// buckets in client's database (see Redis), with o's timeout and
// failure mode.
func NewRedisRegistry(client redis.Scripter, o RedisOptions) *Registry {
	h := newRedisHealth(o)
	h.probe = func(ctx context.Context) error {
		return gcraScript.Run(ctx, client, []string{probeKey}, 1, 1).Err()
	}
	return &Registry{limiters: map[ID]Adjustable{}, redis: client, health: h}
}

// Close stops the background probe of a Redis registry (before its
// client is closed); its limiters still decide, without it.
func (r *Registry) Close() {
	if r.health != nil {
		r.health.close()
	}
}

// Get returns the limiter of id, creating it or updating its parameters.
// A changed maxKeys takes effect only for a new limiter (after the limit
// is renamed or removed and added again).
func (r *Registry) Get(id ID, p Params, maxKeys int) Adjustable {
	m, apply := r.Prepare(id, p, maxKeys)
	if apply != nil {
		apply()
	}
	return m
}

// Prepare is Get for a configuration being compiled, which may yet be
// refused: a new limiter is made at once (nothing in service uses it, and
// Retain drops it if the configuration is refused), but new parameters of
// an existing one, which the configuration in service is counting with,
// are returned as apply, to be called once the new configuration is in
// place; apply is nil when they are unchanged.
//
// maxKeys bounds an in-memory limiter; Redis expires idle buckets itself.
func (r *Registry) Prepare(id ID, p Params, maxKeys int) (m Adjustable, apply func()) {
	return r.PrepareMode(id, p, maxKeys, FailDefault)
}

// PrepareMode is Prepare for a limit with a FailureMode of its own (a
// Redis registry's limits; an in-memory limit never fails). A changed
// mode is applied with the parameters.
func (r *Registry) PrepareMode(id ID, p Params, maxKeys int, mode FailureMode) (m Adjustable, apply func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.limiters[id]; ok {
		newParams := m.Params() != p
		rl, _ := m.(*Redis)
		newMode := rl != nil && rl.Mode() != rl.resolve(mode)
		if !newParams && !newMode {
			return m, nil
		}
		return m, func() {
			if newParams {
				m.SetParams(p)
			}
			if newMode {
				rl.SetMode(mode)
			}
		}
	}
	if r.redis != nil {
		m = newRedis(r.redis, id, p, r.health, maxKeys, mode)
	} else {
		m = NewMemory(p, maxKeys)
	}
	r.limiters[id] = m
	return m, nil
}

// Retain drops the limiters whose ID is not in keep.
func (r *Registry) Retain(keep map[ID]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.limiters {
		if !keep[id] {
			delete(r.limiters, id)
		}
	}
}

// Len returns the number of limiters held.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.limiters)
}
