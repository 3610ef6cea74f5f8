package observe

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Latency statistics in fixed memory: for each operation, two rings of
// buckets (60 one-second buckets and 60 one-minute buckets), each with a
// log-linear latency histogram and status counters. Observing a request
// takes one short lock and never allocates; memory is fixed per
// operation whatever the traffic.

const (
	// binsPerOctave is the number of sub-bins per power of two: the
	// relative width of a bin is at most 1/binsPerOctave (12.5%).
	binsPerOctave = 8
	// latencyBins covers 0 µs up to 2^28 µs (about 4m28s); slower
	// requests count in the last bin.
	latencyBins = (27-2)*binsPerOctave + binsPerOctave
	ringSize    = 60
)

// Window is a sliding window of statistics.
type Window int

// The windows kept.
const (
	LastMinute Window = iota // 60 one-second buckets
	LastHour                 // 60 one-minute buckets
)

// String returns "1m" or "1h".
func (w Window) String() string {
	if w == LastHour {
		return "1h"
	}
	return "1m"
}

// bucket is the traffic of one second or one minute.
type bucket struct {
	epoch int64 // the second or minute this bucket holds; -1 when unused
	count uint32
	err4  uint32
	err5  uint32
	bins  [latencyBins]uint32
}

func (b *bucket) add(status int, bin int) {
	b.count++
	switch {
	case status >= 500:
		b.err5++
	case status >= 400:
		b.err4++
	}
	b.bins[bin]++
}

// binOf returns the histogram bin of a latency.
func binOf(d time.Duration) int {
	us := d.Microseconds()
	if us < binsPerOctave {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	e := bits.Len64(uint64(us)) - 1 // us in [2^e, 2^(e+1)), e >= 3
	sub := int(uint64(us)>>(e-3)) & (binsPerOctave - 1)
	i := (e-2)*binsPerOctave + sub
	if i >= latencyBins {
		return latencyBins - 1
	}
	return i
}

// binUpper returns the upper bound of a bin, the value reported for a
// percentile that falls in it.
func binUpper(i int) time.Duration {
	if i < binsPerOctave {
		return time.Duration(i+1) * time.Microsecond
	}
	e := i/binsPerOctave + 2
	sub := i % binsPerOctave
	lo := uint64(binsPerOctave+sub) << (e - 3)
	width := uint64(1) << (e - 3)
	return time.Duration(lo+width) * time.Microsecond
}

// Stats keeps the latency statistics of every operation. It lives on the
// gateway's runtime so that a reload keeps them.
type Stats struct {
	now    func() time.Time
	system bool // now is time.Now

	mu     sync.Mutex
	routes map[routeKey]*RouteStats
	// others holds the upstream hours other gateway processes saved to
	// the store (SetOtherHours), which Upstream adds to each route's own.
	others atomic.Pointer[map[UpstreamKey][]UpstreamHour]
}

type routeKey struct{ api, op string }

// UpstreamKey names an operation's upstream hours in the store.
type UpstreamKey struct{ API, Operation string }

// NewStats returns an empty registry; now is the clock (nil: time.Now).
func NewStats(now func() time.Time) *Stats {
	system := now == nil
	if system {
		now = time.Now
	}
	return &Stats{now: now, system: system, routes: map[routeKey]*RouteStats{}}
}

// Route returns the statistics of one operation, creating them on first
// use. The gateway resolves it at compile time; the request path only
// calls Observe.
func (s *Stats) Route(api, op string) *RouteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := routeKey{api, op}
	r := s.routes[k]
	if r == nil {
		r = &RouteStats{API: api, Operation: op, now: s.now, system: s.system, parent: s}
		for i := range r.sec {
			r.sec[i].epoch = -1
			r.min[i].epoch = -1
		}
		for i := range r.hours {
			r.hours[i].epoch = -1
		}
		s.routes[k] = r
	}
	return r
}

// SetOtherHours replaces the upstream hours of other gateway processes
// (this gateway before a restart, the others sharing the store) that
// each route's Upstream adds to its own.
func (s *Stats) SetOtherHours(hours map[UpstreamKey][]UpstreamHour) {
	s.others.Store(&hours)
}

// OwnHours returns each route's own upstream hours of the last day (see
// RouteStats.UpstreamHours), for the store; routes without are left out.
func (s *Stats) OwnHours() map[UpstreamKey][]UpstreamHour {
	s.mu.Lock()
	routes := make([]*RouteStats, 0, len(s.routes))
	for _, r := range s.routes {
		routes = append(routes, r)
	}
	s.mu.Unlock()
	out := map[UpstreamKey][]UpstreamHour{}
	for _, r := range routes {
		if h := r.UpstreamHours(); len(h) > 0 {
			out[UpstreamKey{r.API, r.Operation}] = h
		}
	}
	return out
}

// Retain drops the statistics of operations not in keep (those a new
// snapshot no longer has).
func (s *Stats) Retain(keep []*RouteStats) {
	set := make(map[*RouteStats]bool, len(keep))
	for _, r := range keep {
		set[r] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.routes {
		if !set[r] {
			delete(s.routes, k)
		}
	}
}

// RouteStats are the statistics of one operation.
type RouteStats struct {
	API, Operation string
	now            func() time.Time
	system         bool   // now is time.Now
	parent         *Stats // for the other processes' hours

	mu  sync.Mutex
	sec [ringSize]bucket
	min [ringSize]bucket
	// hours is the upstream exchange over the last day, for the
	// suggestions (upstream_stats.go).
	hours [hourRingSize]hourBucket
	// The settings the day's timeouts and refusals were judged against
	// (SetUpstreamSettings).
	settingsSet bool
	deadline    time.Duration
	limit       int
}

// Observe records one finished request. It does not allocate.
func (r *RouteStats) Observe(status int, d time.Duration) {
	if r == nil {
		return
	}
	r.observe(status, d, Exchange{}, r.now())
}

// ObserveEnded is Observe for a request that ended at end (the caller
// has read the clock already); with a clock of its own (a test's), the
// statistics read that instead.
func (r *RouteStats) ObserveEnded(status int, d time.Duration, end time.Time) {
	if r == nil {
		return
	}
	if !r.system {
		end = r.now()
	}
	r.observe(status, d, Exchange{}, end)
}

// ObserveExchange is ObserveEnded for a request whose upstream exchange
// is described by x: it also feeds the day's upstream statistics that
// the suggestions read.
func (r *RouteStats) ObserveExchange(status int, d time.Duration, x Exchange, end time.Time) {
	if r == nil {
		return
	}
	if !r.system {
		end = r.now()
	}
	r.observe(status, d, x, end)
}

func (r *RouteStats) observe(status int, d time.Duration, x Exchange, now time.Time) {
	bin := binOf(d)
	t := now.Unix()
	r.mu.Lock()
	sb := &r.sec[t%ringSize]
	if sb.epoch != t {
		*sb = bucket{epoch: t}
	}
	sb.add(status, bin)
	m := t / 60
	mb := &r.min[m%ringSize]
	if mb.epoch != m {
		*mb = bucket{epoch: m}
	}
	mb.add(status, bin)
	h := t / 3600
	hb := &r.hours[h%hourRingSize]
	if hb.epoch != h {
		hb.reset(h)
	}
	hb.add(t, d, x)
	r.mu.Unlock()
}

// Summary is what a window says about an operation or an API.
type Summary struct {
	Requests   uint64  `json:"requests"`
	RPS        float64 `json:"rps"`
	Errors4xx  uint64  `json:"errors_4xx"`
	Errors5xx  uint64  `json:"errors_5xx"`
	ErrorRate4 float64 `json:"error_rate_4xx"`
	ErrorRate5 float64 `json:"error_rate_5xx"`
	P50ms      float64 `json:"p50_ms"`
	P95ms      float64 `json:"p95_ms"`
	P99ms      float64 `json:"p99_ms"`
}

// Point is one bucket of a series: a second (LastMinute) or a minute
// (LastHour).
type Point struct {
	Time      int64   `json:"t"` // Unix seconds at the start of the bucket
	RPS       float64 `json:"rps"`
	ErrorRate float64 `json:"error_rate"` // 4xx and 5xx over all requests
	P50ms     float64 `json:"p50_ms"`
	P95ms     float64 `json:"p95_ms"`
	P99ms     float64 `json:"p99_ms"`
}

// acc accumulates buckets.
type acc struct {
	count, err4, err5 uint64
	bins              [latencyBins]uint64
}

func (a *acc) addBucket(b *bucket) {
	a.count += uint64(b.count)
	a.err4 += uint64(b.err4)
	a.err5 += uint64(b.err5)
	for i, n := range b.bins {
		a.bins[i] += uint64(n)
	}
}

func (a *acc) quantile(q float64) float64 {
	if a.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(a.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, n := range a.bins {
		seen += n
		if seen >= rank {
			return float64(binUpper(i).Microseconds()) / 1000
		}
	}
	return float64(binUpper(latencyBins-1).Microseconds()) / 1000
}

func (a *acc) summary(span time.Duration) Summary {
	s := Summary{Requests: a.count, Errors4xx: a.err4, Errors5xx: a.err5}
	s.RPS = float64(a.count) / span.Seconds()
	if a.count > 0 {
		s.ErrorRate4 = float64(a.err4) / float64(a.count)
		s.ErrorRate5 = float64(a.err5) / float64(a.count)
	}
	s.P50ms, s.P95ms, s.P99ms = a.quantile(.50), a.quantile(.95), a.quantile(.99)
	return s
}

// ring returns the ring of a window and the current epoch.
func (r *RouteStats) ring(w Window, now time.Time) (*[ringSize]bucket, int64) {
	if w == LastHour {
		return &r.min, now.Unix() / 60
	}
	return &r.sec, now.Unix()
}

// collect adds the window's buckets to total and, per bucket, to series
// (oldest first, one entry per bucket of the window).
func (r *RouteStats) collect(w Window, now time.Time, total *acc, series []acc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ring, cur := r.ring(w, now)
	for i := range ring {
		b := &ring[i]
		age := cur - b.epoch
		if b.epoch < 0 || age < 0 || age >= ringSize {
			continue
		}
		total.addBucket(b)
		if series != nil {
			series[ringSize-1-age].addBucket(b)
		}
	}
}

// Report is the statistics of every API and operation over one window.
type Report struct {
	Window    string      `json:"window"`
	Generated time.Time   `json:"generated"`
	APIs      []APIReport `json:"apis"`
}

// APIReport is one API: its totals, its operations and, when asked, its
// series.
type APIReport struct {
	API string `json:"api"`
	Summary
	Series     []Point    `json:"series,omitempty"`
	Operations []OpReport `json:"operations"`
	seriesAcc  *[ringSize]acc
	total      acc
}

// OpReport is one operation.
type OpReport struct {
	Operation string `json:"operation"`
	Summary
}

// Report summarizes every API and operation over w. With series, each API
// also gets one point per bucket of the window (60 points). Requests that
// matched no operation are reported under the API "" as operation "".
func (s *Stats) Report(w Window, series bool) *Report {
	now := s.now()
	s.mu.Lock()
	routes := make([]*RouteStats, 0, len(s.routes))
	for _, r := range s.routes {
		routes = append(routes, r)
	}
	s.mu.Unlock()
	sort.Slice(routes, func(i, j int) bool {
		if routes[i].API != routes[j].API {
			return routes[i].API < routes[j].API
		}
		return routes[i].Operation < routes[j].Operation
	})
	span := time.Minute
	unit := int64(1)
	if w == LastHour {
		span, unit = time.Hour, 60
	}
	rep := &Report{Window: w.String(), Generated: now.UTC(), APIs: []APIReport{}}
	var cur *APIReport
	for _, r := range routes {
		if cur == nil || cur.API != r.API {
			rep.APIs = append(rep.APIs, APIReport{API: r.API})
			cur = &rep.APIs[len(rep.APIs)-1]
			if series {
				cur.seriesAcc = new([ringSize]acc)
			}
		}
		var op acc
		var ser []acc
		if cur.seriesAcc != nil {
			ser = cur.seriesAcc[:]
		}
		r.collect(w, now, &op, ser)
		cur.total.count += op.count
		cur.total.err4 += op.err4
		cur.total.err5 += op.err5
		for i := range op.bins {
			cur.total.bins[i] += op.bins[i]
		}
		cur.Operations = append(cur.Operations, OpReport{Operation: r.Operation, Summary: op.summary(span)})
	}
	nowEpoch := now.Unix() / unit
	for i := range rep.APIs {
		a := &rep.APIs[i]
		a.Summary = a.total.summary(span)
		if a.seriesAcc != nil {
			a.Series = make([]Point, ringSize)
			for j := range a.seriesAcc {
				b := &a.seriesAcc[j]
				p := Point{Time: (nowEpoch - int64(ringSize-1-j)) * unit}
				p.RPS = float64(b.count) / float64(unit)
				if b.count > 0 {
					p.ErrorRate = float64(b.err4+b.err5) / float64(b.count)
				}
				p.P50ms, p.P95ms, p.P99ms = b.quantile(.50), b.quantile(.95), b.quantile(.99)
				a.Series[j] = p
			}
			a.seriesAcc = nil
		}
	}
	return rep
}
