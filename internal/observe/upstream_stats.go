package observe

import (
	"math"
	"time"
)

// The upstream side of an operation's statistics, kept for a day in
// hourly buckets: how long the backend took to answer, how often it did
// not answer in time, how often the backend's concurrency limit refused
// a request, and the busiest second. The suggestions (package advisor)
// read it to propose timeouts and limits from what was observed.

// hourRingSize is the number of hourly buckets: the current hour and the
// 23 before it.
const hourRingSize = 24

// Outcome is how a request's upstream exchange ended.
type Outcome uint8

// Outcomes.
const (
	// NoUpstream: the backend was not called (refused by a policy step,
	// answered by a mock, or failed before an attempt).
	NoUpstream Outcome = iota
	// Answered: the backend's response headers arrived.
	Answered
	// TimedOut: no response headers before the request or attempt
	// deadline (504 upstream_timeout).
	TimedOut
	// Limited: refused by the backend's max_concurrent_requests (503
	// concurrency_limit).
	Limited
)

// Exchange describes a request's upstream exchange.
type Exchange struct {
	// Upstream is the time the attempts took until the response headers
	// arrived (their sum, when a request was retried).
	Upstream time.Duration
	Outcome  Outcome
}

// hourBucket is one hour of an operation's upstream exchanges.
type hourBucket struct {
	epoch    int64 // hours since the Unix epoch; -1 when unused
	requests uint32
	peakSec  uint32 // most requests that ended in one second
	answered uint32
	timedOut uint32
	limited  uint32
	bins     [latencyBins]uint32 // time to the response headers, answered requests
}

func (b *hourBucket) reset(epoch int64) {
	*b = hourBucket{epoch: epoch}
}

// add records one request; sec is the count of its second so far.
func (b *hourBucket) add(sec uint32, x Exchange) {
	b.requests++
	if sec > b.peakSec {
		b.peakSec = sec
	}
	switch x.Outcome {
	case Answered:
		b.answered++
		b.bins[binOf(x.Upstream)]++
	case TimedOut:
		b.timedOut++
	case Limited:
		b.limited++
	}
}

// UpstreamSummary is what the last day says about an operation's
// upstream exchanges. Latencies are the upper bounds of the histogram's
// bins: at most 12.5% above the true value, never below it.
type UpstreamSummary struct {
	// Since is the start of the oldest hour with a request; zero when
	// there was none.
	Since time.Time `json:"since,omitzero"`
	// Requests counts every request of the operation; Answered those
	// whose backend answered, TimedOut those that got 504
	// upstream_timeout, Limited those refused by the backend's
	// concurrency limit.
	Requests uint64 `json:"requests"`
	Answered uint64 `json:"answered"`
	TimedOut uint64 `json:"timed_out"`
	Limited  uint64 `json:"limited"`
	// PeakRPS is the most requests that ended within one second.
	PeakRPS uint64 `json:"peak_rps"`
	// Time to the backend's response headers, answered requests only.
	P50  time.Duration `json:"p50"`
	P99  time.Duration `json:"p99"`
	P999 time.Duration `json:"p999"`
	Max  time.Duration `json:"max"`
}

// Upstream summarizes the last 24 hours (the current hour and the 23
// before it) of the operation's upstream exchanges.
func (r *RouteStats) Upstream() UpstreamSummary {
	var s UpstreamSummary
	if r == nil {
		return s
	}
	now := r.now().Unix() / 3600
	var bins [latencyBins]uint64
	oldest := int64(-1)
	r.mu.Lock()
	for i := range r.hours {
		b := &r.hours[i]
		age := now - b.epoch
		if b.epoch < 0 || age < 0 || age >= hourRingSize || b.requests == 0 {
			continue
		}
		if oldest < 0 || b.epoch < oldest {
			oldest = b.epoch
		}
		s.Requests += uint64(b.requests)
		s.Answered += uint64(b.answered)
		s.TimedOut += uint64(b.timedOut)
		s.Limited += uint64(b.limited)
		s.PeakRPS = max(s.PeakRPS, uint64(b.peakSec))
		for j, n := range b.bins {
			bins[j] += uint64(n)
		}
	}
	r.mu.Unlock()
	if oldest >= 0 {
		s.Since = time.Unix(oldest*3600, 0).UTC()
	}
	s.P50 = binQuantile(&bins, s.Answered, .50)
	s.P99 = binQuantile(&bins, s.Answered, .99)
	s.P999 = binQuantile(&bins, s.Answered, .999)
	for i := latencyBins - 1; i >= 0; i-- {
		if bins[i] > 0 {
			s.Max = binUpper(i)
			break
		}
	}
	return s
}

// binQuantile returns the upper bound of the bin holding quantile q of n
// samples (zero without samples).
func binQuantile(bins *[latencyBins]uint64, n uint64, q float64) time.Duration {
	if n == 0 {
		return 0
	}
	// The epsilon keeps 0.99*100 (99.00000000000001) at rank 99.
	rank := max(uint64(math.Ceil(q*float64(n)-1e-9)), 1)
	var seen uint64
	for i, c := range bins {
		seen += c
		if seen >= rank {
			return binUpper(i)
		}
	}
	return binUpper(latencyBins - 1)
}
