package anomaly

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
)

// BenchmarkObserve measures what detection adds to a request, against
// the in-memory rate limiter's decision for one key (the same shape of
// work: a hash, a sharded map lookup under a lock, some arithmetic),
// measured in the same run. Report the ratio, not the times.
func BenchmarkObserve(b *testing.B) {
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: time.Hour}
	b.Run("baseline-ratelimit-allow", func(b *testing.B) {
		m := ratelimit.NewMemory(ratelimit.Params{Interval: time.Microsecond, Burst: 1 << 40}, 1000)
		key := []byte("idp\x1falice")
		now := t0
		for b.Loop() {
			m.Allow(context.Background(), key, now)
		}
	})
	b.Run("authenticated", func(b *testing.B) {
		d := New(Options{})
		o := obs(alice, "10.0.0.1", t0, 200, "/orders/1")
		b.ReportAllocs()
		for b.Loop() {
			d.Observe(p, o)
		}
	})
	b.Run("anonymous", func(b *testing.B) {
		d := New(Options{})
		o := obs(nil, "10.0.0.1", t0, 200, "/orders/1")
		b.ReportAllocs()
		for b.Loop() {
			d.Observe(p, o)
		}
	})
	b.Run("sensitive-seen", func(b *testing.B) {
		d := New(Options{QueueSize: 1})
		o := obs(alice, "10.0.0.1", t0, 200, "/orders/1")
		o.Sensitive = true
		d.Observe(p, o)
		b.ReportAllocs()
		for b.Loop() {
			d.Observe(p, o)
		}
	})
	b.Run("throttle-check-nobody-throttled", func(b *testing.B) {
		d := New(Options{})
		ip := netip.MustParseAddr("10.0.0.1")
		b.ReportAllocs()
		for b.Loop() {
			d.Throttled(alice, ip, t0)
		}
	})
}
