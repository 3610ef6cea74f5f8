package observe

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
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
// before it) of the operation's upstream exchanges, with the hours other
// gateway processes saved (Stats.SetOtherHours).
func (r *RouteStats) Upstream() UpstreamSummary {
	if r == nil {
		return UpstreamSummary{}
	}
	var others []UpstreamHour
	if r.parent != nil {
		if m := r.parent.others.Load(); m != nil {
			others = (*m)[UpstreamKey{r.API, r.Operation}]
		}
	}
	return r.UpstreamWith(others)
}

// UpstreamWith is Upstream with the hours other gateway processes kept of
// the operation (read back from the store: this gateway before a restart,
// or the others that share the store) added to this process's own. Their
// timeouts and given-up requests count only when they were judged against
// the deadline in force here, their refusals only under the same
// concurrency limit (SetUpstreamSettings); the busiest second is the
// busiest of any one process, since a concurrency limit is each
// gateway's own.
func (r *RouteStats) UpstreamWith(others []UpstreamHour) UpstreamSummary {
	var s UpstreamSummary
	if r == nil {
		return s
	}
	now := r.now().Unix() / 3600
	var bins [latencyBins]uint64
	var heldUs uint64
	oldest := int64(-1)
	add := func(b *hourBucket, timeouts, refusals bool) {
		age := now - b.epoch
		if b.epoch < 0 || age < 0 || age >= hourRingSize || b.requests == 0 {
			return
		}
		if oldest < 0 || b.epoch < oldest {
			oldest = b.epoch
		}
		s.Requests += uint64(b.requests)
		s.Answered += uint64(b.answered)
		if timeouts {
			s.TimedOut += uint64(b.timedOut)
			s.Abandoned += uint64(b.abandoned)
			s.AbandonedMax = max(s.AbandonedMax, time.Duration(b.abandonedUs)*time.Microsecond)
		}
		if refusals {
			s.Limited += uint64(b.limited)
		}
		s.PeakRPS = max(s.PeakRPS, uint64(b.peakSec))
		heldUs += b.heldUs
		for j, n := range b.bins {
			bins[j] += uint64(n)
		}
	}
	r.mu.Lock()
	for i := range r.hours {
		add(&r.hours[i], true, true)
	}
	deadline, limit, settingsSet := r.deadline, r.limit, r.settingsSet
	r.mu.Unlock()
	for i := range others {
		o := &others[i]
		b := o.bucket()
		add(&b, !settingsSet || o.Deadline == deadline, !settingsSet || o.Limit == limit)
	}
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

// UpstreamHour is one hour of an operation's upstream statistics as a
// gateway saves it to the store (MarshalBinary) and reads it back
// (UnmarshalBinary), with the deadline and the concurrency limit its
// timeouts and refusals were judged against.
type UpstreamHour struct {
	Hour        int64         `json:"hour"` // hours since the Unix epoch
	Deadline    time.Duration `json:"deadline"`
	Limit       int           `json:"limit"`
	Requests    uint32        `json:"requests"`
	Answered    uint32        `json:"answered"`
	TimedOut    uint32        `json:"timed_out"`
	Limited     uint32        `json:"limited"`
	Abandoned   uint32        `json:"abandoned"`
	AbandonedUs uint32        `json:"abandoned_us"`
	PeakSec     uint32        `json:"peak_sec"`
	HeldUs      uint64        `json:"held_us"`
	// Bins holds the latency histogram's non-empty bins as pairs of
	// index and count.
	Bins [][2]uint32 `json:"bins"`
}

// upstreamHourVersion is the encoding's version: a gateway ignores a row
// of another version (a newer gateway's) rather than misread it.
const upstreamHourVersion = 1

// MarshalBinary encodes h for the store.
func (h UpstreamHour) MarshalBinary() ([]byte, error) {
	return json.Marshal(struct {
		V int `json:"v"`
		UpstreamHour
	}{upstreamHourVersion, h})
}

// UnmarshalBinary decodes what MarshalBinary wrote, refusing another
// version and bins out of range.
func (h *UpstreamHour) UnmarshalBinary(b []byte) error {
	var v struct {
		V int `json:"v"`
		UpstreamHour
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("upstream statistics: %w", err)
	}
	if v.V != upstreamHourVersion {
		return fmt.Errorf("upstream statistics of version %d, this gateway reads %d", v.V, upstreamHourVersion)
	}
	for _, p := range v.Bins {
		if p[0] >= latencyBins {
			return fmt.Errorf("upstream statistics: latency bin %d out of range", p[0])
		}
	}
	*h = v.UpstreamHour
	return nil
}

// bucket is h as an hourly bucket.
func (h *UpstreamHour) bucket() hourBucket {
	b := hourBucket{epoch: h.Hour, requests: h.Requests, answered: h.Answered, timedOut: h.TimedOut,
		limited: h.Limited, abandoned: h.Abandoned, abandonedUs: h.AbandonedUs, peakSec: h.PeakSec, heldUs: h.HeldUs}
	for _, p := range h.Bins {
		if p[0] < latencyBins {
			b.bins[p[0]] += p[1]
		}
	}
	return b
}

// UpstreamHours returns this process's hours of the last day that saw a
// request, oldest first, with the settings in force (for the store).
func (r *RouteStats) UpstreamHours() []UpstreamHour {
	if r == nil {
		return nil
	}
	now := r.now().Unix() / 3600
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []UpstreamHour
	for i := range r.hours {
		b := &r.hours[i]
		age := now - b.epoch
		if b.epoch < 0 || age < 0 || age >= hourRingSize || b.requests == 0 {
			continue
		}
		h := UpstreamHour{Hour: b.epoch, Deadline: r.deadline, Limit: r.limit,
			Requests: b.requests, Answered: b.answered, TimedOut: b.timedOut, Limited: b.limited,
			Abandoned: b.abandoned, AbandonedUs: b.abandonedUs, PeakSec: b.peakSec, HeldUs: b.heldUs}
		for j, n := range b.bins {
			if n > 0 {
				h.Bins = append(h.Bins, [2]uint32{uint32(j), n})
			}
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b UpstreamHour) int { return cmp.Compare(a.Hour, b.Hour) })
	return out
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
