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
	// Abandoned: the client went away (499) while the gateway waited for
	// the backend's response headers.
	Abandoned
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
	answered uint32
	timedOut uint32
	limited  uint32
	// abandoned counts the exchanges whose client went away before the
	// response headers; abandonedUs is the longest of their waits.
	abandoned   uint32
	abandonedUs uint32
	// The busiest second of requests that called (or asked to call) the
	// backend: answered, timed out or limited; refusals by a policy step
	// and requests the gateway answered itself are not counted.
	sec      int64 // the second secCount counts
	secCount uint32
	peakSec  uint32
	// heldUs sums the whole duration of answered requests (their body
	// streamed, or their upgraded connection open): how long each held
	// the backend, for the concurrency estimate.
	heldUs uint64
	bins   [latencyBins]uint32 // time to the response headers, answered requests
}

func (b *hourBucket) reset(epoch int64) {
	*b = hourBucket{epoch: epoch}
}

// add records one request that ended in second t after d.
func (b *hourBucket) add(t int64, d time.Duration, x Exchange) {
	b.requests++
	switch x.Outcome {
	case NoUpstream:
		return
	case Answered:
		b.answered++
		b.bins[binOf(x.Upstream)]++
		b.heldUs += uint64(max(d, 0) / time.Microsecond)
	case TimedOut:
		b.timedOut++
	case Limited:
		b.limited++
	case Abandoned:
		b.abandoned++
		b.abandonedUs = max(b.abandonedUs, uint32(min(max(x.Upstream, 0)/time.Microsecond, math.MaxUint32)))
	}
	if b.sec != t {
		b.sec, b.secCount = t, 0
	}
	b.secCount++
	b.peakSec = max(b.peakSec, b.secCount)
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
	// Abandoned counts the requests whose client went away (499) while
	// the backend's response headers were awaited; AbandonedMax is the
	// longest of those waits.
	Abandoned    uint64        `json:"abandoned"`
	AbandonedMax time.Duration `json:"abandoned_max"`
	// PeakRPS is the most requests that called the backend (answered,
	// timed out or limited) and ended within one second.
	PeakRPS uint64 `json:"peak_rps"`
	// Held is the mean whole duration of answered requests (with their
	// body or upgraded connection): how long each held the backend.
	Held time.Duration `json:"held"`
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
	var heldUs uint64
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
		s.Abandoned += uint64(b.abandoned)
		s.AbandonedMax = max(s.AbandonedMax, time.Duration(b.abandonedUs)*time.Microsecond)
		s.PeakRPS = max(s.PeakRPS, uint64(b.peakSec))
		heldUs += b.heldUs
		for j, n := range b.bins {
			bins[j] += uint64(n)
		}
	}
	r.mu.Unlock()
	if oldest >= 0 {
		s.Since = time.Unix(oldest*3600, 0).UTC()
	}
	if s.Answered > 0 {
		s.Held = time.Duration(heldUs/s.Answered) * time.Microsecond
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

// SetUpstreamSettings tells the statistics the operation's deadline and
// its backend's concurrency limit in force (a reload calls it when its
// configuration is served). When one changed, the day's timeouts, or the
// day's refusals by the limit, are forgotten: they were judged against the
// old setting, and would otherwise keep asking for a change already made.
// The latencies, which do not depend on either, are kept.
func (r *RouteStats) SetUpstreamSettings(deadline time.Duration, limit int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settingsSet {
		for i := range r.hours {
			b := &r.hours[i]
			if deadline != r.deadline {
				b.timedOut, b.abandoned, b.abandonedUs = 0, 0, 0
			}
			if limit != r.limit {
				b.limited = 0
			}
		}
	}
	r.settingsSet, r.deadline, r.limit = true, deadline, limit
}
