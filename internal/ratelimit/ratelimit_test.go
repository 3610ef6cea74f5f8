package ratelimit

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// The exact GCRA semantics: burst at once, then one request per interval.
func TestGCRA_Semantics(t *testing.T) {
	p := NewParams(10, time.Second, 3) // interval 100ms, burst 3
	type step struct {
		at        time.Duration // since t0
		allowed   bool
		remaining int64
		retry     time.Duration
		reset     time.Duration
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"burst then refused", []step{
			{0, true, 2, 0, 100 * time.Millisecond},
			{0, true, 1, 0, 200 * time.Millisecond},
			{0, true, 0, 0, 300 * time.Millisecond},
			{0, false, 0, 100 * time.Millisecond, 300 * time.Millisecond},
			{50 * time.Millisecond, false, 0, 50 * time.Millisecond, 250 * time.Millisecond},
		}},
		{"one interval refills one request", []step{
			{0, true, 2, 0, 100 * time.Millisecond},
			{0, true, 1, 0, 200 * time.Millisecond},
			{0, true, 0, 0, 300 * time.Millisecond},
			{100 * time.Millisecond, true, 0, 0, 300 * time.Millisecond},
			{100 * time.Millisecond, false, 0, 100 * time.Millisecond, 300 * time.Millisecond},
		}},
		{"idle time refills up to burst only", []step{
			{0, true, 2, 0, 100 * time.Millisecond},
			{time.Hour, true, 2, 0, 100 * time.Millisecond},
		}},
		{"steady rate is never refused", []step{
			{0, true, 2, 0, 100 * time.Millisecond},
			{100 * time.Millisecond, true, 2, 0, 100 * time.Millisecond},
			{200 * time.Millisecond, true, 2, 0, 100 * time.Millisecond},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory(p, 100)
			for i, s := range tc.steps {
				d, _ := m.Allow(context.Background(), []byte("k"), t0.Add(s.at))
				want := Decision{Allowed: s.allowed, Remaining: s.remaining, RetryAfter: s.retry, Reset: s.reset}
				if d != want {
					t.Fatalf("step %d: %+v, want %+v", i, d, want)
				}
			}
		})
	}
}

// Over any window of length d, at most burst + d/interval requests pass.
func TestGCRA_NeverAllowsMoreThanBurstPlusRate(t *testing.T) {
	p := NewParams(5, time.Minute, 2) // interval 12s
	m := NewMemory(p, 10)
	allowed := 0
	for i := range 600 { // one request per second for 10 minutes
		if d, _ := m.Allow(context.Background(), []byte("k"), t0.Add(time.Duration(i)*time.Second)); d.Allowed {
			allowed++
		}
	}
	// 2 at once + one per 12s over 599s = 2 + 49.
	if allowed != 2+599/12 {
		t.Fatalf("%d allowed, want %d", allowed, 2+599/12)
	}
}

func TestMemory_KeysAreIndependent(t *testing.T) {
	m := NewMemory(NewParams(1, time.Minute, 1), 100)
	a, _ := m.Allow(context.Background(), []byte("a"), t0)
	a2, _ := m.Allow(context.Background(), []byte("a"), t0)
	b, _ := m.Allow(context.Background(), []byte("b"), t0)
	if !a.Allowed || a2.Allowed || !b.Allowed {
		t.Fatalf("a %v, a again %v, b %v", a.Allowed, a2.Allowed, b.Allowed)
	}
}

func TestMemory_IdleKeysExpire(t *testing.T) {
	// max_keys is split across shards; leave every shard room for far
	// more than its share of 500 keys, so that no key is evicted.
	m := NewMemory(NewParams(10, time.Second, 10), 100*shardCount)
	for i := range 500 {
		m.Allow(context.Background(), fmt.Appendf(nil, "k%d", i), t0)
	}
	if m.Len() != 500 {
		t.Fatalf("%d keys", m.Len())
	}
	m.Sweep(t0.Add(99 * time.Millisecond))
	if m.Len() != 500 {
		t.Fatalf("%d keys left before their buckets are full again", m.Len())
	}
	m.Sweep(t0.Add(100 * time.Millisecond)) // one request refills in one interval
	if m.Len() != 0 {
		t.Fatalf("%d idle keys kept", m.Len())
	}
	// A shard sweeps itself on use at most every sweepEvery.
	m.Allow(context.Background(), []byte("x"), t0)
	m.Allow(context.Background(), []byte("y"), t0.Add(sweepEvery+time.Second))
	if m.Len() > 2 {
		t.Fatalf("%d keys", m.Len())
	}
}

// Threat: a flood of distinct keys (spoofed headers, many IPs) must not
// grow memory past max_keys, and must not get unlimited requests.
func TestMemory_MaxKeysBoundsMemoryAndOverflowIsLimited(t *testing.T) {
	const maxKeys = 64 * 10
	m := NewMemory(NewParams(1, time.Hour, 1), maxKeys)
	allowed := 0
	for i := range 10 * maxKeys {
		if d, _ := m.Allow(context.Background(), fmt.Appendf(nil, "k%d", i), t0); d.Allowed {
			allowed++
		}
	}
	if m.Len() > maxKeys {
		t.Fatalf("%d keys kept, max %d", m.Len(), maxKeys)
	}
	// Each shard's overflow bucket allows its burst (1) once.
	if allowed > maxKeys+shardCount {
		t.Fatalf("%d requests allowed with %d keys kept: overflow keys were not limited", allowed, maxKeys)
	}
	if m.Overflowed() == 0 {
		t.Fatal("no overflow decision")
	}
}

func TestRegistry_KeepsStateAcrossGetAndRetains(t *testing.T) {
	r := NewRegistry()
	id := ID{API: "a", Name: "burst", Key: "subject"}
	m := r.Get(id, NewParams(1, time.Minute, 1), 10)
	m.Allow(context.Background(), []byte("k"), t0)
	m2 := r.Get(id, NewParams(2, time.Minute, 1), 10) // a reload that changes the rate
	if m2 != m || m2.Params().Interval != 30*time.Second {
		t.Fatal("a reload lost the limiter or kept the old rate")
	}
	if d, _ := m2.Allow(context.Background(), []byte("k"), t0); d.Allowed {
		t.Fatal("the counter was reset")
	}
	r.Retain(map[ID]bool{})
	if r.Len() != 0 {
		t.Fatal("Retain kept an unused limiter")
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMemory_MillionKeys reports the bytes per key with one million
// distinct keys, and checks the bound: 256 MB, and no growth past
// max_keys when three million keys arrive.
func TestMemory_MillionKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 100 MB")
	}
	const n = 1_000_000
	base := heapInUse()
	m := NewMemory(NewParams(100, time.Second, 100), n)
	var key [8]byte
	for i := range n {
		binary.LittleEndian.PutUint64(key[:], uint64(i))
		m.allowHash(hashOf(m, key[:]), t0.UnixNano())
	}
	used := heapInUse() - base
	t.Logf("1M keys: %d kept, heap %.1f MB, %.1f bytes/key", m.Len(), float64(used)/(1<<20), float64(used)/float64(m.Len()))
	if used > 256<<20 {
		t.Fatalf("heap %d MB for 1M keys, budget 256 MB", used>>20)
	}
	for i := n; i < 3*n; i++ {
		binary.LittleEndian.PutUint64(key[:], uint64(i))
		m.allowHash(hashOf(m, key[:]), t0.UnixNano())
	}
	after := heapInUse() - base
	t.Logf("3M distinct keys offered: %d kept, heap %.1f MB", m.Len(), float64(after)/(1<<20))
	if m.Len() > m.MaxKeys() || after > used+used/4 {
		t.Fatalf("memory grew past the bound: %d keys, %d MB", m.Len(), after>>20)
	}
	runtime.KeepAlive(m)
}

func hashOf(m *Memory, b []byte) uint64 {
	return hashBytes(m, b)
}

func BenchmarkMemoryAllow(b *testing.B) {
	for _, keys := range []int{1, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			m := NewMemory(NewParams(1_000_000, time.Second, 1_000_000), 2_000_000)
			ctx := context.Background()
			var key [8]byte
			now := t0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				binary.LittleEndian.PutUint64(key[:], uint64(i%keys))
				m.Allow(ctx, key[:], now)
			}
		})
	}
}

// BenchmarkMemoryKeys reports the memory cost of one key.
func BenchmarkMemoryKeys(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		base := heapInUse()
		m := NewMemory(NewParams(100, time.Second, 100), n)
		var key [8]byte
		for i := range n {
			binary.LittleEndian.PutUint64(key[:], uint64(i))
			m.Allow(context.Background(), key[:], t0)
		}
		used := heapInUse() - base
		b.ReportMetric(float64(used)/float64(m.Len()), "bytes/key")
		b.ReportMetric(float64(used)/(1<<20), "MB/1M-keys")
		runtime.KeepAlive(m)
	}
}
