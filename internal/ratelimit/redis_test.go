package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
)

// redisClient returns a client of the test server (a new connection pool,
// as each gateway has its own), or skips the test.
func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	u := os.Getenv("GATEHOUSE_TEST_REDIS_URL")
	if u == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the Redis rate-limit tests need a server (e.g. redis://127.0.0.1:6379/0)")
	}
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// newID names a limit of the test's own; its buckets are deleted after.
func newID(t testing.TB, c *redis.Client) ratelimit.ID {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	id := ratelimit.ID{API: "test-" + hex.EncodeToString(b), Name: "per-key", Key: "consumer"}
	t.Cleanup(func() {
		ctx := context.Background()
		prefix := ratelimit.NewRedis(c, id, ratelimit.Params{Interval: time.Second, Burst: 1}, 0).Prefix()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return id
}

// The bucket in Redis decides as the one in memory does: a burst, then
// refusals that say how long to wait.
func TestRedis_DecidesLikeGCRA(t *testing.T) {
	c := redisClient(t)
	p := ratelimit.Params{Interval: time.Second, Burst: 5}
	l := ratelimit.NewRedis(c, newID(t, c), p, time.Second)
	ctx := context.Background()
	for i := range 5 {
		d, err := l.Allow(ctx, []byte("acme"), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.Remaining != int64(4-i) {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i+1, d, 4-i)
		}
	}
	d, err := l.Allow(ctx, []byte("acme"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Second || d.Reset <= 4*time.Second || d.Reset > 5*time.Second {
		t.Fatalf("sixth request: %+v, want refused, retry within a second, full again in 4-5 s", d)
	}
	// Another key has its own bucket.
	if d, _ := l.Allow(ctx, []byte("globex"), time.Time{}); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("another key: %+v", d)
	}
	// The bucket expires once it would be full again.
	keys, err := c.Keys(ctx, l.Prefix()+"*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("buckets %v, %v", keys, err)
	}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 5*time.Second+10*time.Millisecond {
			t.Fatalf("bucket %s expires in %v (%v), want within its 5 s window", k, ttl, err)
		}
	}
	// New parameters apply to the bucket in place.
	l.SetParams(ratelimit.Params{Interval: time.Second, Burst: 10})
	if d, _ := l.Allow(ctx, []byte("acme"), time.Time{}); !d.Allowed {
		t.Fatalf("after raising the burst: %+v", d)
	}
}

// Gateways with their own connections to one Redis share each bucket:
// however they race, the burst is admitted once in all.
func TestRedis_GatewaysShareOneBucket(t *testing.T) {
	p := ratelimit.Params{Interval: time.Hour, Burst: 20}
	a, b := redisClient(t), redisClient(t)
	id := newID(t, a)
	la, lb := ratelimit.NewRedis(a, id, p, time.Second), ratelimit.NewRedis(b, id, p, time.Second)
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	for _, l := range []*ratelimit.Redis{la, lb} {
		for range 4 {
			wg.Go(func() {
				for range 10 {
					d, err := l.Allow(context.Background(), []byte("acme"), time.Time{})
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					} else {
						refused.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if allowed.Load() != 20 || refused.Load() != 60 {
		t.Fatalf("%d allowed and %d refused across two gateways, want 20 and 60", allowed.Load(), refused.Load())
	}
}

// With Redis unreachable a decision fails, quickly, and is not an
// allowance: the step refuses the request (fail closed).
func TestRedis_UnreachableServerFailsClosedInTime(t *testing.T) {
	redisClient(t) // the test belongs with the others: skipped without a server
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	l := ratelimit.NewRedis(c, ratelimit.ID{API: "down"}, ratelimit.Params{Interval: time.Second, Burst: 5}, 200*time.Millisecond)
	start := time.Now()
	d, err := l.Allow(context.Background(), []byte("acme"), time.Time{})
	if err == nil || d.Allowed {
		t.Fatalf("with Redis down: %+v, %v; want an error and no allowance", d, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the decision took %v with a 200ms timeout", took)
	}
}

// One decision in Redis against one in memory, in the same run: the
// cost of sharing a limit (a round trip on loopback).
func BenchmarkAllow(b *testing.B) {
	p := ratelimit.Params{Interval: time.Microsecond, Burst: 1 << 40}
	key := []byte("consumer-acme")
	b.Run("memory", func(b *testing.B) {
		m := ratelimit.NewMemory(p, 1000)
		now := time.Now()
		for b.Loop() {
			m.Allow(context.Background(), key, now)
		}
	})
	b.Run("redis", func(b *testing.B) {
		c := redisClient(b)
		l := ratelimit.NewRedis(c, newID(b, c), p, time.Second)
		for b.Loop() {
			if _, err := l.Allow(context.Background(), key, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
