package observe

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestBinOf_BoundsHoldTheValue(t *testing.T) {
	for _, us := range []int64{0, 1, 7, 8, 9, 15, 16, 100, 999, 1000, 12345, 1 << 20, 99_000_000} {
		d := time.Duration(us) * time.Microsecond
		i := binOf(d)
		up := binUpper(i)
		if up <= d && i != latencyBins-1 {
			t.Errorf("%v: bin %d upper %v is not above it", d, i, up)
		}
		if i > 0 && binUpper(i-1) > d {
			t.Errorf("%v: previous bin's upper %v is above it", d, binUpper(i-1))
		}
		if us >= 8 && float64(up-d)/float64(d) > 0.13 {
			t.Errorf("%v: bin upper %v is more than 13%% above", d, up)
		}
	}
	if binOf(time.Hour) != latencyBins-1 {
		t.Errorf("an hour should land in the last bin")
	}
}

func TestStats_ReportsRatesAndPercentiles(t *testing.T) {
	clk := newFakeClock()
	s := NewStats(clk.Now)
	r := s.Route("orders", "get")
	// 100 requests: 90 at 10ms, 9 at 100ms, 1 at 1s; 5 are 404, 2 are 503.
	for i := range 100 {
		d := 10 * time.Millisecond
		switch {
		case i >= 99:
			d = time.Second
		case i >= 90:
			d = 100 * time.Millisecond
		}
		status := 200
		switch {
		case i < 5:
			status = 404
		case i < 7:
			status = 503
		}
		r.Observe(status, d)
	}
	rep := s.Report(LastMinute, true)
	if len(rep.APIs) != 1 || rep.APIs[0].API != "orders" {
		t.Fatalf("apis: %+v", rep.APIs)
	}
	a := rep.APIs[0]
	if a.Requests != 100 || a.Errors4xx != 5 || a.Errors5xx != 2 {
		t.Errorf("counts: %+v", a.Summary)
	}
	if a.ErrorRate4 != 0.05 || a.ErrorRate5 != 0.02 {
		t.Errorf("error rates: %v %v", a.ErrorRate4, a.ErrorRate5)
	}
	within := func(name string, got, want float64) {
		if got < want || got > want*1.13 {
			t.Errorf("%s = %vms, want about %vms", name, got, want)
		}
	}
	within("p50", a.P50ms, 10)
	within("p95", a.P95ms, 100)
	within("p99", a.P99ms, 100)
	if a.RPS != 100.0/60 {
		t.Errorf("rps = %v", a.RPS)
	}
	if len(a.Series) != 60 || a.Series[59].RPS != 100 {
		t.Errorf("series: len %d, last %+v", len(a.Series), a.Series[len(a.Series)-1])
	}
	if len(a.Operations) != 1 || a.Operations[0].Requests != 100 {
		t.Errorf("operations: %+v", a.Operations)
	}
}

func TestStats_WindowsSlide(t *testing.T) {
	clk := newFakeClock()
	s := NewStats(clk.Now)
	r := s.Route("orders", "get")
	r.Observe(200, time.Millisecond)
	clk.Advance(30 * time.Second)
	r.Observe(200, time.Millisecond)
	if n := s.Report(LastMinute, false).APIs[0].Requests; n != 2 {
		t.Fatalf("after 30s: %d requests in the last minute, want 2", n)
	}
	clk.Advance(45 * time.Second)
	if n := s.Report(LastMinute, false).APIs[0].Requests; n != 1 {
		t.Fatalf("after 75s: %d requests in the last minute, want 1", n)
	}
	if n := s.Report(LastHour, false).APIs[0].Requests; n != 2 {
		t.Fatalf("after 75s: %d requests in the last hour, want 2", n)
	}
	clk.Advance(2 * time.Hour)
	r.Observe(500, time.Millisecond)
	h := s.Report(LastHour, false).APIs[0]
	if h.Requests != 1 || h.Errors5xx != 1 {
		t.Fatalf("two hours later: %+v, want only the new request", h.Summary)
	}
}

func TestStats_RetainDropsRemovedOperations(t *testing.T) {
	s := NewStats(nil)
	keep := s.Route("a", "x")
	s.Route("a", "y").Observe(200, time.Millisecond)
	s.Retain([]*RouteStats{keep})
	if got := s.Route("a", "x"); got != keep {
		t.Error("a kept operation was replaced")
	}
	rep := s.Report(LastMinute, false)
	if len(rep.APIs) != 1 || len(rep.APIs[0].Operations) != 1 {
		t.Errorf("after retain: %+v", rep.APIs)
	}
}

func TestStats_MemoryDoesNotGrowWithTraffic(t *testing.T) {
	clk := newFakeClock()
	s := NewStats(clk.Now)
	r := s.Route("orders", "get")
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	// Two simulated hours of traffic, 50 requests a second.
	for range 2 * 3600 {
		for j := range 50 {
			r.Observe(200+j%4*100, time.Duration(j)*time.Millisecond)
		}
		clk.Advance(time.Second)
	}
	after := heap()
	if after > before+64<<10 {
		t.Errorf("heap grew from %d to %d bytes after 360000 observations", before, after)
	}
	if allocs := testing.AllocsPerRun(1000, func() { r.Observe(200, time.Millisecond) }); allocs != 0 {
		t.Errorf("Observe allocates %v times", allocs)
	}
}

func BenchmarkRouteStatsObserve(b *testing.B) {
	s := NewStats(nil)
	r := s.Route("orders", "get")
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(200, 3*time.Millisecond)
	}
}

func BenchmarkRouteStatsObserveParallel(b *testing.B) {
	s := NewStats(nil)
	r := s.Route("orders", "get")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(200, 3*time.Millisecond)
		}
	})
}

// BenchmarkRouteMetricsObserve is the Prometheus path the gateway already
// takes per request, as a baseline for the statistics.
func BenchmarkRouteMetricsObserve(b *testing.B) {
	m := NewMetrics()
	r := m.Route("orders", "get")
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(200, 0.003)
	}
}

// ObserveEnded files a request under the end time the caller read; a
// registry with a clock of its own (a test's) reads that clock instead.
func TestStats_ObserveEndedUsesCallersTimeWithSystemClock(t *testing.T) {
	s := NewStats(nil)
	r := s.Route("orders", "get")
	r.ObserveEnded(200, time.Millisecond, time.Now().Add(-2*time.Hour)) // filed two hours ago
	r.ObserveEnded(200, time.Millisecond, time.Now())
	if n := s.Report(LastMinute, false).APIs[0].Requests; n != 1 {
		t.Fatalf("%d requests in the last minute, want 1 (the other ended two hours ago)", n)
	}

	clk := newFakeClock()
	fs := NewStats(clk.Now)
	fr := fs.Route("orders", "get")
	fr.ObserveEnded(200, time.Millisecond, time.Now().Add(-2*time.Hour))
	if n := fs.Report(LastMinute, false).APIs[0].Requests; n != 1 {
		t.Fatalf("with a test clock: %d requests in the last minute, want 1 (filed by that clock)", n)
	}
}
